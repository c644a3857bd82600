"""`Runtime`: the one object front ends talk to (re-exported as kcode.runtime.Runtime).

It runs turns and writes them to the session log, writes the `session_started` record exactly once,
fires the SessionStart hooks (at launch, after /clear and after compaction), and is the only place
that changes the main agent's history, backend, options or stats. Front ends get typed results and
read-only views back; nothing here prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kcode.agents.loop import Agent
from kcode.backends.base import Backend
from kcode.config.loader import Config
from kcode.events import CacheWarning, Error, Event, SessionStarted, TurnFinished, TurnReason
from kcode.messages import Message
from kcode.session import Session
from kcode.tools.base import ToolContext

SessionStartSource = Literal["startup", "resume", "clear", "compact"]
CompactOutcome = Literal["compacted", "nothing", "not_smaller", "blocked", "failed"]


@dataclass(frozen=True)
class Cleared:
    """What /clear did; `notice` warns that the server's prompt cache was thrown away."""

    notice: CacheWarning | None = None


@dataclass(frozen=True)
class Compacted:
    """The outcome of one compaction. Only "compacted" changed the history; "not_smaller" and
    "compacted" made a request, counted in the stats (its tokens are here for the status line)."""

    outcome: CompactOutcome
    reason: str = ""  # why it was blocked (a PreCompact hook) or failed
    tokens_before: int = 0
    tokens_after: int = 0
    summarised_messages: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class StatsView:
    """A snapshot of the main agent's counters (its sub-agents included) for /stats and the toolbar."""

    usage: dict[str, Any]
    total_steps: int
    critical_steps: int
    agents: tuple[dict[str, Any], ...]


