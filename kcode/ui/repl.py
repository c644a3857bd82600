"""The interactive REPL: read a line, dispatch it, run agent turns as cancellable tasks.

Startup stays light: the prompt is drawn first, and the runtime (tools, session, backend — which
imports openai) is built in a worker thread in the background; the first turn waits for it.
Ctrl-C during a turn cancels the turn task (the loop gives every unfinished tool call a "cancelled"
result, so the history stays valid); Ctrl-C twice at an empty prompt, Ctrl-D or /exit leave.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import AnyFormattedText
from rich.console import Console
from rich.text import Text

from kcode.approval import InteractiveApprover
from kcode.config import Config
from kcode.extensions.notify import arm_idle_notice
from kcode.messages import Message
from kcode.terminal_text import visible
from kcode.ui.approval_prompt import ApprovalAsker, ProjectRules
from kcode.ui.busy import BusyLines
from kcode.ui.input import (
    MentionError,
    PromptInterrupt,
    ReplCompleter,
    build_prompt_session,
    list_project_files,
    parse_mentions,
    toolbar_html,
)
from kcode.ui.keytap import KeyTap, QueuedExit, keep_early_keys
from kcode.ui.launch import GREETING
from kcode.ui.model_info import discovered_model_note, model_name
from kcode.ui.render import MIN_WIDTH, Renderer
from kcode.ui.sessions_view import replay_history
from kcode.ui.termmode import quiet_terminal

# Approximate list prices in USD per million tokens (input, output); other models show tokens only.
PRICES: dict[str, tuple[float, float]] = {"gpt-5-mini": (0.25, 2.0), "kimi-k2.5": (0.6, 3.0)}


class NotATerminal(RuntimeError):
    """The REPL needs a terminal; the caller should fall back to `kcode -p` behaviour."""

    def __init__(self) -> None:
        super().__init__("stdin is not a terminal; use kcode -p PROMPT")


def _start_mcp_servers(task: asyncio.Future[Any]) -> None:
    """MCP servers start on this loop as soon as the runtime exists, while the user types."""
    if task.cancelled() or task.exception() is not None:
        return
    manager = getattr(task.result(), "mcp", None)
    if manager is not None:
        manager.start()


class Repl(BusyLines):
    def __init__(
        self,
        config: Config,
        root: Path,
        *,
        console: Console | None = None,
        resume_id: str | None = None,
        backend: Any = None,
        runtime_factory: Callable[[], Any] | None = None,
        prompt_session: PromptSession[str] | None = None,
        **io: Any,
    ) -> None:
        self.config = config
        self.root = root
        self.console = console or Console(highlight=False)
        self.renderer = Renderer(self.console)
        self.resume_id = resume_id
        self._backend_override = backend  # tests inject a backend instead of building one
        self._runtime_factory = runtime_factory  # or a whole runtime (e.g. with fewer tools)
        self.runtime: Any = None  # kcode.runtime.Runtime once built (imported lazily)
        self._runtime_task: asyncio.Future[Any] | None = None
        self.turn_task: asyncio.Task[None] | None = None
        self.should_exit = False
        self.pending_context = ""  # output of `!!cmd`, sent with the next message
        self.prefill = ""  # a line given back to the user after it could not be sent
        self.snapshot: Any = None  # kcode.ui.slash.StartSnapshot for /diff
        self._files: list[str] | None = None
        self._io = io
        self.rules = ProjectRules(root)
        self.asker = ApprovalAsker(
            self.console, self.rules, self._read_choice, self._before_ask, self._after_ask
        )
        self.approver = InteractiveApprover(config.approval or "ask", self.asker)
        from kcode.ui.slash import COMMANDS

        if prompt_session is None:
            completer = ReplCompleter(COMMANDS, self._project_files)
            prompt_session = build_prompt_session(root, completer, self.toolbar, **io)
        else:  # drawn before this module was imported (kcode.ui.launch): take it over
            prompt_session.bottom_toolbar = self.toolbar
            if isinstance(prompt_session.completer, ReplCompleter):
                prompt_session.completer.commands = sorted(COMMANDS)
                prompt_session.completer.set_files(self._project_files)
        self.prompt = prompt_session
        self._choice_prompt: PromptSession[str] = PromptSession(**io)
        from kcode.ui.extensions_ui import add_mode_cycle

        add_mode_cycle(self)  # Shift-Tab: ask → auto-edit → plan
        # Keys typed while busy (a turn, /compact): queued and sent afterwards, never echoed raw.
        self.keytap = KeyTap(lambda: self.prompt.input, self._interrupt, self.renderer.refresh)
        self.queue: list[str | QueuedExit] = []
        self._line_task: asyncio.Task[None] | None = None
        self._tap_was_active = False
        self._interrupted = False

    # --- lazy pieces -----------------------------------------------------------------------------
    def _project_files(self) -> list[str]:
        if self._files is None:
            self._files = list_project_files(self.root)
        return self._files

    def start_background_setup(self) -> None:
        if self._runtime_task is None:
            self._runtime_task = asyncio.ensure_future(asyncio.to_thread(self._build_runtime))
            self._runtime_task.add_done_callback(_start_mcp_servers)

    def _build_runtime(self) -> Any:
        from kcode.runtime import build_runtime
        from kcode.ui.slash import StartSnapshot

        if self._runtime_factory is not None:
            self.snapshot = StartSnapshot.take(self.root)
            return self._runtime_factory()
        runtime = build_runtime(
            self.config,
            self.root,
            self.approver,
            interactive=True,
            resume_id=self.resume_id,
            backend=self._backend_override,
        )
        self.snapshot = StartSnapshot.take(self.root)
        return runtime

    async def ensure_runtime(self) -> Any:
        """The runtime, or None after printing why it cannot be built (e.g. no model configured)."""
        if self.runtime is not None:
            return self.runtime
        self.start_background_setup()
        assert self._runtime_task is not None
        try:
            self.runtime = await self._runtime_task
        except Exception as err:  # ConfigError, SessionError, a backend that cannot start
            self._runtime_task = None
            self.console.print(Text(visible(f"✗ cannot start the agent: {err}"), style="bold red"))
            return None
        self._say_discovered_model()
        return self.runtime

    def _say_discovered_model(self) -> None:
        note = discovered_model_note(self.config)
        if note is not None:
            self.renderer.print(note)

    def model_name(self) -> str:
        return model_name(self.config, self.runtime)

    # --- toolbar ---------------------------------------------------------------------------------
    def toolbar(self) -> AnyFormattedText:
        from kcode.agents.compaction import estimate_tokens

        model = self.model_name()
        used, cost = 0, ""
        if self.runtime is not None:
            agent = self.runtime.agent
            used = estimate_tokens(agent.history)
            usage = agent.stats.usage()
            price = PRICES.get(self.config.model)
            if price:
                dollars = (
                    usage["prompt_tokens"] * price[0] + usage["completion_tokens"] * price[1]
                ) / 1e6
                cost = f" · ${dollars:.3f}"
            else:
                cost = f" · {usage['prompt_tokens'] + usage['completion_tokens']:,} tok"
        return toolbar_html(model, self.approver.mode, used, self.config.context_window, cost)

    # --- approvals -------------------------------------------------------------------------------
    def _before_ask(self, request: Any) -> None:
        self.renderer.hold()
        self._tap_was_active = self.keytap.active
        self.keytap.stop()
        from kcode.ui.extensions_ui import notify

        notify(self, request)  # Notification hooks
        if request.action == "edit":
            self.renderer.note_prompted("main", request.call_id)

    def _after_ask(self, request: Any) -> None:
        if self._tap_was_active:
            self.keytap.start()
        self.renderer.release()

    async def _read_choice(self, message: str) -> str:
        try:
            return await self._choice_prompt.prompt_async(message, handle_sigint=False)
        except (PromptInterrupt, KeyboardInterrupt, EOFError):
            self.cancel_turn()
            return "n"

    # --- turns -----------------------------------------------------------------------------------
    def cancel_turn(self) -> None:
        if self.turn_task is not None and not self.turn_task.done():
            self.turn_task.cancel()

    async def run_turn(self, message: Message) -> None:
        # The first turn may wait for the runtime (imports, tools): show that it is starting.
        status = self.begin_busy("Working…" if self.runtime is not None else "Starting…")
        runtime = await self.ensure_runtime()
        if runtime is None:
            self.renderer.end_busy()
            self.prefill = message.text
            return
        await self._maybe_compact(runtime)
        from kcode.agents.compaction import estimate_tokens

        if self.renderer.status is not status:  # /compact showed (and ended) its own
            status = self.begin_busy("Working…")
        status.label = "Working…"
        status.estimated_in = estimate_tokens([*runtime.agent.history, message])
        self.turn_task = asyncio.create_task(self._consume(runtime, message))
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self.cancel_turn)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        try:
            await asyncio.wait({self.turn_task})
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
            self.renderer.end_busy()
        if self.turn_task.cancelled():
            self.renderer.finish()
            self.console.print(
                Text("⏹ interrupted — the conversation is kept; send your next message", "yellow")
            )
        elif self.turn_task.exception() is not None:
            self.renderer.finish()
            err = self.turn_task.exception()
            self.console.print(
                Text(visible(f"✗ the turn failed: {type(err).__name__}: {err}"), "bold red")
            )
        self.turn_task = None
        from kcode.ui.extensions_ui import after_turn

        await after_turn(self)  # plan mode: approve the plan or refine it

    async def _consume(self, runtime: Any, message: Message) -> None:
        from kcode.events import TurnFinished

        async for event in runtime.agent.run_turn(message):
            self.renderer.handle(event)
            runtime.session.log_event(event)
            if isinstance(event, TurnFinished) and event.reason != "completed":
                self.renderer.print(Text(f"(turn ended: {event.reason})", style="dim"))

    async def _maybe_compact(self, runtime: Any) -> None:
        from kcode.agents.compaction import needs_compaction

        if needs_compaction(runtime.agent.history, self.config.context_window):
            from kcode.ui.slash import compact_now

            self.console.print(Text("Context is nearly full; compacting…", style="dim"))
            await compact_now(self, "auto")

    # --- lines -----------------------------------------------------------------------------------
    async def handle_line(self, line: str, images: list[Path] | None = None) -> None:
        text = line.strip()
        if not text and not images:
            return
        if text.startswith("/"):
            from kcode.ui.slash import dispatch

            await dispatch(self, text)
            return
        if text.startswith("!"):
            await self.run_shell(text.lstrip("!").strip(), keep=text.startswith("!!"))
            return
        try:
            parsed = await asyncio.to_thread(parse_mentions, line, self.root, images or [])
        except MentionError as err:
            # Not put back at the prompt: the next thing typed would be glued onto it. It is in
            # the history, so ↑ brings it back for editing.
            self.console.print(Text(visible(f"✗ {err} — not sent; ↑ recalls the line"), "bold red"))
            return
        body = parsed.text.strip()
        body = await self._mcp_resources(body)
        if parsed.files:
            runtime = await self.ensure_runtime()
            if runtime is None:
                return
            from kcode.ui.attach import attach_mentions

            attached, notes = await attach_mentions(parsed.files, self.root, runtime.ctx)
            for note in notes:
                self.renderer.print(Text(visible(note, one_line=True), style="dim"))
            body = f"{body}\n\n{attached}"
        if self.pending_context:
            body = f"{self.pending_context}\n\n{body}"
            self.pending_context = ""
        await self.run_turn(Message.user(body, tuple(parsed.images)))

    async def _mcp_resources(self, body: str) -> str:
        """`@server:uri` mentions: the MCP resources' contents go with the message."""
        from kcode.mcp.prompts import RESOURCE_MENTION, expand_resource_mentions

        if not RESOURCE_MENTION.search(body):
            return body
        runtime = await self.ensure_runtime()
        if runtime is None or getattr(runtime, "mcp", None) is None:
            return body
        body, errors = await expand_resource_mentions(runtime.mcp, body)
        for error in errors:
            self.console.print(Text(visible(f"✗ {error}"), style="yellow"))
        return body

    async def run_shell(self, command: str, *, keep: bool) -> None:
        """`!cmd` shows a command's output without involving the model; `!!cmd` also keeps it."""
        from kcode.ui.shell_escape import run_shell

        await run_shell(self, command, keep=keep)

    # --- main loop -------------------------------------------------------------------------------
    async def run(
        self,
        initial_prompt: str | None,
        images: list[Path],
        *,
        first_input: str | BaseException | None = None,
    ) -> int:
        """`first_input`: what the early prompt (kcode.ui.launch) read — a line, or the
        PromptInterrupt / EOFError it ended with — after it already greeted the user."""
        if first_input is None:
            self.greet()
        if not self._io and sys.stdin.isatty():
            quiet_terminal()  # no echo over the live region; Enter stays Enter between prompts
            keep_early_keys(self.prompt.input)  # typed while `kcode -c` / `kcode "..."` started
        from kcode.ui.extensions_ui import ask_trust

        await ask_trust(self)  # once per repository, before its hooks could run
        # Build the runtime (tools, session, backend imports) once the prompt has been drawn.
        asyncio.get_running_loop().call_later(0.15, self.start_background_setup)
        if self.resume_id:
            runtime = await self.ensure_runtime()
            if runtime is not None:
                replay_history(self.console, runtime.agent.history)
        if initial_prompt or images:
            if initial_prompt:  # echoed like a typed line, so the transcript shows the question
                self.console.print(Text(visible(f"› {initial_prompt}"), style="bold"))
            await self.busy_line(initial_prompt or "", images)
        interrupted_once = False
        pending = first_input
        while not self.should_exit:
            if pending is None and self.queue:  # typed during the last turn: sent now, in order
                queued = self.queue.pop(0)
                if isinstance(queued, QueuedExit):
                    break
                self.console.print(Text(visible(f"› {queued}"), style="bold"))
                await self.busy_line(queued)
                continue
            outcome, pending = (
                (pending, None) if pending is not None else (await self._read(), None)
            )
            if isinstance(outcome, PromptInterrupt | KeyboardInterrupt):
                if interrupted_once:
                    break
                interrupted_once = True
                self.console.print(Text("(press Ctrl-C again to exit, or Ctrl-D)", style="dim"))
                continue
            if isinstance(outcome, BaseException):  # EOFError: Ctrl-D
                break
            interrupted_once = False
            await self.busy_line(outcome)
        await self.close()
        return 0

    async def _read(self) -> str | BaseException:
        default, self.prefill = self.prefill, ""
        arm_idle_notice(self)  # Notification hooks: idle_prompt when this prompt waits too long
        try:
            return await self.prompt.prompt_async("› ", default=default, handle_sigint=False)
        except (PromptInterrupt, KeyboardInterrupt, EOFError) as err:
            return err

    def greet(self) -> None:
        if self.console.width < MIN_WIDTH:
            self.console.print(
                f"The terminal is {self.console.width} columns wide; kcode needs {MIN_WIDTH}+ to "
                "draw tool lines and diffs properly. Widen the window (output may wrap badly)."
            )
        for warning in self.config.warnings:
            self.console.print(Text(visible(f"warning: {warning}"), style="yellow"))
        self.console.print(Text(GREETING, "dim"))

    async def close(self) -> None:
        self.renderer.finish()
        if self.runtime is None and self._runtime_task is not None:
            try:
                self.runtime = await self._runtime_task
            except Exception:
                self.runtime = None
        if self.runtime is not None:
            session = self.runtime.session
            await self.runtime.aclose()
            said = any(m.role == "user" for m in self.runtime.agent.history)
            if not said and not self.resume_id:
                # Nothing was said: no session to list, continue or resume (empty launches).
                session.path.unlink(missing_ok=True)
                return
            self.console.print(
                Text(f"Session {session.session_id} saved; resume with kcode -c", style="dim")
            )


def run_repl(
    config: Config,
    root: Path,
    *,
    initial_prompt: str | None,
    resume_id: str | None,
    images: list[Path],
) -> int:
    """Entry point for `kcode` without -p. Raises NotATerminal when stdin is not a TTY."""
    if not sys.stdin.isatty():
        raise NotATerminal()
    repl = Repl(config, root, resume_id=resume_id)
    try:
        return asyncio.run(repl.run(initial_prompt, images))
    except KeyboardInterrupt:
        return 130
    finally:
        from kcode.ui.termmode import restore_terminal

        restore_terminal()
