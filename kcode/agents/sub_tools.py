"""A sub-agent's tool set: its role's built-in tools, the `skill` tool and the MCP tools it may use.

The main agent gets MCP tools (kcode.mcp.tools) and `skill` (kcode.extensions.skill_tool); a
sub-agent gets them too, within what its role allows:

- `search` and `test` are read-only roles: only MCP tools whose server marks them read-only
  (`readOnlyHint`). An MCP tool runs in its server's process, outside kcode's sandbox and
  worktrees, so a read-only role must not get one that may write.
- `edit` and `general` get every MCP tool.
- a custom agent (.kcode/agents/*.md) gets the `mcp__server__tool` names its `tools:` lists
  (`mcp__server` or `mcp__server__*`: every tool of that server); one without a `tools:` line
  inherits every tool, MCP ones included, as in Claude Code.
- with more MCP tools than the main agent is offered directly (kcode.mcp.manager), a sub-agent
  sees those the main agent's `mcp_search_tools` calls unlocked, within the same limits.
- `skill` only returns a skill's instructions (it reads, never writes): every built-in role gets
  it when the session has model-invocable skills; a custom agent whose `tools:` line lists its
  tools gets it only when that list names it (`skill`, or Claude's `Skill`).

Approval, rules and hooks apply unchanged: an MCP tool asks the sub-agent's approver (the parent's,
one question at a time) with action "mcp", and the sub-agent's ToolContext carries the parent's
extensions, whose Pre/PostToolUse hooks wrap every call (kcode.agents.tool_calls).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kcode.backends.base import ToolSpec
from kcode.messages import ToolResult
from kcode.tools.base import Tool, ToolContext, ToolError

READ_ONLY_ROLES = frozenset({"search", "test"})
ALL_ROLES_MCP = frozenset({"edit", "general"})
MCP_PREFIX = "mcp__"

Allow = Callable[[str, bool], bool]  # (tool name, server says read-only) -> may the role use it


def mcp_policy(role: str) -> Allow:
    """Which MCP tools `role` may call (see the module docstring)."""
    if role in READ_ONLY_ROLES:
        return lambda _name, read_only: read_only
    if role in ALL_ROLES_MCP:
        return lambda _name, _read_only: True
    from kcode.extensions.agents import KCODE_TOOLS, custom_agent

    custom = custom_agent(role)
    if custom is None:
        return lambda _name, _read_only: False
    listed = [t for t in custom.tools if t.startswith(MCP_PREFIX)]
    if not listed and set(KCODE_TOOLS) <= set(custom.tools):
        return lambda _name, _read_only: True  # no `tools:` line: every tool
    exact = {t for t in listed if t.count("__") >= 2 and not t.endswith("__*")}
    servers = {t.removesuffix("__*") + "__" for t in listed if t not in exact}
    return lambda name, _read_only: name in exact or any(name.startswith(s) for s in servers)


def takes_skill(role: str) -> bool:
    """Whether `role` gets the `skill` tool (see the module docstring)."""
    from kcode.extensions.agents import KCODE_TOOLS, custom_agent

    custom = custom_agent(role)
    if custom is None:
        return True
    return "skill" in custom.tools or set(KCODE_TOOLS) <= set(custom.tools)


class SubAgentTools(Mapping[str, Tool[Any]]):
    """The built-in tools, then `skill`, then the MCP tools the role allows, re-read before every
    request (a server that connects late adds its tools on the next step, as for the main agent)."""

    def __init__(
        self, base: Mapping[str, Tool[Any]], extra: Mapping[str, Tool[Any]], mcp: Any, allow: Allow
    ) -> None:
        self.base = base
        self.extra = {k: v for k, v in extra.items() if k not in base}
        self.mcp = mcp  # kcode.mcp.manager.McpManager, or None
        self.allow = allow

    def _mcp_allowed(self) -> dict[str, Any]:
        if self.mcp is None:
            return {}
        return {n: i for n, i in self.mcp.tools().items() if self.allow(n, bool(i.read_only))}

    def __getitem__(self, name: str) -> Tool[Any]:
        if name in self.base:
            return self.base[name]
        if name in self.extra:
            return self.extra[name]
        if self.mcp is not None and name.startswith(MCP_PREFIX):
            info = self.mcp.known_tool(name)
            if info is not None and self.allow(name, bool(info.read_only)):
                from kcode.mcp.tools import McpTool

                return McpTool(info, self.mcp)
            # A role that may not use the tool even if it were read-only is refused at once.
            if info is None and self.allow(name, True) and self.mcp.server_for(name) is not None:
                # Its server is still starting: the call waits for the listing, then the role's
                # policy decides on what the server says of the tool (as for the main agent).
                return _NotYetListed(name, self.mcp, self.allow)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield from self.base
        yield from self.extra
        yield from self._mcp_allowed()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def own_specs(self) -> list[ToolSpec]:
        """The fixed part of the tool list (built-in and extension tools), computed once."""
        from kcode.tools.registry import tool_specs

        return tool_specs({**self.base, **self.extra})

    def extra_specs(self) -> list[ToolSpec]:
        """The MCP part, read again before every model request (Agent.current_specs)."""
        if self.mcp is None:
            return []
        self.mcp.start()
        allowed = self._mcp_allowed()
        # The manager's own order (connection, then the server's listing): the same for every
        # sub-agent of a role, so their tool lists stay a shared cacheable prefix.
        return [s for s in self.mcp.tool_specs() if s.name in allowed]


class _NotYetListed(Tool[Any]):
    """An MCP tool named before its server listed it. Not read-only until the server says so:
    the scheduler runs it alone, and approval is asked by the real tool once it is known."""

    description = "an MCP tool whose server is still starting"
    read_only = False

    def __init__(self, name: str, mcp: Any, allow: Allow) -> None:
        self.name = name  # type: ignore[misc]
        self.mcp = mcp
        self.allow = allow
        from kcode.mcp.tools import AnyArgs

        self.args_model = AnyArgs  # type: ignore[misc,assignment]

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        from kcode.mcp.results import CallOutcome
        from kcode.mcp.tools import McpTool

        info = await self.mcp.listed_tool(self.name)
        if isinstance(info, CallOutcome):
            raise ToolError(info.text)
        if info is None or not self.allow(self.name, bool(info.read_only)):
            # The same answer as for a listed tool the role may not use.
            raise ToolError(f"unknown tool {self.name!r} for this sub-agent's role")
        return await McpTool(info, self.mcp).run(args, ctx)


def sub_agent_tools(
    role: str, base: Mapping[str, Tool[Any]], extensions: Any, mcp: Any
) -> SubAgentTools | None:
    """`base` with the role's share of the session's skill and MCP tools; None when there is
    nothing to add (the built-in tools are then used as they are)."""
    extra: Mapping[str, Tool[Any]] = extensions.extra_tools() if extensions is not None else {}
    if not takes_skill(role):
        extra = {name: tool for name, tool in extra.items() if name != "skill"}
    if not extra and mcp is None:
        return None
    return SubAgentTools(base, extra, mcp, mcp_policy(role))


def skills_prompt(extensions: Any, role: str) -> str:
    """The skills listing for a sub-agent's system prompt (sorted: byte-stable per role); empty
    for a role without the `skill` tool."""
    skills = getattr(extensions, "skills", None)
    if not skills or not takes_skill(role):
        return ""
    from kcode.extensions.skills import skills_listing

    return str(skills_listing(skills))
