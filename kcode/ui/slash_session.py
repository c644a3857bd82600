"""Slash commands about the conversation and the model: /model, /think, /clear, /compact, /stats,
/sessions, /resume. Each asks the Runtime to do the work (kcode.runtime) and says what came of it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from rich.text import Text

from kcode.config.schema import BACKENDS
from kcode.events import CacheWarning
from kcode.safety.terminal_text import visible

if TYPE_CHECKING:
    from kcode.ui.repl_api import ReplApi


def _say_notice(repl: ReplApi, notice: CacheWarning | None) -> None:
    if notice is not None:
        from kcode.agents.usage_report import describe_notice

        repl.console.print(Text(f"! {visible(describe_notice(notice))}", style="yellow"))


async def cmd_model(repl: ReplApi, arg: str) -> None:
    from kcode.runtime import backend_label, create_backend

    if not arg:
        shown = f"model: {repl.model_name()} ({backend_label(repl.config)})"
        repl.console.print(Text(visible(shown)))
        return
    update: dict[str, Any] = {"model": arg}
    backend_name, _, model = arg.partition(":")
    if model and backend_name in BACKENDS:
        update = {"backend": backend_name, "model": model}
    config = repl.config.overridden("/model", **update)
    try:
        backend = await asyncio.to_thread(create_backend, config)
    except Exception as err:
        repl.console.print(Text(visible(f"✗ cannot switch to {arg}: {err}"), style="bold red"))
        return
    # A runtime still being built from the old config is waited for and switched, or the first
    # request would still go out with the old model.
    runtime = await repl.built_runtime()
    repl.config = config
    if runtime is None:
        await backend.aclose()  # the runtime is built later, from the new config
    else:
        _say_notice(repl, await runtime.switch_backend(config, backend))
    repl.console.print(Text(visible(f"Now using {config.model} ({backend_label(config)}).")))


async def cmd_think(repl: ReplApi, arg: str) -> None:
    """Toggle thinking (or /think on|off) for the next requests; the config stays as it was."""
    runtime = await repl.ensure_runtime()
    if runtime is None:
        return
    wanted = runtime.set_thinking({"on": True, "off": False}.get(arg.lower()))
    repl.console.print(f"Thinking is now {'on' if wanted else 'off'}.")


async def cmd_clear(repl: ReplApi, arg: str) -> None:
    runtime = await repl.ensure_runtime()
    if runtime is None:
        return
    cleared = await runtime.clear()
    _say_notice(repl, cleared.notice)
    repl.console.print("Conversation cleared (the system prompt and AGENTS.md stay).")


async def compact_now(
    repl: ReplApi, trigger: Literal["manual", "auto"] = "manual", instructions: str = ""
) -> None:
    runtime = await repl.ensure_runtime()
    if runtime is None:
        return
    status = repl.begin_busy("Compacting…")  # a summary request takes seconds: show it working
    try:
        done = await runtime.compact(trigger, instructions)
    finally:
        repl.renderer.end_busy()
    status.add_usage(done.prompt_tokens, done.completion_tokens)
    match done.outcome:
        case "blocked":
            repl.console.print(Text(visible(f"Compaction skipped: {done.reason}"), "yellow"))
        case "failed":
            repl.console.print(
                Text(visible(f"✗ compaction failed, history unchanged: {done.reason}"), "red")
            )
        case "nothing":
            repl.console.print(
                "Nothing to compact yet (only the latest exchange is in the history)."
            )
        case "not_smaller":
            repl.console.print(
                f"Compaction would not make the context smaller (~{done.tokens_before:,} → "
                f"~{done.tokens_after:,} tokens); the history is unchanged."
            )
        case "compacted":
            repl.console.print(
                f"Compacted {done.summarised_messages} messages: ~{done.tokens_before:,} → "
                f"~{done.tokens_after:,} tokens."
            )


async def cmd_compact(repl: ReplApi, arg: str) -> None:
    await compact_now(repl, instructions=arg.strip())


async def cmd_stats(repl: ReplApi, arg: str) -> None:
    runtime = await repl.ensure_runtime()
    if runtime is None:
        return
    from rich.table import Table

    from kcode.agents.usage_report import AGENT_COLUMNS, agent_row, usage_line

    stats = runtime.stats()
    repl.console.print(
        Text(visible(usage_line(stats.usage)))
        + Text(f" · steps {stats.total_steps} · critical steps {stats.critical_steps}")
    )
    table = Table(*AGENT_COLUMNS, box=None)
    for row in stats.agents:
        table.add_row(*(visible(cell, one_line=True) for cell in agent_row(row)))
    repl.console.print(table)


async def cmd_sessions(repl: ReplApi, arg: str) -> None:
    from kcode.session import list_sessions

    sessions = await asyncio.to_thread(list_sessions, repl.root)
    if not sessions:
        repl.console.print("No saved sessions for this directory.")
        return
    for info in sessions[:20]:
        line = f"{info.session_id}  {info.messages:>3} msgs  {info.first_prompt}"
        repl.console.print(Text(visible(line, one_line=True)))
    repl.console.print(Text("/resume ID switches to one", style="dim"))


async def cmd_resume(repl: ReplApi, arg: str) -> None:
    from kcode.session import Session, SessionError
    from kcode.ui.sessions_view import replay_history

    if not arg:
        await cmd_sessions(repl, "")
        return
    try:
        Session.open_existing(arg)
    except SessionError as err:
        repl.console.print(Text(visible(f"✗ {err}"), style="red"))
        return
    runtime = await repl.switch_session(arg)
    if runtime is not None:
        replay_history(repl.console, runtime.history)
