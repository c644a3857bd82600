"""What an MCP server's tools and results become for kcode: a ToolInfo per tool (the model's
`mcp__server__tool` name, a cleaned schema) and a CallOutcome per call (text and images).

Kept apart from kcode.mcp.client so the connection logic stays readable; nothing here needs the SDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcode.mcp.naming import tool_name

if TYPE_CHECKING:
    from kcode.mcp.config import ServerConfig
from kcode.mcp.schema import clean_schema

MAX_DESCRIPTION = 2048


@dataclass(frozen=True)
class ToolInfo:
    name: str  # mcp__server__tool, what the model calls
    server: str
    tool: str  # the server's own name
    description: str
    schema: dict[str, Any]
    read_only: bool = False


@dataclass
class CallOutcome:
    ok: bool
    text: str
    images: list[tuple[bytes, str]] = field(default_factory=list)


def describe_error(err: BaseException) -> str:
    """One line for an exception, digging through anyio's exception groups."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    name = type(err).__name__
    return f"{name}: {text}" if text else name


def tool_info(server: str, tool: Any) -> ToolInfo:
    description = (tool.description or tool.title or tool.name or "").strip()
    if len(description) > MAX_DESCRIPTION:
        description = description[:MAX_DESCRIPTION] + " …"
    annotations = getattr(tool, "annotations", None)
    read_only = bool(getattr(annotations, "read_only_hint", False))
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    return ToolInfo(
        name=tool_name(server, tool.name),
        server=server,
        tool=tool.name,
        description=f"[MCP {server}] {description}",
        schema=clean_schema(schema),
        read_only=read_only,
    )


def render_result(result: Any) -> CallOutcome:
    """A CallToolResult as text for the model (images kept as images)."""
    import base64

    parts: list[str] = []
    images: list[tuple[bytes, str]] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "image":
            try:
                images.append((base64.b64decode(block.data), block.mime_type))
                parts.append(f"[image {block.mime_type}]")
            except (ValueError, TypeError):
                parts.append("[an image that could not be decoded]")
        elif kind == "resource":
            res = block.resource
            text = getattr(res, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource {res.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource link {block.uri}]")
        else:
            parts.append(f"[{kind or 'unknown'} content]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False, indent=1))
    text = "\n".join(parts) or "(no output)"
    return CallOutcome(not bool(getattr(result, "is_error", False)), text, images)


def clash_note(config: ServerConfig, dropped: ToolInfo, kept: ToolInfo) -> str:
    """Why a tool is not offered: its `mcp__...` name is already another tool's. The first one
    listed (of the stronger server) keeps it, so a rule or hook naming it keeps meaning one tool."""
    owner = (
        f"tool {kept.tool!r}"
        if kept.server == config.name
        else (f"server {kept.server!r}'s tool {kept.tool!r}")
    )
    return (
        f"{config.source}: mcpServers.{config.name}: tool {dropped.tool!r} is left out; its name "
        f"{dropped.name} is already {owner}"
    )
