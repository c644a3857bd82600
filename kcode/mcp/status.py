"""What `/mcp`, `kcode mcp list` and `kcode doctor` print about the MCP servers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kcode.mcp.client import CONNECTED, DISABLED, UNTRUSTED
from kcode.mcp.manager import McpManager

MARKS = {CONNECTED: "✓", DISABLED: "-", UNTRUSTED: "!"}


def status_lines(manager: McpManager) -> list[str]:
    """One entry per server (and per warning); a server's error text and stderr are untrusted, so
    control characters are shown, never sent to the terminal."""
    from kcode.safety.terminal_text import visible

    return [visible(line) for line in _lines(manager)]


def _lines(manager: McpManager) -> list[str]:
    lines = []
    for s in manager.statuses():
        mark = MARKS.get(s.state, "✗" if s.error else "…")
        tools = f", {s.tools} tools" if s.state == CONNECTED else ""
        line = f"{mark} {s.name}: {s.state} ({s.transport} {s.target}{tools}) from {s.source}"
        if s.error:
            line += f"\n    error: {s.error}"
        for note in s.notes:
            line += f"\n    warning: {note}"
        lines.append(line)
    for path in manager.setup.untrusted:
        lines.append(f"! {path}: not started, the repository is not trusted")
    for warning in manager.setup.warnings:
        if not any(warning.startswith(p) for p in manager.setup.untrusted):
            lines.append(f"warning: {warning}")
    if not lines:
        lines.append("no MCP servers configured (kcode mcp add NAME -- COMMAND ARGS...)")
    return lines


def check_servers(config: Any, root: Path, timeout: float = 30.0) -> list[str]:
    """Connect to every configured server once (in parallel), report, stop them again."""
    from kcode.mcp import create_manager, log_dir
    from kcode.mcp.config import McpSetup

    manager = create_manager(config, root) or McpManager(McpSetup(), root, log_dir())

    async def run() -> list[str]:
        try:
            await manager.wait_ready(timeout)
            return status_lines(manager)
        finally:
            await manager.aclose()

    return asyncio.run(run())
