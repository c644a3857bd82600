"""Where a sub-agent's edits go, and how they come back (the orchestrator's isolation and merge).

In a git repo, every writing agent (kcode.agents.roles.ISOLATED_ROLES) gets its own worktree made
from a snapshot of the working tree, all of them before any agent starts: if one cannot be made,
nothing runs. When an agent finishes, its worktree is committed and merged back with a three-way
merge, one merge at a time; a conflict keeps the working tree's version and the agent's commit on a
ref. An agent cut short (error, step limit) is not merged: its commit is kept on a ref.
Outside git, agents share the real tree (writes serialised per file) and their change records are
handed to the parent, so the parent's /undo covers them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kcode.agents import batch
from kcode.agents.loop import COMPLETED, FAILED
from kcode.agents.roles import ISOLATED_ROLES
from kcode.agents.subtasks import SubAgentResult, SubTask
from kcode.events import TurnFinished
from kcode.tools.base import ToolContext, ToolError
from kcode.vcs import worktrees as wt
from kcode.vcs.merge import MergeOutcome, merge_back_sync

if TYPE_CHECKING:
    from kcode.agents.loop import Agent


@dataclass
class Plan:
    """One sub-agent about to run: its id, task and (in a git repo) its worktree."""

    id: str
    task: SubTask
    worktree: wt.Worktree | None = None
    result: SubAgentResult | None = None
    agent: Agent | None = None
    brief: str = ""  # batch.brief_block(): ends the system prompt
    start_at: float = 0.0  # time.monotonic() before which it may not start (the batch ramp)
    requeue: batch.RequeueState | None = None


async def prepare_isolation(plans: list[Plan], ctx: ToolContext) -> wt.Repo | None:
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
        await cleanup(plans, repo)
        if any(isinstance(f, asyncio.CancelledError) for f in failures):
            raise asyncio.CancelledError
        raise ToolError(
            f"could not create a git worktree for an edit agent ({failures[0]}); check free "
            "disk space in the temp directory. Nothing was run and nothing was merged."
        )
    return repo


async def cleanup(plans: list[Plan], repo: wt.Repo | None) -> None:
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


def agent_root(plan: Plan, parent: ToolContext, repo: wt.Repo | None) -> Path:
    """The directory the agent's tools work in: the workspace, or its place in the worktree."""
    if plan.worktree is not None and repo is not None:
        return plan.worktree.path / parent.root.relative_to(repo.root)
    return parent.root


async def bring_back(
    plan: Plan,
    repo: wt.Repo | None,
    parent: ToolContext,
    sub_ctx: ToolContext,
    result: SubAgentResult,
    finished: TurnFinished | None,
    run_id: str,
    merge_lock: asyncio.Lock,
) -> None:
    """Merge the agent's worktree back (and free it now, not at the end), or, outside git, hand
    its change records to the parent."""
    if plan.worktree is not None and repo is not None:
        await merge(plan, repo, parent, result, finished, run_id, merge_lock)
        worktree, plan.worktree = plan.worktree, None
        await wt.remove_worktree(repo, worktree)
        return
    result.files_changed = sub_ctx.changes.changed_paths(parent.root)
    for path, original in sub_ctx.changes.originals.items():
        if path not in parent.changes.originals:  # the parent's /undo covers it too
            parent.changes.originals[path] = original
            if path in sub_ctx.changes.modes:
                parent.changes.modes[path] = sub_ctx.changes.modes[path]


async def merge(
    plan: Plan,
    repo: wt.Repo,
    parent: ToolContext,
    result: SubAgentResult,
    finished: TurnFinished | None,
    run_id: str,
    merge_lock: asyncio.Lock,
) -> None:
    assert plan.worktree is not None
    base = plan.worktree.base
    try:
        commit = await wt.commit_worktree(plan.worktree, f"kcode: changes of {plan.id}")
        reported = finished is not None and finished.reason in (COMPLETED, FAILED)
        ref = wt.agent_ref(run_id, plan.id)
        if not reported:
            # An agent cut short (error, step limit) may have left half an edit: keep, not merge.
            if commit_changes(repo, base, commit):
                await asyncio.to_thread(wt.keep_ref_sync, repo, ref, commit)
                result.ref, result.see = ref, f"git diff {base[:12]} {ref}"
                result.error = (result.error or "") + "; its changes were NOT merged"
            return
        async with merge_lock:
            outcome: MergeOutcome = await wt.finish_even_if_cancelled(
                asyncio.to_thread(
                    merge_back_sync, repo, base, commit, parent.changes.record_before_write
                )
            )
        result.files_changed = [relative(repo.root / p, parent.root) for p in outcome.merged]
        if outcome.conflicts:
            await asyncio.to_thread(wt.keep_ref_sync, repo, ref, commit)
            result.ref, result.see = ref, f"git diff {base[:12]} {ref}"
            result.conflicts = [
                {"path": relative(repo.root / c.path, parent.root), "why": c.why, "hunks": c.hunks}
                for c in outcome.conflicts
            ]
            result.ok = False
    except (wt.GitError, OSError) as err:
        result.ok = False
        result.error = f"could not merge its changes back: {err}"


def task_text(plan: Plan) -> str:
    """The task, and for an agent in its own worktree where its edits go: said here, after the
    task, because the system prompt must be the same for every agent of a role."""
    if plan.worktree is None:
        return plan.task.prompt
    return (
        f"{plan.task.prompt}\n\n(Your tools work on an isolated copy of the workspace at "
        f"{plan.worktree.path}; it is merged back when you finish. Use relative paths.)"
    )


def commit_changes(repo: wt.Repo, base: str, commit: str) -> bool:
    from kcode.vcs.merge import changed_paths_sync

    return bool(changed_paths_sync(repo, base, commit))


def relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
