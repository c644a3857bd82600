"""MCP tools as kcode tools, and the tool set that grows when a server connects late.

`McpToolset` wraps the built-in tool mapping. The agent loop re-reads `extra_specs()` before every
model request, so a server that finishes starting during step 1 has its tools offered in step 2.

Approval: an MCP tool can do anything its server can, so every call goes through the same approval
path as `shell` (action "mcp"): allowed in `auto`, asked in `ask` and `auto-edit`, refused in
`read-only`; rules name the tool: `mcp__github__*`, `mcp__github__create_issue`,
`mcp__db__query(*SELECT*)` (the pattern is matched against the arguments as compact JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from kcode.backends.base import ToolSpec
from kcode.mcp.manager import SEARCH_TOOL, McpManager, search_spec
from kcode.mcp.results import ToolInfo
from kcode.messages import ToolResult
from kcode.safety.approval import ApprovalRequest
from kcode.tools.base import Tool, ToolContext

MAX_DETAIL = 4000


class AnyArgs:
    """MCP arguments, passed on as they are: the server checks them against its own schema.

    Not a pydantic model: importing pydantic before the first model request costs more than the
    request itself (kcode.tools.spec_cache), and there is nothing for it to check here."""

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.arguments = arguments

    @classmethod
    def model_validate(cls, data: Any) -> AnyArgs:
        # The loop only hands over JSON objects (anything else is answered before a tool runs).
        return cls(dict(data) if isinstance(data, dict) else {})


class SearchArgs(AnyArgs):
    @property
    def query(self) -> str:
        value = self.arguments.get("query", "")
        return value if isinstance(value, str) else str(value)


class McpTool(Tool[AnyArgs]):  # type: ignore[type-var]
    args_model = AnyArgs  # type: ignore[assignment]

    def __init__(self, info: ToolInfo, manager: McpManager) -> None:
        self.info = info
        self.manager = manager
        self.name = info.name  # type: ignore[misc]
        self.description = info.description  # type: ignore[misc]
        self.read_only = info.read_only  # type: ignore[misc]

    def schema(self) -> dict[str, Any]:
        return self.info.schema

    async def run(self, args: AnyArgs, ctx: ToolContext) -> ToolResult:
        arguments = args.arguments
        detail = json.dumps(arguments, indent=2, ensure_ascii=False)
        if len(detail) > MAX_DETAIL:
            detail = detail[:MAX_DETAIL] + "\n…"
        await ctx.approve(
            ApprovalRequest(
                action="mcp", tool=self.name, summary=f"call {self.name}", detail=detail
            )
        )
        outcome = await self.manager.call(self.name, arguments)
        images = []
        if outcome.images:
            import asyncio

            from kcode.images import ImageError, prepare_image_bytes

            for data, _mime in outcome.images[:4]:  # a server's image is untrusted: re-encode it
                try:
                    prepared = await asyncio.to_thread(prepare_image_bytes, data, self.name)
                except ImageError:
                    continue
                images.append(prepared.part)
        return ToolResult(
            "",
            outcome.ok,
            outcome.text,
            {"server": self.info.server, "tool": self.info.tool},
            tuple(images),
        )


class McpSearchTool(Tool[SearchArgs]):  # type: ignore[type-var]
    name = SEARCH_TOOL
    description = search_spec(0).description
    args_model = SearchArgs  # type: ignore[assignment]
    read_only = True

    def __init__(self, manager: McpManager) -> None:
        self.manager = manager

    def schema(self) -> dict[str, Any]:
        return search_spec(0).parameters

    async def run(self, args: SearchArgs, ctx: ToolContext) -> ToolResult:
        found = self.manager.search(args.query)
        if not found:
            return ToolResult("", True, f"no MCP tool matches {args.query!r}")
        lines = [f"{t.name}: {t.description[:200]}" for t in found]
        return ToolResult("", True, "tools you can call now:\n" + "\n".join(lines))


class McpToolset(Mapping[str, Tool[Any]]):
    """The built-in tools plus whatever MCP tools are connected right now."""

    def __init__(self, base: Mapping[str, Tool[Any]], manager: McpManager) -> None:
        self.base = base
        self.manager = manager

    def __getitem__(self, name: str) -> Tool[Any]:
        if name in self.base:
            return self.base[name]
        if name == SEARCH_TOOL and self.manager.many_tools():
            return McpSearchTool(self.manager)
        info = self.manager.known_tool(name)
        if info is None:
            conn = self.manager.server_for(name)
            if conn is None:
                raise KeyError(name)
            # A server still starting (or failed): the call waits for it and reconnects.
            info = ToolInfo(name, conn.config.name, name, "", {})
        return McpTool(info, self.manager)

    def __iter__(self) -> Iterator[str]:
        yield from self.base
        if self.manager.many_tools():
            yield SEARCH_TOOL
        yield from self.manager.tools()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def extra_specs(self) -> list[ToolSpec]:
        """The MCP part of the tool list, read again before every model request."""
        self.manager.start()
        return self.manager.tool_specs()