@dataclass
class Runtime:
    config: Config
    root: Path
    backend: Backend
    agent: Agent  # read it, never change it from outside: every change is a method here
    session: Session
    ctx: ToolContext
    mcp: Any = None  # kcode.mcp.manager.McpManager when MCP servers are configured
    _started: SessionStarted | None = field(default=None, init=False, repr=False)
    _hook_start: asyncio.Future[None] | None = field(default=None, init=False, repr=False)
    _turns: int = field(default=0, init=False, repr=False)
    _retired: list[Backend] = field(default_factory=list, init=False, repr=False)
    _background: set[asyncio.Future[Any]] = field(default_factory=set, init=False, repr=False)
    _said_write_error: bool = field(default=False, init=False, repr=False)

    # --- the session's start -------------------------------------------------------------------
    def session_started(self) -> SessionStarted:
        """The `session_started` event, written to the session log the first time it is asked for
        (once per launch: a resumed session gets one record per launch that resumed it)."""
        if self._started is None:
            from kcode.backend_factory import backend_label, model_label

            self._started = SessionStarted(
                session_id=self.session.session_id,
                cwd=str(self.root),
                backend=backend_label(self.config),
                model=model_label(self.config, self.backend),  # also the server's, when asked
            )
            self.session.log_event(self._started)
        return self._started

    async def start(self) -> SessionStarted:
        """Start the session: its record, then the SessionStart hooks ("startup", or "resume" for a
        session with history). Idempotent; every turn awaits it first, so the hooks' context goes
        with the first message. Front ends call it at launch."""
        event = self.session_started()
        if self._hook_start is None:
            source: SessionStartSource = "resume" if len(self.agent.history) > 1 else "startup"
            self._hook_start = asyncio.ensure_future(self._session_start_hooks(source))
        if not self._hook_start.done():
            # Shielded: a caller cancelled (Ctrl-C on the first turn) does not cancel the hooks.
            await asyncio.shield(self._hook_start)
        return event

    async def _session_start_hooks(self, source: SessionStartSource) -> None:
        ext = self.ctx.extensions
        if ext is not None:  # the hooks' additionalContext and notices wait for the next turn
            await ext.session_start(source, self.ctx)

    # --- turns ---------------------------------------------------------------------------------
    async def run_turn(self, message: Message) -> AsyncIterator[Event]:
        """One turn of the main agent; every event is logged before it is handed out."""
        await self.start()
        self._turns += 1
        try:
            async for event in self.agent.run_turn(message):
                self.session.log_event(event)
                yield event
                if self.session.write_error is not None and not self._said_write_error:
                    self._said_write_error = True
                    yield Error(agent="main", message=self._write_error_note(), kind="session")
            if self.agent.checkpoint_note:
                note, self.agent.checkpoint_note = self.agent.checkpoint_note, ""
                error = Error(agent="main", message=note, kind="checkpoint")
                self.session.log_event(error)
                yield error
        finally:
            self._turns -= 1
            self._close_retired_soon()

    def _write_error_note(self) -> str:
        try:
            kept = self.session.path.stat().st_size > 0
        except OSError:
            kept = False
        after = "can be resumed only up to here" if kept else "cannot be resumed"
        return (
            f"{self.session.write_error}; the run goes on, but this session {after}. Free some "
            "space (or fix the permissions) for the next session."
        )

    def finish(self, reason: TurnReason, message: str, started: float) -> TurnFinished:
        """The TurnFinished of a turn that ended outside the loop (timeout, Ctrl-C), logged."""
        event = self.agent.finish_event(reason, message, started)
        self.session.log_event(event)
        return event

    # --- what changes the conversation ---------------------------------------------------------
    async def clear(self) -> Cleared:
        """A fresh conversation in the same session: the system prompt stays, todos go, and the
        SessionStart hooks run again (source "clear")."""
        from kcode.agents.prompt_cache import discard_warning

        await self.start()  # the launch's SessionStart comes before this one
        notice = discard_warning(self.agent.history, "clear")
        del self.agent.history[1:]
        self.ctx.todos.clear()
        self.session.log_history(self.agent.history)
        await self._session_start_hooks("clear")
        return Cleared(notice)

    async def compact(
        self, trigger: Literal["manual", "auto"] = "manual", instructions: str = ""
    ) -> Compacted:
        """Summarise old tool traffic (PreCompact hooks may refuse). The history is replaced only
        when the result is smaller; then the SessionStart hooks run again (source "compact")."""
        from kcode.agents.compaction import compact_history

        await self.start()
        ext = self.ctx.extensions
        if ext is not None:
            why = await ext.pre_compact(trigger, self.ctx, instructions)
            if why is not None:
                return Compacted("blocked", reason=why)
        agent = self.agent
        try:
            result = await compact_history(agent.history, agent.backend, agent.options,
                                           self.ctx.todos, focus=instructions)  # fmt: skip
        except Exception as err:  # any backend failure: the history is simply left as it was
            return Compacted("failed", reason=f"{type(err).__name__}: {err}")
        if result is None:
            return Compacted("nothing")
        agent.stats.requests += 1  # the summary request is part of the session's usage
        agent.stats.prompt_tokens += result.prompt_tokens
        agent.stats.completion_tokens += result.completion_tokens
        sizes = (result.tokens_before, result.tokens_after, result.summarised_messages,
                 result.prompt_tokens, result.completion_tokens)  # fmt: skip
        if result.tokens_after >= result.tokens_before:
            return Compacted("not_smaller", "", *sizes)
        agent.history[:] = result.history
        self.session.log_history(agent.history)
        await self._session_start_hooks("compact")
        return Compacted("compacted", "", *sizes)

    def retire_images(self) -> None:
        """Drop the pictures of earlier `kcode fix` iterations from the history (kcode.visual)."""
        from kcode.visual.prompt import retire_images

        retire_images(self.agent.history)

    # --- what changes the model ----------------------------------------------------------------
    async def switch_backend(self, config: Config, backend: Backend) -> CacheWarning | None:
        """Send the next requests to `backend` with `config.model`. Sub-agents spawned from now on
        use it too (the spawner reads the main agent's backend and options). The old backend is
        closed once no turn runs, so sub-agents still working on it finish their requests first.
        Returns the warning that the server's prompt cache is lost, if there was one."""
        from kcode.agents.prompt_cache import discard_warning

        agent = self.agent
        notice = None
        if config.model != agent.options.model:
            notice = discard_warning(agent.history, "model")
        old = self.backend
        self.backend = agent.backend = backend
        agent.options = dataclasses.replace(agent.options, model=config.model)
        self.config = config
        self._update_spawner(old)
        if old is not backend:
            self._retired.append(old)
        if self._turns == 0:
            await self._close_retired()
        return notice

    def set_thinking(self, wanted: bool | None = None) -> bool:
        """Thinking on or off for the next requests (None toggles); returns the new setting."""
        current = self.agent.options.thinking
        value = (current is False) if wanted is None else wanted
        self.agent.options = dataclasses.replace(self.agent.options, thinking=value)
        self._update_spawner(self.backend)
        return value

    def _update_spawner(self, old: Backend) -> None:
        """A spawner that copied the main agent's backend and options when it was made gets the
        current ones (one that reads them from the agent at spawn time needs nothing)."""
        spawner = self.ctx.spawner
        if spawner is None:
            return
        try:
            if getattr(spawner, "backend", None) is old:
                spawner.backend = self.agent.backend
            if isinstance(getattr(spawner, "options", None), type(self.agent.options)):
                spawner.options = self.agent.options
        except AttributeError:  # read-only properties that already follow the agent
            pass

    def _close_retired_soon(self) -> None:
        if self._retired and self._turns == 0:
            task = asyncio.ensure_future(self._close_retired())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for backend in retired:
            if backend is not self.backend:
                await backend.aclose()

    # --- read-only views -----------------------------------------------------------------------
    @property
    def history(self) -> tuple[Message, ...]:
        """The conversation, for replaying it on screen; a copy the caller cannot change."""
        return tuple(self.agent.history)

    @property
    def model(self) -> str:
        return self.agent.options.model

    @property
    def thinking(self) -> bool | None:
        return self.agent.options.thinking

    @property
    def extensions(self) -> Any:
        """kcode.extensions.session.ExtensionRuntime, or None: skills and commands to list."""
        return self.ctx.extensions

    def estimated_tokens(self, extra: Sequence[Message] = ()) -> int:
        """The history's size in tokens (roughly), plus `extra` messages about to be sent."""
        from kcode.agents.compaction import estimate_tokens

        return estimate_tokens([*self.agent.history, *extra] if extra else self.agent.history)

    def needs_compaction(self, context_window: int) -> bool:
        from kcode.agents.compaction import needs_compaction

        return needs_compaction(self.agent.history, context_window)

    def user_has_spoken(self) -> bool:
        """Whether the conversation has a user message (an empty launch leaves no session)."""
        return any(m.role == "user" for m in self.agent.history)

    def last_message(self) -> Message | None:
        return self.agent.history[-1] if self.agent.history else None

    def stats(self) -> StatsView:
        stats = self.agent.stats
        rows = stats.as_dict().get("agents") or []
        return StatsView(stats.usage(), stats.total_steps, stats.critical_steps, tuple(rows))

    def discard_if_empty(self) -> bool:
        """After `aclose`: delete the session file when the user said nothing (an empty REPL
        launch leaves no session to list or resume). Returns whether it was deleted."""
        if self.user_has_spoken():
            return False
        self.session.path.unlink(missing_ok=True)
        return True

    # --- the end -------------------------------------------------------------------------------
    async def aclose(self) -> None:
        if self._hook_start is not None and not self._hook_start.done():
            await asyncio.wait({self._hook_start})  # SessionEnd after SessionStart, not during
        if self.ctx.extensions is not None:
            await self.ctx.extensions.session_end("exit", self.ctx)  # SessionEnd hooks
        self.session.close()
        if self.mcp is not None:
            await self.mcp.aclose()
        await self._close_retired()
        await self.backend.aclose()


__all__ = ["Cleared", "Compacted", "Runtime", "StatsView"]
