"""`!cmd` and `!!cmd` in the REPL: run a shell command for the user, not for the model."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.text import Text

from kcode.safety.terminal_text import visible

if TYPE_CHECKING:
    from kcode.ui.repl_api import ReplApi


async def run_shell(repl: ReplApi, command: str, *, keep: bool) -> None:
    """`!cmd` shows a command's output without involving the model; `!!cmd` also keeps it."""
    if not command:
        repl.console.print(Text("usage: !command (or !!command to send the output too)", "dim"))
        return
    if "\0" in command:  # a pasted NUL: no command line can carry one (ValueError from exec)
        repl.console.print(Text("a command cannot contain a NUL character; remove it", "red"))
        return
    proc = await asyncio.create_subprocess_shell(
        command,
        cwd=repl.root,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        raise
    output = out.decode("utf-8", errors="replace").rstrip("\n")
    repl.console.print(Text(visible(output)) if output else Text("(no output)", style="dim"))
    repl.console.print(Text(f"[exit {proc.returncode}]", style="dim"))
    if keep:
        repl.pending_context = (
            f"I ran `{command}` (exit {proc.returncode}); its output:\n```\n{output[-20_000:]}\n```"
        )
        repl.console.print(Text("(output will be sent with your next message)", style="dim"))
