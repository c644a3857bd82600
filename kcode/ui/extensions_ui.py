"""The REPL's side of kcode.extensions: the trust question, /plan and Shift-Tab, plan approval,
custom `/commands` and skills, and Notification hooks when a human is asked something."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text

from kcode.safety.terminal_text import visible

if TYPE_CHECKING:
    from kcode.safety.approval import ApprovalMode
    from kcode.ui.repl_api import ReplApi

# Shift-Tab cycles these (as Claude Code cycles default → accept edits → plan).
MODE_CYCLE = ("ask", "auto-edit", "plan")


async def ask_trust(repl: ReplApi) -> None:
    """Once per repository: may its hooks, commands, agents and MCP servers run? Then Tab
    completes the custom commands and skills that the answer allows."""
    await _ask_trust(repl)
    await _complete_user_commands(repl)


async def _complete_user_commands(repl: ReplApi) -> None:
    from kcode.extensions.session import load_extensions

    try:
        ext = await asyncio.to_thread(load_extensions, repl.root, repl.config, interactive=True)
    except Exception:  # completion is a convenience; the runtime reports real problems
        return
    names = {n for n, s in ext.skills.items() if s.user_invocable} | set(ext.commands)
    completer = repl.prompt.completer
    if names and isinstance(getattr(completer, "commands", None), list):
        completer.commands = sorted(set(completer.commands) | names)  # type: ignore[union-attr]


async def _ask_trust(repl: ReplApi) -> None:
    from kcode.extensions.report import untrusted_project_files
    from kcode.extensions.trust import needs_decision, record_decision

    files = await asyncio.to_thread(untrusted_project_files, repl.root)
    if not needs_decision(repl.root, repl.config, bool(files)):
        return
    repl.console.print(
        Text(
            visible(
                f"This repository has files that run programs or steer agents: {', '.join(files)}. "
                "Trust this project's MCP servers, hooks and commands? They run with your "
                "permissions."
            ),
            style="yellow",
        )
    )
    repl.console.print(Text("Trust this project? [y/N]", style="bold"))
    answer = (await repl.read_choice("[y/N] ")).strip().lower()
    trusted = answer in ("y", "yes")
    path = record_decision(repl.root, trusted)
    shown = "trusted" if trusted else "not trusted; its hooks, commands and agents stay off"
    repl.console.print(Text(visible(f"Project {shown} (saved in {path})."), style="dim"))


def set_mode(repl: ReplApi, mode: str) -> None:
    current = repl.approver.mode
    if mode == "plan" and current != "plan":
        repl.plan_previous = current
    repl.approver.mode = cast("ApprovalMode", mode)  # one of MODE_CYCLE


def next_mode(current: str) -> str:
    if current not in MODE_CYCLE:
        return MODE_CYCLE[0]
    return MODE_CYCLE[(MODE_CYCLE.index(current) + 1) % len(MODE_CYCLE)]


def add_mode_cycle(repl: ReplApi) -> None:
    """Shift-Tab at the prompt: ask → auto-edit → plan → ask (the toolbar shows the mode)."""
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

    bindings = KeyBindings()

    @bindings.add("s-tab")
    def _cycle(event: Any) -> None:
        set_mode(repl, next_mode(repl.approver.mode))
        event.app.invalidate()

    existing = repl.prompt.key_bindings
    repl.prompt.key_bindings = merge_key_bindings([b for b in (existing, bindings) if b])


async def cmd_plan(repl: ReplApi, arg: str) -> None:
    """`/plan` enters plan mode, `/plan off` leaves it, `/plan TASK` plans TASK."""
    from kcode.messages import Message

    if arg.strip().lower() == "off":
        set_mode(repl, repl.plan_previous)
        repl.console.print(f"Plan mode off; approval mode is {repl.approver.mode}.")
        return
    set_mode(repl, "plan")
    repl.console.print(
        "Plan mode: only read tools run; the model answers with a plan for you to approve "
        "(/plan off or Shift-Tab to leave)."
    )
    if arg.strip():
        await repl.run_turn(Message.user(arg.strip()))


async def after_turn(repl: ReplApi) -> None:
    """In plan mode, a turn that ended with an answer ends with a plan: approve it or refine."""
    from kcode.extensions.plan import APPROVED_MESSAGE
    from kcode.messages import Message

    runtime = repl.runtime
    if runtime is None or repl.approver.mode != "plan":
        return
    last = runtime.last_message()
    if last is None or last.role != "assistant" or last.tool_calls or not last.text.strip():
        return
    repl.console.print(Text("Approve this plan and carry it out? [y/N]", style="bold"))
    answer = (await repl.read_choice("[y/N] ")).strip()
    if answer.lower() not in ("y", "yes"):
        repl.console.print(
            Text("Still planning: say what to change (/plan off or Shift-Tab leaves).", "dim")
        )
        return
    set_mode(repl, repl.plan_previous)
    repl.console.print(Text(f"Plan approved; approval mode is {repl.approver.mode}.", "dim"))
    await repl.run_turn(Message.user(APPROVED_MESSAGE))


async def run_user_command(repl: ReplApi, name: str, arg: str) -> bool:
    """`/name args` for a custom command or skill: sent as the message (the loop expands it)."""
    from kcode.messages import Message

    runtime = await repl.ensure_runtime()
    ext = runtime.extensions if runtime is not None else None
    if ext is None or ext.user_command(name) is None:
        return False
    await repl.run_turn(Message.user(f"/{name} {arg}".rstrip()))
    return True


def notify(repl: ReplApi, request: Any) -> None:
    """Notification hooks when kcode asks the human (they run in the background)."""
    from kcode.extensions.notify import notify_permission_prompt

    notify_permission_prompt(repl, request)


def extra_help(repl: ReplApi) -> list[tuple[str, str]]:
    ext = repl.runtime.extensions if repl.runtime is not None else None
    if ext is None:
        return []
    rows = [(f"/{n}", f"skill: {s.description[:70]}") for n, s in sorted(ext.skills.items())
            if s.user_invocable]  # fmt: skip
    rows += [(f"/{n}", c.description[:80]) for n, c in sorted(ext.commands.items())
             if n not in ext.skills]  # fmt: skip
    return rows
