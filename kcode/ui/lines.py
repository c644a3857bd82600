"""What the REPL does with a typed line: a /command, a `!cmd` shell escape, or a message to the
model (with its @file mentions attached and `@server:uri` MCP resources expanded)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from kcode.messages import Message
from kcode.safety.terminal_text import visible
from kcode.ui.input import MentionError, parse_mentions

if TYPE_CHECKING:
    from kcode.ui.repl_api import ReplApi


async def handle_line(repl: ReplApi, line: str, images: list[Path] | None = None) -> None:
    text = line.strip()
    if not text and not images:
        return
    if text.startswith("/"):
        from kcode.ui.slash import dispatch

        await dispatch(repl, text)
        return
    if text.startswith("!"):
        from kcode.ui.shell_escape import run_shell

        # `!cmd` shows a command's output without involving the model; `!!cmd` also keeps it.
        await run_shell(repl, text.lstrip("!").strip(), keep=text.startswith("!!"))
        return
    try:
        parsed = await asyncio.to_thread(parse_mentions, line, repl.root, images or [])
    except MentionError as err:
        # Not put back at the prompt: the next thing typed would be glued onto it. It is in
        # the history, so ↑ brings it back for editing.
        repl.console.print(Text(visible(f"✗ {err} — not sent; ↑ recalls the line"), "bold red"))
        return
    body = parsed.text.strip()
    body = await _mcp_resources(repl, body)
    if parsed.files:
        runtime = await repl.ensure_runtime()
        if runtime is None:
            return
        from kcode.ui.attach import attach_mentions

        attached, notes = await attach_mentions(parsed.files, repl.root, runtime.ctx)
        for note in notes:
            repl.renderer.print(Text(visible(note, one_line=True), style="dim"))
        body = f"{body}\n\n{attached}"
    if repl.pending_context:
        body = f"{repl.pending_context}\n\n{body}"
        repl.pending_context = ""
    await repl.run_turn(Message.user(body, tuple(parsed.images)))


async def _mcp_resources(repl: ReplApi, body: str) -> str:
    """`@server:uri` mentions: the MCP resources' contents go with the message."""
    from kcode.mcp.prompts import RESOURCE_MENTION, expand_resource_mentions

    if not RESOURCE_MENTION.search(body):
        return body
    runtime = await repl.ensure_runtime()
    if runtime is None or runtime.mcp is None:
        return body
    body, errors = await expand_resource_mentions(runtime.mcp, body)
    for error in errors:
        repl.console.print(Text(visible(f"✗ {error}"), style="yellow"))
    return body
