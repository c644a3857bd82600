"""spawn_agents: run sub-agents concurrently, isolate their edits, merge them back, account for them.

Each sub-agent is the same `Agent` loop as the main one, with its role's tools and prompt, its own
history, a step limit, and the parent's backend (shared: the backend's own limiter caps requests)
and approver. At most `max_parallel` run at once. Their events are forwarded to the parent's stream
with their agent id. In a git repo, `edit` and `general` agents work in their own worktree made from
a snapshot of the working tree; when one finishes, its changes are merged back with a three-way merge
(one merge at a time); a conflict keeps the working tree's version and the agent's commit on a ref.

A sub-agent that fails (backend error, crash, step limit, timeout) yields an error entry; the others
finish. Two things do stop everything: cancellation (every sub-agent is cancelled, every worktree
removed) and an approval the non-interactive policy refuses (exit 4, like the main agent).

Backend pressure is the backend's business: the OpenAI backend's shared adaptive limiter admits at
most --max-parallel requests and halves on 429 (recovering later); a local llama.cpp backend
generates one sequence at a time, so there sub-agents simply queue for it — tool work still overlaps.
On top of that (kcode.agents.batch): a batch fan-out (prompt_template + items) starts its agents on a
ramp, and a sub-agent still refused with HTTP 429 after the backend's retries is requeued with backoff.
A `brief` goes first in every sub-agent's system prompt; `check` runs the project's checks once after
the merge and names the agents whose changes broke them (kcode.agents.checks).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcode.agents import batch
from kcode.agents.budget import Limits, Meter
from kcode.agents.loop import COMPLETED, FAILED, Agent
from kcode.agents.roles import (
    ISOLATED_ROLES,
    PathLocks,
    role_max_steps,
    role_options,
    role_system_prompt,
    role_tools,
    serialise_writes,
)
from kcode.agents.stats import AgentStats
from kcode.agents.subtasks import SubAgentResult, SubTask, tool_result, validate_tasks
from kcode.approval import ApprovalDecision, ApprovalRequest, ApprovalRequired, Approver
from kcode.backends.base import Backend, BackendOptions
from kcode.events import AgentFinished, AgentSpawned, TurnFinished
from kcode.messages import Message, ToolResult
from kcode.tools.base import Tool, ToolContext, ToolError, current_call_id
from kcode.vcs import worktrees as wt
from kcode.vcs.merge import MergeOutcome, merge_back_sync

MAX_PARALLEL = 128
SUB_AGENT_MAX_STEPS = 30

ToolFactory = Callable[[str], dict[str, Tool[Any]]]


class _SubAgentApprover:
    """Asks the parent's approver one request at a time (a human sees one question, not twelve)
    and remembers a refusal from the non-interactive policy so it can stop the whole run."""

    def __init__(self, inner: Approver, lock: asyncio.Lock) -> None:
        self.inner = inner
        self.lock = lock
        self.required: ApprovalRequired | None = None

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        async with self.lock:
            try:
                return await self.inner.decide(request)
            except ApprovalRequired as err:
                self.required = err
                raise


@dataclass
class _Plan:
    """One sub-agent about to run: its id, task and (in a git repo) its worktree."""

    id: str
    task: SubTask
    worktree: wt.Worktree | None = None
    result: SubAgentResult | None = None
    agent: Agent | None = None
    brief: str = ""  # batch.brief_block(): first in the system prompt
    start_at: float = 0.0  # time.monotonic() before which it may not start (the batch ramp)
    requeue: batch.RequeueState | None = None


class Orchestrator:
    requeue_base_s: float = batch.REQUEUE_BASE_S  # first wait of a rate-limited agent (batch.py)

    def __init__(
        self,
        *,
        backend: Backend,
        options: BackendOptions,
        parent_stats: AgentStats,
        max_parallel: int = 8,
        max_steps: int = SUB_AGENT_MAX_STEPS,
        run_id: str | None = None,
        shared_facts: str = "",
        timeout_s: float | None = None,
        tool_factory: ToolFactory = role_tools,
    ) -> None:
        if not 1 <= max_parallel <= MAX_PARALLEL:
            raise ValueError(f"max_parallel must be between 1 and {MAX_PARALLEL}")
        self.backend = backend
        self.options = options
        self.parent_stats = parent_stats
        self.max_parallel = max_parallel
        self.max_steps = max_steps
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.shared_facts = shared_facts
        self.timeout_s = timeout_s
        self.tool_factory = tool_factory
        self._counter = 0
        self._merge_lock = asyncio.Lock()
        self._approval_lock = asyncio.Lock()
        # The parent agent's meter (issue #16): sub-agents get child meters of the same run budget.
        self.parent_meter: Meter | None = None
        self._fanout_size = 1
        self._fanout_left = Limits()

    @classmethod
    def for_agent(cls, agent: Agent, *, max_parallel: int = 8, **kw: Any) -> Orchestrator:
        """An orchestrator whose sub-agents share `agent`'s backend and report into its stats."""
        orchestrator = cls(
            backend=agent.backend,
            options=agent.options,
            parent_stats=agent.stats,
            max_parallel=max_parallel,
            max_steps=min(agent.max_steps, SUB_AGENT_MAX_STEPS),
            **kw,
        )
        orchestrator.parent_meter = agent.meter
        return orchestrator

    # --- the tool's entry point -------------------------------------------------------------------
    async def run(
        self,
        tasks: list[SubTask],
        ctx: ToolContext,
        *,
        brief: str = "",
        check: bool = False,
        ramp: bool = False,
    ) -> ToolResult:
        validate_tasks(tasks)
        check_task_budgets(tasks, self.parent_meter, self.options.model or self.backend_model())
        started = time.monotonic()
        plans = [self._plan(task) for task in tasks]
        self._fanout_size = len(plans)
        if self.parent_meter is not None:  # shares come from what was left when the fan-out began
            self._fanout_left = self.parent_meter.run.remaining()
        repo = await self._prepare_isolation(plans, ctx)
        for i, plan in enumerate(plans):  # the brief and the start ramp (kcode.agents.batch)
            plan.brief = batch.brief_block(brief)
            plan.start_at = started + (batch.ramp_delay(i) if ramp else 0.0)
        path_locks = PathLocks()
        semaphore = asyncio.Semaphore(self.max_parallel)
        try:
            async with asyncio.TaskGroup() as group:
                for plan in plans:
                    group.create_task(self._run_one(plan, ctx, repo, semaphore, path_locks))
        except* ApprovalRequired as refused:
            first = refused.exceptions[0]
            assert isinstance(first, ApprovalRequired)
            raise first from None
        finally:
            await self._cleanup(plans, repo)
            self.parent_stats.add_fanout([p.agent.stats for p in plans if p.agent is not None])
        results = [p.result for p in plans if p.result is not None]
        if check:
            from kcode.agents.checks import attach_checks, run_checks

            report = await run_checks(ctx, results)
            return attach_checks(tool_result(results, time.monotonic() - started), report)
        return tool_result(results, time.monotonic() - started)

    def _plan(self, task: SubTask) -> _Plan:
        self._counter += 1
        return _Plan(f"{task.role}-{self._counter}", task)

    async def _prepare_isolation(self, plans: list[_Plan], ctx: ToolContext) -> wt.Repo | None:
        """Snapshot + one worktree per writing agent, all made before any agent starts: if one
        cannot be made, nothing runs and nothing is merged."""
        isolated = [p for p in plans if p.task.role in ISOLATED_ROLES]
        if not isolated:
            return None
        repo = await wt.find_repo(ctx.root)
        if repo is None:
            return None  # outside git: agents share the real tree, writes serialised per file
        try:
            base = await wt.snapshot(repo)
            made = await asyncio.gather(
                *(wt.add_worktree(repo, base) for _ in isolated), return_exceptions=True
            )
        except (wt.GitError, OSError) as err:
            raise ToolError(
                f"could not snapshot the working tree for isolated edits: {err}. Nothing was run."
            ) from err
        failures = [m for m in made if isinstance(m, BaseException)]
        for plan, item in zip(isolated, made, strict=True):
            if isinstance(item, wt.Worktree):
                plan.worktree = item
        if failures:
            await self._cleanup(plans, repo)
            if any(isinstance(f, asyncio.CancelledError) for f in failures):
                raise asyncio.CancelledError
            raise ToolError(
                f"could not create a git worktree for an edit agent ({failures[0]}); check free "
                "disk space in the temp directory. Nothing was run and nothing was merged."
            )
        return repo

    async def _cleanup(self, plans: list[_Plan], repo: wt.Repo | None) -> None:
        if repo is None:
            return
        cancelled = False
        for plan in plans:
            if plan.worktree is not None:
                try:
                    await wt.remove_worktree(repo, plan.worktree)
                except asyncio.CancelledError:
                    cancelled = True  # removed all the same; remove the others too, then stop
                plan.worktree = None
        if cancelled:
            raise asyncio.CancelledError

    # --- one sub-agent --------------------------------------------------------------------------
    async def _run_one(
        self,
        plan: _Plan,
        parent: ToolContext,
        repo: wt.Repo | None,
        semaphore: asyncio.Semaphore,
        path_locks: PathLocks,
    ) -> None:
        if plan.start_at > time.monotonic():
            await asyncio.sleep(plan.start_at - time.monotonic())  # the batch ramp (batch.py)
        async with semaphore:
            result = SubAgentResult(plan.id, plan.task.role)
            plan.result = result
            approver = _SubAgentApprover(parent.approver, self._approval_lock)
            sub_ctx = self._sub_context(plan, parent, repo, approver)
            tools = self.tool_factory(plan.task.role)
            if plan.worktree is None and plan.task.role in ISOLATED_ROLES:
                tools = serialise_writes(tools, path_locks)
            agent = Agent(
                backend=self.backend,
                tools=tools,
                ctx=sub_ctx,
                # The workspace's root, not the worktree's: one role's sub-agents then share a
                # byte-identical system prompt, a prefix the server's prompt cache can reuse.
                system_prompt=role_system_prompt(
                    plan.task.role, parent.root, self.shared_facts, parent.root
                ),
                options=role_options(
                    plan.task.role,
                    dataclasses.replace(
                        self.options,
                        cache_key=role_cache_key(self.options.cache_key, plan.task.role),
                    ),
                ),
                max_steps=role_max_steps(plan.task.role, self.max_steps),
                agent_id=plan.id,
                role=plan.task.role,
            )
            plan.agent = agent
            if self.parent_meter is not None:
                caps = Limits(plan.task.max_tokens, plan.task.max_cost)
                agent.meter = self.parent_meter.child(
                    plan.id, caps, self._fanout_size, self._fanout_left
                )
            result.stats = agent.stats
            await parent.emit(
                AgentSpawned(
                    agent=parent.agent_id,
                    parent_call_id=current_call_id() or None,
                    agent_id=plan.id,
                    role=plan.task.role,
                    prompt=plan.task.prompt,
                )
            )
            finished = await batch.drive_requeued(
                self._drive, agent, plan, parent, result, semaphore, self.requeue_base_s
            )
            if approver.required is not None:
                raise approver.required
            result.tests = sub_ctx.last_tests
            if plan.worktree is not None and repo is not None:
                await self._merge(plan, repo, parent, result, finished)
                worktree, plan.worktree = plan.worktree, None  # free the disk now, not at the end
                await wt.remove_worktree(repo, worktree)
            else:
                result.files_changed = sub_ctx.changes.changed_paths(parent.root)
                for path, original in sub_ctx.changes.originals.items():
                    if path not in parent.changes.originals:  # the parent's /undo covers it too
                        parent.changes.originals[path] = original
                        if path in sub_ctx.changes.modes:
                            parent.changes.modes[path] = sub_ctx.changes.modes[path]
            await parent.emit(
                AgentFinished(
                    agent=parent.agent_id,
                    parent_call_id=current_call_id() or None,
                    agent_id=plan.id,
                    role=plan.task.role,
                    ok=result.ok,
                    report=result.report,
                    steps=agent.stats.total_steps,
                    prompt_tokens=agent.stats.prompt_tokens,
                    completion_tokens=agent.stats.completion_tokens,
                    duration_s=round(agent.stats.duration_s, 3),
                    files_changed=result.files_changed,
                    error=result.error,
                    cached_tokens=agent.stats.cached_tokens,
                    reasoning_tokens=agent.stats.reasoning_tokens,
                    cost=agent.stats.cost,
                )
            )

    def _sub_context(
        self, plan: _Plan, parent: ToolContext, repo: wt.Repo | None, approver: Approver
    ) -> ToolContext:
        root = parent.root
        if plan.worktree is not None and repo is not None:
            root = plan.worktree.path / parent.root.relative_to(repo.root)
        sandbox = parent.sandbox
        if plan.task.role == "test" and sandbox != "off":
            sandbox = "read-only"
        return ToolContext(
            root=root,
            extra_dirs=parent.extra_dirs,
            approver=approver,
            agent_id=plan.id,
            limits=parent.limits,
            sandbox=sandbox,
            spawner=None,  # sub-agents cannot spawn
            extensions=parent.extensions,  # hooks run in sub-agents too (in their worktree)
        )

    async def _drive(
        self,
        agent: Agent,
        plan: _Plan,
        parent: ToolContext,
        result: SubAgentResult,
        message: Message | None = None,
    ) -> TurnFinished | None:
        finished: TurnFinished | None = None
        spawn_call = current_call_id() or None
        try:
            async with asyncio.timeout(self.timeout_s):
                async for event in agent.run_turn(message or Message.user(self._task_text(plan))):
                    if isinstance(event, TurnFinished):
                        finished = event
                    if plan.requeue is not None and batch.held_back(event, plan.requeue):
                        continue  # a 429 that is requeued: Retrying is shown instead
                    # Re-tag with the sub-agent's id and the parent's spawn_agents call (#12).
                    await parent.emit(
                        dataclasses.replace(event, agent=plan.id, parent_call_id=spawn_call)
                    )
        except TimeoutError:
            result.error = f"timed out after {self.timeout_s:g} s"
            return None
        except Exception as err:  # a crash in one sub-agent must not take the others down
            result.error = f"{type(err).__name__}: {err}"
            return None
        if finished is None:
            result.error = "the sub-agent ended without an answer"
            return None
        result.report = finished.result
        if finished.reason == COMPLETED:
            result.ok = not finished.result.lstrip().upper().startswith("RESULT: FAILED")
        elif finished.reason != FAILED:
            result.error = f"{finished.reason}: {finished.result}"
        return finished

    async def _merge(
        self,
        plan: _Plan,
        repo: wt.Repo,
        parent: ToolContext,
        result: SubAgentResult,
        finished: TurnFinished | None,
    ) -> None:
        assert plan.worktree is not None
        base = plan.worktree.base
        try:
            commit = await wt.commit_worktree(plan.worktree, f"kcode: changes of {plan.id}")
            reported = finished is not None and finished.reason in (COMPLETED, FAILED)
            ref = wt.agent_ref(self.run_id, plan.id)
            if not reported:
                # An agent cut short (error, step limit) may have left half an edit: keep, not merge.
                if commit_changes(repo, base, commit):
                    await asyncio.to_thread(wt.keep_ref_sync, repo, ref, commit)
                    result.ref, result.see = ref, f"git diff {base[:12]} {ref}"
                    result.error = (result.error or "") + "; its changes were NOT merged"
                return
            async with self._merge_lock:
                outcome: MergeOutcome = await wt.finish_even_if_cancelled(
                    asyncio.to_thread(
                        merge_back_sync, repo, base, commit, parent.changes.record_before_write
                    )
                )
            result.files_changed = [_relative(repo.root / p, parent.root) for p in outcome.merged]
            if outcome.conflicts:
                await asyncio.to_thread(wt.keep_ref_sync, repo, ref, commit)
                result.ref, result.see = ref, f"git diff {base[:12]} {ref}"
                result.conflicts = [
                    {
                        "path": _relative(repo.root / c.path, parent.root),
                        "why": c.why,
                        "hunks": c.hunks,
                    }
                    for c in outcome.conflicts
                ]
                result.ok = False
        except (wt.GitError, OSError) as err:
            result.ok = False
            result.error = f"could not merge its changes back: {err}"

    def _task_text(self, plan: _Plan) -> str:
        """The task, and for an agent in its own worktree where its edits go: said here, after the
        task, because the system prompt must be the same for every agent of a role."""
        if plan.worktree is None:
            return plan.task.prompt
        return (
            f"{plan.task.prompt}\n\n(Your tools work on an isolated copy of the workspace at "
            f"{plan.worktree.path}; it is merged back when you finish. Use relative paths.)"
        )

    def backend_model(self) -> str:
        return str(getattr(self.backend, "model", ""))


def role_cache_key(key: str | None, role: str) -> str | None:
    """Sub-agents of one role share a prompt cache key: `kcode-<session>-main` -> `...-edit`."""
    if not key:
        return None
    return f"{key.rsplit('-', 1)[0]}-{role}"


def check_task_budgets(tasks: list[SubTask], meter: Meter | None, model: str) -> None:
    """A cost cap needs a price to be counted; refuse before anything starts (an error result)."""
    if any(t.max_cost is not None for t in tasks) and (
        meter is None or meter.run.prices.lookup(model) is None
    ):
        raise ToolError(
            f"max_cost cannot be enforced: model {model!r} has no known price. Use max_tokens "
            "instead. Nothing was run."
        )


def commit_changes(repo: wt.Repo, base: str, commit: str) -> bool:
    from kcode.vcs.merge import changed_paths_sync

    return bool(changed_paths_sync(repo, base, commit))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
