"""Sub-agent roles (SPEC §6): which tools each gets, whether it edits in its own worktree, its prompt.

A sub-agent's system prompt is its role prompt plus the shared facts every sub-agent needs (workspace
root, date, the fixed answer shape, what the parent passed on, the project's AGENTS.md conventions);
the task itself is the first user message, so each conversation is identified by its task.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from kcode.agents.prompts import load_prompt, project_memory
from kcode.backends.base import BackendOptions
from kcode.messages import ToolResult
from kcode.tools.base import Tool, ToolContext
from kcode.tools.registry import ROLE_TOOLS, build_tools

if TYPE_CHECKING:
    from kcode.tools.args import ToolArgs

RoleName = Literal["search", "edit", "test", "general"]
ROLES: tuple[RoleName, ...] = ("search", "edit", "test", "general")


class _IsolatedRoles(frozenset[str]):
    """`role in ISOLATED_ROLES` is also true for a custom agent role that can write
    (kcode.extensions.agents), without changing every caller of the constant."""

    def __contains__(self, role: object) -> bool:
        if super().__contains__(role):
            return True
        from kcode.extensions.agents import custom_agent

        agent = custom_agent(role) if isinstance(role, str) else None
        return agent is not None and agent.isolated


# Roles that write files: in a git repo they get their own worktree.
ISOLATED_ROLES: frozenset[str] = _IsolatedRoles({"edit", "general"})
WRITING_TOOLS = frozenset({"edit_file", "write_file", "apply_patch"})


def role_tools(role: str) -> dict[str, Tool[Any]]:
    from kcode.extensions.agents import custom_agent

    custom = custom_agent(role)
    listed = custom.tools if custom is not None else ROLE_TOOLS[role]
    # MCP names (`mcp__server__tool`) are not built-in tools: kcode.agents.sub_tools adds them.
    names = tuple(n for n in listed if n != "spawn_agents" and not n.startswith("mcp__"))
    return build_tools(names)


def role_max_steps(role: str, default: int) -> int:
    """A custom agent's `maxTurns`, never above the parent's sub-agent limit."""
    from kcode.extensions.agents import custom_agent

    custom = custom_agent(role)
    return min(custom.max_turns, default) if custom and custom.max_turns else default


def role_options(role: str, options: BackendOptions) -> BackendOptions:
    """A custom agent's own `model`, else the parent's options."""
    import dataclasses

    from kcode.extensions.agents import custom_agent

    custom = custom_agent(role)
    if custom is None or not custom.model:
        return options
    return dataclasses.replace(options, model=custom.model)


def role_system_prompt(
    role: str, root: Path, facts: str = "", memory_root: Path | None = None, date: str = ""
) -> str:
    from kcode.extensions.agents import custom_agent

    custom = custom_agent(role)
    shared = load_prompt("subagent_common").format(
        root=root,
        date=date or time.strftime("%Y-%m-%d"),
        facts=f"\n# From the parent agent\n{facts.strip()}\n" if facts.strip() else "",
        memory=project_memory(memory_root or root),
    )
    head = custom.prompt if custom is not None else load_prompt(role)
    return head.rstrip("\n") + "\n" + shared


class PathLocks:
    """One asyncio.Lock per absolute path, shared by the sub-agents of one fan-out."""

    def __init__(self) -> None:
        self._locks: defaultdict[Path, asyncio.Lock] = defaultdict(asyncio.Lock)

    def for_paths(self, paths: list[Path]) -> list[asyncio.Lock]:
        # A fixed (sorted) order: two calls that write the same two files cannot deadlock.
        return [self._locks[p] for p in sorted(set(paths))]


class _SerialisedWrites(Tool[Any]):
    """Wraps a file-writing tool so that, outside git, two sub-agents never write one file at once.

    The lock covers one call (read-modify-write of edit_file included), not the agent's whole life:
    holding files across calls could deadlock two agents that each wait for the other's file.
    A stale view is still safe: edit_file matches old_string against the file as it is now, so an
    agent that raced another fails that edit cleanly and retries instead of overwriting it.
    """

    inner: Tool[Any]
    locks: PathLocks
    wrapped: ClassVar[bool] = True

    def __init__(self, inner: Tool[Any], locks: PathLocks) -> None:
        self.inner = inner
        self.locks = locks

    def written_paths(self, args: ToolArgs) -> list[str]:
        return self.inner.written_paths(args)

    def schema(self) -> dict[str, Any]:
        return self.inner.schema()

    async def run(self, args: ToolArgs, ctx: ToolContext) -> ToolResult:
        paths = []
        for raw in self.inner.written_paths(args):
            try:
                paths.append(ctx.resolve(raw))
            except Exception:
                continue  # the tool itself reports the bad path
        held: list[asyncio.Lock] = []
        try:
            for lock in self.locks.for_paths(paths):
                await lock.acquire()
                held.append(lock)
            return await self.inner.run(args, ctx)
        finally:
            for lock in reversed(held):
                lock.release()


def serialise_writes(tools: dict[str, Tool[Any]], locks: PathLocks) -> dict[str, Tool[Any]]:
    out: dict[str, Tool[Any]] = {}
    for name, tool in tools.items():
        if name not in WRITING_TOOLS:
            out[name] = tool
            continue
        attrs = {
            "name": tool.name,
            "description": tool.description,
            "args_model": tool.args_model,
            "read_only": tool.read_only,
            "exclusive": tool.exclusive,
        }
        cls = type(f"Serialised{type(tool).__name__}", (_SerialisedWrites,), attrs)
        out[name] = cast(Tool[Any], cls(tool, locks))
    return out
