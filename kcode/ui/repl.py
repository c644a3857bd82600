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
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import AnyFormattedText
from rich.console import Console
from rich.text import Text

from kcode.config.loader import Config
from kcode.extensions.notify import arm_idle_notice
from kcode.messages import Message
from kcode.safety.approval import InteractiveApprover
from kcode.safety.terminal_text import visible
from kcode.ui.approval_prompt import ApprovalAsker, ProjectRules
from kcode.ui.busy import BusyLines
from kcode.ui.input import (
    PromptInterrupt,
    ReplCompleter,
    build_prompt_session,
    list_project_files,
    toolbar_html,
)
from kcode.ui.keytap import KeyTap, QueuedExit, keep_early_keys
from kcode.ui.model_info import discovered_model_note, model_name
from kcode.ui.render import MIN_WIDTH, Renderer
from kcode.ui.sessions_view import replay_history
from kcode.ui.termmode import GREETING, NotATerminal, quiet_terminal

if TYPE_CHECKING:
    from kcode.runtime import Runtime
    from kcode.ui.slash_changes import StartSnapshot

_background: set[asyncio.Future[Any]] = set()


def _start_session(task: asyncio.Future[Runtime]) -> None:
    """As soon as the runtime exists, while the user types: the session starts (its record and the
    SessionStart hooks, whose context goes with the first message) and MCP servers start."""
    if task.cancelled() or task.exception() is not None:
        return
    runtime = task.result()
    started = asyncio.ensure_future(runtime.start())
    _background.add(started)
    started.add_done_callback(_background.discard)
    if runtime.mcp is not None:
        runtime.mcp.start()


class Repl(BusyLines):
    def __init__(
        self,
        config: Config,
        root: Path,
        *,
        console: Console | None = None,
        resume_id: str | None = None,
        backend: Any = None,
        runtime_factory: Callable[[], Runtime] | None = None,
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
        self.runtime: Runtime | None = None  # once built (kcode.runtime is imported lazily)
        self._runtime_task: asyncio.Future[Runtime] | None = None
        self.turn_task: asyncio.Task[None] | None = None
        self.should_exit = False
        self.pending_context = ""  # output of `!!cmd`, sent with the next message
        self.prefill = ""  # a line given back to the user after it could not be sent
        self.snapshot: StartSnapshot | None = None  # for /diff
        self.plan_previous = "ask"  # the approval mode plan mode goes back to
        self._files: list[str] | None = None
        self._io = io
        self.rules = ProjectRules(root)
        self.asker = ApprovalAsker(
            self.console, self.rules, self.read_choice, self._before_ask, self._after_ask
        )
        self.approver = InteractiveApprover(config.approval or "ask", self.asker)
        from kcode.ui.slash import COMMANDS

        if prompt_session is None:
            completer = ReplCompleter(COMMANDS, self._project_files)
            prompt_session = build_prompt_session(root, completer, self.toolbar, **io)
        else:  # drawn before this module was imported (kcode.cli.launch): take it over
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
            self._runtime_task.add_done_callback(_start_session)

    def _build_runtime(self) -> Runtime:
        from kcode.runtime import build_runtime
        from kcode.ui.slash_changes import StartSnapshot

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

    async def ensure_runtime(self) -> Runtime | None:
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

    async def built_runtime(self) -> Runtime | None:
        if self.runtime is None and self._runtime_task is not None:
            try:
                self.runtime = await self._runtime_task
            except Exception:  # it failed; the next turn builds one from the current config
                self._runtime_task = None
        return self.runtime

    async def switch_session(self, resume_id: str) -> Runtime | None:
        if self.runtime is not None:
            await self.runtime.aclose()
        self.runtime, self._runtime_task, self.resume_id = None, None, resume_id
        return await self.ensure_runtime()

    def _say_discovered_model(self) -> None:
        note = discovered_model_note(self.config)
        if note is not None:
            self.renderer.print(note)

    def model_name(self) -> str:
        return model_name(self.config, self.runtime)

    # --- toolbar ---------------------------------------------------------------------------------
    def toolbar(self) -> AnyFormattedText:
        from kcode.ui.status import toolbar_cost

        used, cost = 0, ""
        if self.runtime is not None:
            used = self.runtime.estimated_tokens()
            cost = toolbar_cost(self.config.model, self.runtime.stats().usage)
        return toolbar_html(
            self.model_name(), self.approver.mode, used, self.config.context_window, cost
        )

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

    async def read_choice(self, message: str) -> str:
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
        if self.renderer.status is not status:  # /compact showed (and ended) its own
            status = self.begin_busy("Working…")
        status.label = "Working…"
        status.estimated_in = runtime.estimated_tokens([message])
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

    async def _consume(self, runtime: Runtime, message: Message) -> None:
        from kcode.events import TurnFinished

        async for event in runtime.run_turn(message):  # logged by the runtime
            self.renderer.handle(event)
            if isinstance(event, TurnFinished) and event.reason != "completed":
                self.renderer.print(Text(f"(turn ended: {event.reason})", style="dim"))

    async def _maybe_compact(self, runtime: Runtime) -> None:
        if runtime.needs_compaction(self.config.context_window):
            from kcode.ui.slash_session import compact_now

            self.console.print(Text("Context is nearly full; compacting…", style="dim"))
            await compact_now(self, "auto")

    # --- lines -----------------------------------------------------------------------------------
    async def handle_line(self, line: str, images: list[Path] | None = None) -> None:
        """A typed line: a /command, a !shell escape, or a message (kcode.ui.lines)."""
        from kcode.ui.lines import handle_line

        await handle_line(self, line, images)

    # --- main loop -------------------------------------------------------------------------------
    async def run(
        self,
        initial_prompt: str | None,
        images: list[Path],
        *,
        first_input: str | BaseException | None = None,
    ) -> int:
        """`first_input`: what the early prompt (kcode.cli.launch) read — a line, or the
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
                replay_history(self.console, runtime.history)
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
        runtime = await self.built_runtime()
        if runtime is None:
            return
        await runtime.aclose()
        if not self.resume_id and runtime.discard_if_empty():
            return  # nothing was said: no session to list, continue or resume
        text = f"Session {runtime.session.session_id} saved; resume with kcode -c"
        self.console.print(Text(text, style="dim"))


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
