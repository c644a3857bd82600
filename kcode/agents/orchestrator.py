"""spawn_agents: run sub-agents concurrently, isolate their edits, merge them back, account for them.

Each sub-agent is the same `Agent` loop as the main one, with its role's tools and prompt, its own
history, a step limit, and the parent's backend and options as they are when it starts (shared:
the backend's own limiter caps requests) and approver; its tools are its role's, plus the session's
`skill` and the MCP tools the role allows (kcode.agents.sub_tools). At most `max_parallel` run at
once. Their events are forwarded to the parent's stream with their agent id. In a git repo, `edit` and `general` agents work in their own worktree made from
a snapshot of the working tree; when one finishes, its changes are merged back with a three-way merge
(one merge at a time); a conflict keeps the working tree's version and the agent's commit on a ref
(kcode.agents.isolation).

A sub-agent that fails (backend error, crash, step limit, timeout) yields an error entry; the others
finish. Two things do stop everything: cancellation (every sub-agent is cancelled, every worktree
removed) and an approval the non-interactive policy refuses (exit 4, like the main agent).

Backend pressure is the backend's business: the OpenAI backend's shared adaptive limiter admits at
most --max-parallel requests and halves on 429 (recovering later); a local llama.cpp backend
generates one sequence at a time, so there sub-agents simply queue for it — tool work still overlaps.
On top of that (kcode.agents.batch): a batch fan-out (prompt_template + items) starts its agents on a
ramp, and a sub-agent still refused with HTTP 429 after the backend's retries is requeued with backoff.
A `brief` ends every sub-agent's system prompt; `check` runs the project's checks once after
the merge and names the agents whose changes broke them (kcode.agents.checks).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kcode.agents import batch
from kcode.agents.budget import Limits, Meter
from kcode.agents.isolation import (
    Plan,
    agent_root,
    bring_back,
    cleanup,
    prepare_isolation,
    task_text,
)
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
from kcode.agents.sub_tools import skills_prompt, sub_agent_tools
from kcode.agents.subtasks import SubAgentResult, SubTask, tool_result, validate_tasks
from kcode.backends.base import Backend, BackendOptions
from kcode.events import AgentFinished, AgentSpawned, TurnFinished
from kcode.messages import Message, ToolResult
from kcode.safety.approval import ApprovalDecision, ApprovalRequest, ApprovalRequired, Approver
from kcode.tools.base import Tool, ToolContext, ToolError, current_call_id
from kcode.vcs import worktrees as wt

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
        self._backend = backend
        self._options = options
        # The agent whose backend and options sub-agents follow (for_agent): read at spawn time,
        # so `/model X` and `/think` (Runtime.switch_backend, set_thinking) reach every sub-agent
        # spawned after them, and none keeps a backend that was closed (#12, #16).
        self.parent: Agent | None = None
        self.mcp: Any = None  # kcode.mcp.manager.McpManager: sub-agents get MCP tools (sub_tools)
        # The session's date, fixed once: a fan-out after midnight keeps the role's prompt prefix.
        self.date = time.strftime("%Y-%m-%d")
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
        self._meter: Meter | None = None
        self._fanout_size = 1
        self._fanout_left = Limits()

    @property
    def backend(self) -> Backend:
        return self.parent.backend if self.parent is not None else self._backend

    @backend.setter
    def backend(self, backend: Backend) -> None:
        # Kept for callers that set it directly; with a parent, the parent's backend wins.
        self._backend = backend

    @property
    def options(self) -> BackendOptions:
        return self.parent.options if self.parent is not None else self._options

    @options.setter
    def options(self, options: BackendOptions) -> None:
        self._options = options

    @property
    def parent_meter(self) -> Meter | None:
        if self._meter is None and self.parent is not None:
            return self.parent.meter
        return self._meter

    @parent_meter.setter
    def parent_meter(self, meter: Meter | None) -> None:
        self._meter = meter

    @classmethod
    def for_agent(cls, agent: Agent, *, max_parallel: int = 8, **kw: Any) -> Orchestrator:
        """An orchestrator whose sub-agents use `agent`'s backend, options and meter as they are
        when each sub-agent starts, and report into its stats."""
        orchestrator = cls(
            backend=agent.backend,
            options=agent.options,
            parent_stats=agent.stats,
            max_parallel=max_parallel,
            max_steps=min(agent.max_steps, SUB_AGENT_MAX_STEPS),
            **kw,
        )
        orchestrator.parent = agent
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
        repo = await prepare_isolation(plans, ctx)
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
            await cleanup(plans, repo)
            self.parent_stats.add_fanout([p.agent.stats for p in plans if p.agent is not None])
        results = [p.result for p in plans if p.result is not None]
        if check:
            from kcode.agents.checks import attach_checks, run_checks

            report = await run_checks(ctx, results)
            return attach_checks(tool_result(results, time.monotonic() - started), report)
        return tool_result(results, time.monotonic() - started)

    def _plan(self, task: SubTask) -> Plan:
        self._counter += 1
        return Plan(f"{task.role}-{self._counter}", task)

    # --- one sub-agent --------------------------------------------------------------------------
    async def _run_one(
        self,
        plan: Plan,
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
            backend, options = self.backend, self.options  # the parent's, as they are now
            role = plan.task.role
            tools: Mapping[str, Tool[Any]] = self.tool_factory(role)
            if plan.worktree is None and role in ISOLATED_ROLES:
                tools = serialise_writes(dict(tools), path_locks)
            extended = sub_agent_tools(role, tools, parent.extensions, self.mcp)
            agent = Agent(
                backend=backend,
                tools=extended if extended is not None else tools,
                ctx=sub_ctx,
                # The workspace's root, not the worktree's: one role's sub-agents then share a
                # byte-identical system prompt, a prefix the server's prompt cache can reuse.
                system_prompt=role_system_prompt(
                    role, parent.root, self.shared_facts, parent.root, date=self.date
                )
                + skills_prompt(parent.extensions, role),
                options=role_options(
                    role,
                    dataclasses.replace(options, cache_key=role_cache_key(options.cache_key, role)),
                ),
                max_steps=role_max_steps(role, self.max_steps),
                agent_id=plan.id,
                role=role,
                specs=extended.own_specs() if extended is not None else None,
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
            await bring_back(
                plan, repo, parent, sub_ctx, result, finished, self.run_id, self._merge_lock
            )
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
        self, plan: Plan, parent: ToolContext, repo: wt.Repo | None, approver: Approver
    ) -> ToolContext:
        sandbox = parent.sandbox
        if plan.task.role == "test" and sandbox != "off":
            sandbox = "read-only"
        return ToolContext(
            root=agent_root(plan, parent, repo),
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
        plan: Plan,
        parent: ToolContext,
        result: SubAgentResult,
        message: Message | None = None,
    ) -> TurnFinished | None:
        finished: TurnFinished | None = None
        spawn_call = current_call_id() or None
        try:
            async with asyncio.timeout(self.timeout_s):
                async for event in agent.run_turn(message or Message.user(task_text(plan))):
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
