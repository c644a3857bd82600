"""Slash commands. Each is a small async function of (repl, argument); `dispatch` finds it.

/diff compares against a snapshot taken when the session started: in a git repo, `git stash create`
(a commit of the working tree that touches neither the index nor the stash list) or HEAD, plus the
set of untracked files at that moment; outside git, the originals the tools recorded before writing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from kcode.approval import APPROVAL_MODES
from kcode.config_schema import BACKENDS
from kcode.messages import Message
from kcode.terminal_text import visible
from kcode.ui.render import diff_text

if TYPE_CHECKING:
    from kcode.ui.repl import Repl

Handler = Callable[["Repl", str], Awaitable[None]]

INIT_PROMPT = (
    "Write an AGENTS.md file at the repository root for coding agents working here (update it if it "
    "exists). Take a quick look first (list the top-level files, read the README and the build/test "
    "config). Keep it under 60 lines: what the project is, the layout, how to build, run and test "
    "(exact commands), code style rules you can see, and anything surprising. Use write_file."
)


def _git(root: Path, *args: str) -> str | None:
    from kcode.vcs.gitcmd import GitError, run_git

    try:
        done = run_git(root, *args, ok_codes=range(-256, 256), timeout=20)
    except GitError:
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


@dataclass
class StartSnapshot:
    commit: str | None = None
    untracked: set[str] = field(default_factory=set)

    @classmethod
    def take(cls, root: Path) -> StartSnapshot:
        if _git(root, "rev-parse", "--is-inside-work-tree") is None:
            return cls()
        commit = (_git(root, "stash", "create") or "").strip() or (
            _git(root, "rev-parse", "--verify", "-q", "HEAD") or ""
        ).strip()
        untracked = _git(root, "ls-files", "--others", "--exclude-standard") or ""
        return cls(commit or None, set(untracked.splitlines()))

    def diff(self, root: Path, originals: dict[Path, bytes | None]) -> str:
        if self.commit is None:
            return originals_diff(root, originals)
        tracked = _git(root, "diff", "--no-color", self.commit, "--") or ""
        now_untracked = set(
            (_git(root, "ls-files", "--others", "--exclude-standard") or "").splitlines()
        )
        added = [
            _file_diff(rel, b"", (root / rel).read_bytes())
            for rel in sorted(now_untracked - self.untracked)
            if (root / rel).is_file()
        ]
        return tracked + "".join(added)


def _file_diff(rel: str, before: bytes, after: bytes) -> str:
    old = before.decode("utf-8", errors="replace").splitlines(keepends=True)
    new = after.decode("utf-8", errors="replace").splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, f"a/{rel}", f"b/{rel}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def originals_diff(root: Path, originals: dict[Path, bytes | None]) -> str:
    out = []
    for path, before in sorted(originals.items()):
        try:
            after = path.read_bytes()
        except OSError:
            after = b""
        if after != (before or b""):
            rel = os.path.relpath(path, root)
            out.append(_file_diff(rel, before or b"", after))
    return "".join(out)


def undo_tool_writes(originals: dict[Path, bytes | None], modes: dict[Path, int]) -> list[str]:
    """Put back what the tools overwrote and delete what they created. Returns what changed."""
    restored = []
    for path, before in originals.items():
        try:
            if before is None:
                if path.exists():
                    path.unlink()
                    restored.append(f"deleted {path}")
                continue
            if path.exists() and path.read_bytes() == before:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(before)
            if path in modes:
                os.chmod(path, modes[path] & 0o7777)
            restored.append(f"restored {path}")
        except OSError as err:
            restored.append(f"could not restore {path}: {err}")
    originals.clear()
    modes.clear()
    return restored


async def _runtime(repl: Repl) -> Any:
    return await repl.ensure_runtime()


async def cmd_help(repl: Repl, arg: str) -> None:
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


async def cmd_model(repl: Repl, arg: str) -> None:
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
    runtime = repl.runtime
    if runtime is None and repl._runtime_task is not None:
        # The runtime is still being built in the background from the old config: wait for it and
        # switch it, or the first request would still go out with the old model.
        try:
            runtime = repl.runtime = await repl._runtime_task
        except Exception:
            repl._runtime_task = None  # failed with the old config; the next turn uses the new one
    repl.config = config
    if runtime is not None and config.model != runtime.agent.options.model:
        _cache_warning(repl, runtime.agent.history, "model")
    if runtime is None:
        await backend.aclose()  # the runtime is built later, from the new config
    else:
        old = runtime.backend
        runtime.backend = runtime.agent.backend = backend
        runtime.agent.options = dataclasses.replace(runtime.agent.options, model=config.model)
        runtime.config = config
        await old.aclose()
    repl.console.print(Text(visible(f"Now using {config.model} ({backend_label(config)}).")))


async def cmd_approval(repl: Repl, arg: str) -> None:
    if arg not in APPROVAL_MODES:
        repl.console.print(
            f"approval: {repl.approver.mode}. Choose one of: {', '.join(APPROVAL_MODES)} "
            "(read-only: no edits or commands; ask: ask for both; auto-edit: edits without "
            "asking; auto: everything without asking)"
        )
        return
    repl.approver.mode = arg
    repl.console.print(f"Approval mode is now {arg}.")


async def cmd_clear(repl: Repl, arg: str) -> None:
    runtime = await _runtime(repl)
    if runtime is None:
        return
    _cache_warning(repl, runtime.agent.history, "clear")
    del runtime.agent.history[1:]
    runtime.ctx.todos.clear()
    runtime.session.log_history(runtime.agent.history)
    repl.console.print("Conversation cleared (the system prompt and AGENTS.md stay).")


async def compact_now(repl: Repl, trigger: str = "manual", instructions: str = "") -> None:
    from kcode.agents.compaction import compact_history

    runtime = await _runtime(repl)
    if runtime is None:
        return
    from kcode.ui.extensions_ui import pre_compact

    if not await pre_compact(repl, trigger, instructions):
        return
    agent = runtime.agent
    status = repl.begin_busy("Compacting…")  # a summary request takes seconds: show it working
    try:
        result = await compact_history(agent.history, agent.backend, agent.options, agent.ctx.todos)
    except Exception as err:
        repl.console.print(
            Text(visible(f"✗ compaction failed, history unchanged: {err}"), style="red")
        )
        return
    finally:
        repl.renderer.end_busy()
    if result is None:
        repl.console.print("Nothing to compact yet (only the latest exchange is in the history).")
        return
    status.add_usage(result.prompt_tokens, result.completion_tokens)
    agent.stats.requests += 1
    agent.stats.prompt_tokens += result.prompt_tokens
    agent.stats.completion_tokens += result.completion_tokens
    if result.tokens_after >= result.tokens_before:
        repl.console.print(
            f"Compaction would not make the context smaller (~{result.tokens_before:,} → "
            f"~{result.tokens_after:,} tokens); the history is unchanged."
        )
        return
    agent.history[:] = result.history
    runtime.session.log_history(agent.history)
    repl.console.print(
        f"Compacted {result.summarised_messages} messages: ~{result.tokens_before:,} → "
        f"~{result.tokens_after:,} tokens."
    )


async def cmd_compact(repl: Repl, arg: str) -> None:
    await compact_now(repl, instructions=arg.strip())  # PreCompact hooks see them


async def cmd_diff(repl: Repl, arg: str) -> None:
    runtime = await _runtime(repl)
    if runtime is None:
        return
    snapshot = repl.snapshot or StartSnapshot()
    diff = await asyncio.to_thread(snapshot.diff, repl.root, runtime.ctx.changes.originals)
    if not diff.strip():
        repl.console.print("No changes since the session started.")
        return
    repl.console.print(diff_text(diff))


async def cmd_undo(repl: Repl, arg: str) -> None:
    """`/undo [N]`: put back what the last N turns changed (checkpoints include shell changes)."""
    runtime = await _runtime(repl)
    if runtime is None:
        return
    turns = arg.strip() or "1"
    if not turns.isdigit() or int(turns) < 1:
        repl.console.print(
            Text(visible(f"/undo takes a number of turns (1 or more), not {turns!r}"))
        )
        return
    checkpoints = runtime.ctx.checkpoints
    if checkpoints is None:  # no checkpointer: restore what the file tools recorded
        changes = runtime.ctx.changes
        if not changes.originals:
            repl.console.print("Nothing to undo: the tools have not written any file.")
            return
        for line in undo_tool_writes(changes.originals, changes.modes):
            repl.console.print(Text(visible(line)))
        return
    from kcode.vcs.checkpoints import CheckpointError

    try:
        report = await asyncio.to_thread(checkpoints.undo, int(turns))
    except CheckpointError as err:
        repl.console.print(Text(visible(str(err))))
        return
    for line in report.lines():
        repl.console.print(Text(visible(line)))


async def cmd_stats(repl: Repl, arg: str) -> None:
    runtime = await _runtime(repl)
    if runtime is None:
        return
    from rich.table import Table

    from kcode.agents.usage_report import AGENT_COLUMNS, agent_row, usage_line

    stats = runtime.agent.stats
    repl.console.print(
        Text(visible(usage_line(stats.usage())))
        + Text(f" · steps {stats.total_steps} · critical steps {stats.critical_steps}")
    )
    table = Table(*AGENT_COLUMNS, box=None)
    for row in stats.as_dict()["agents"]:
        table.add_row(*(visible(cell, one_line=True) for cell in agent_row(row)))
    repl.console.print(table)


async def cmd_sessions(repl: Repl, arg: str) -> None:
    from kcode.session import list_sessions

    sessions = await asyncio.to_thread(list_sessions, repl.root)
    if not sessions:
        repl.console.print("No saved sessions for this directory.")
        return
    for info in sessions[:20]:
        line = f"{info.session_id}  {info.messages:>3} msgs  {info.first_prompt}"
        repl.console.print(Text(visible(line, one_line=True)))
    repl.console.print(Text("/resume ID switches to one", style="dim"))


async def cmd_resume(repl: Repl, arg: str) -> None:
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
    if repl.runtime is not None:
        await repl.runtime.aclose()
    repl.runtime, repl._runtime_task, repl.resume_id = None, None, arg
    runtime = await repl.ensure_runtime()
    if runtime is not None:
        replay_history(repl.console, runtime.agent.history)


async def cmd_init(repl: Repl, arg: str) -> None:
    await repl.run_turn(Message.user(INIT_PROMPT))


def _cache_warning(repl: Repl, history: list[Message], reason: str) -> None:
    from kcode.agents.prompt_cache import discard_warning
    from kcode.agents.usage_report import describe_notice

    warning = discard_warning(history, reason)
    if warning is not None:
        repl.console.print(Text(f"! {visible(describe_notice(warning))}", style="yellow"))


async def cmd_think(repl: Repl, arg: str) -> None:
    """Toggle thinking (or /think on|off) for the next requests; the config stays as it was."""
    runtime = await _runtime(repl)
    if runtime is None:
        return
    current = runtime.agent.options.thinking
    wanted = {"on": True, "off": False}.get(arg.lower(), current is False)
    runtime.agent.options = dataclasses.replace(runtime.agent.options, thinking=wanted)
    repl.console.print(f"Thinking is now {'on' if wanted else 'off'}.")


async def cmd_plan(repl: Repl, arg: str) -> None:
    from kcode.ui.extensions_ui import cmd_plan as plan

    await plan(repl, arg)


async def cmd_exit(repl: Repl, arg: str) -> None:
    repl.should_exit = True


async def cmd_mcp(repl: Repl, arg: str) -> None:
    runtime = await _runtime(repl)
    if runtime is None:
        return
    if getattr(runtime, "mcp", None) is None:
        repl.console.print("No MCP servers configured (kcode mcp add NAME -- COMMAND ARGS...).")
        return
    from kcode.mcp.status import status_lines

    for line in status_lines(runtime.mcp):
        repl.console.print(Text(visible(line)))


async def run_mcp_prompt(repl: Repl, name: str, arg: str) -> bool:
    """`/mcp__server__prompt args`: the server's prompt becomes this turn's message."""
    runtime = await _runtime(repl)
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


async def dispatch(repl: Repl, line: str) -> None:
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
