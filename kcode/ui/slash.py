"""Slash commands. Each is a small async function of (repl, argument); `dispatch` finds it.

The commands about the conversation and the model are in kcode.ui.slash_session, /diff and /undo in
kcode.ui.slash_changes; they all ask the Runtime (kcode.runtime) to change anything. The REPL is
seen through kcode.ui.repl_api.ReplApi, so nothing here imports kcode.ui.repl.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.text import Text

from kcode.messages import Message
from kcode.safety.approval import APPROVAL_MODES
from kcode.safety.terminal_text import visible
from kcode.ui.slash_changes import (
    StartSnapshot,
    cmd_diff,
    cmd_undo,
    originals_diff,
    undo_tool_writes,
)
from kcode.ui.slash_session import (
    cmd_clear,
    cmd_compact,
    cmd_model,
    cmd_resume,
    cmd_sessions,
    cmd_stats,
    cmd_think,
    compact_now,
)

if TYPE_CHECKING:
    from kcode.ui.repl_api import ReplApi

__all__ = ["COMMANDS", "StartSnapshot", "compact_now", "dispatch", "originals_diff",
           "undo_tool_writes"]  # fmt: skip

Handler = Callable[["ReplApi", str], Awaitable[None]]

INIT_PROMPT = (
    "Write an AGENTS.md file at the repository root for coding agents working here (update it if it "
    "exists). Take a quick look first (list the top-level files, read the README and the build/test "
    "config). Keep it under 60 lines: what the project is, the layout, how to build, run and test "
    "(exact commands), code style rules you can see, and anything surprising. Use write_file."
)


async def cmd_help(repl: ReplApi, arg: str) -> None:
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    for name, (_, text) in COMMANDS.items():
        table.add_row(f"/{name}", text)
    from kcode.ui.extensions_ui import extra_help

    for name, text in extra_help(repl):
        table.add_row(name, Text(visible(text, one_line=True)))  # Text: repo text, no markup
    repl.console.print(table)
    repl.console.print(
        Text(
            "@path mentions a file (Tab completes; images are attached) · !cmd runs a shell command "
            "(!!cmd also sends its output) · Enter sends, Alt-Enter/Ctrl-J newline · Ctrl-R searches "
            "history · Ctrl-C cancels a turn; twice at an empty prompt exits",
            style="dim",
        )
    )


async def cmd_approval(repl: ReplApi, arg: str) -> None:
    if arg not in APPROVAL_MODES:
        repl.console.print(
            f"approval: {repl.approver.mode}. Choose one of: {', '.join(APPROVAL_MODES)} "
            "(read-only: no edits or commands; ask: ask for both; auto-edit: edits without "
            "asking; auto: everything without asking)"
        )
        return
    repl.approver.mode = arg
    repl.console.print(f"Approval mode is now {arg}.")


async def cmd_init(repl: ReplApi, arg: str) -> None:
    await repl.run_turn(Message.user(INIT_PROMPT))


async def cmd_plan(repl: ReplApi, arg: str) -> None:
    from kcode.ui.extensions_ui import cmd_plan as plan

    await plan(repl, arg)


async def cmd_exit(repl: ReplApi, arg: str) -> None:
    repl.should_exit = True


async def cmd_mcp(repl: ReplApi, arg: str) -> None:
    runtime = await repl.ensure_runtime()
    if runtime is None:
        return
    if getattr(runtime, "mcp", None) is None:
        repl.console.print("No MCP servers configured (kcode mcp add NAME -- COMMAND ARGS...).")
        return
    from kcode.mcp.status import status_lines

    for line in status_lines(runtime.mcp):
        repl.console.print(Text(visible(line)))


async def run_mcp_prompt(repl: ReplApi, name: str, arg: str) -> bool:
    """`/mcp__server__prompt args`: the server's prompt becomes this turn's message."""
    runtime = await repl.ensure_runtime()
    if runtime is None or getattr(runtime, "mcp", None) is None:
        return False
    from kcode.mcp.prompts import expand_prompt_command

    found = await expand_prompt_command(runtime.mcp, name, arg)
    if found is None:
        return False
    ok, text = found
    if not ok:
        repl.console.print(Text(visible(f"✗ {text}"), style="red"))
        return True
    await repl.run_turn(Message.user(text))
    return True


COMMANDS: dict[str, tuple[Handler, str]] = {
    "help": (cmd_help, "show commands and keys"),
    "model": (cmd_model, "show or switch the model: /model NAME or /model BACKEND:NAME"),
    "approval": (cmd_approval, "show or set the approval mode: read-only|ask|auto-edit|auto"),
    "clear": (cmd_clear, "start a fresh conversation (same session)"),
    "compact": (cmd_compact, "summarise old tool traffic to free context"),
    "diff": (cmd_diff, "show changes since the session started"),
    "undo": (cmd_undo, "undo the last turn's file changes (/undo N: the last N turns)"),
    "stats": (cmd_stats, "requests, tokens, cache hits, cost, steps, time per agent"),
    "think": (cmd_think, "toggle thinking (/think on|off)"),
    "sessions": (cmd_sessions, "list saved sessions for this directory"),
    "resume": (cmd_resume, "resume a saved session: /resume ID"),
    "init": (cmd_init, "write an AGENTS.md for this repository"),
    "exit": (cmd_exit, "leave (the session is saved)"),
    "plan": (cmd_plan, "plan mode: read tools only, then approve the plan (/plan off leaves)"),
    "mcp": (cmd_mcp, "MCP servers: state, tools and errors"),
}


async def dispatch(repl: ReplApi, line: str) -> None:
    name, _, arg = line[1:].partition(" ")
    entry = COMMANDS.get(name.lower())
    if entry is None and name.startswith("mcp__") and await run_mcp_prompt(repl, name, arg):
        return
    if entry is None:
        from kcode.ui.extensions_ui import run_user_command

        if await run_user_command(repl, name, arg.strip()):  # a custom command or a skill
            return
        close = difflib.get_close_matches(name.lower(), list(COMMANDS), n=1, cutoff=0.4)
        hint = f" Did you mean /{close[0]}?" if close else ""
        repl.console.print(
            Text(visible(f"Unknown command /{name}.{hint} /help lists them."), "yellow")
        )
        return
    await entry[0](repl, arg.strip())
