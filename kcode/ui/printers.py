"""Non-interactive output (SPEC §4): text, one JSON object, or a JSON-lines event stream.

Printers only format; they never decide anything. Text mode prints the final answer on stdout and
progress on stderr only when stderr is a terminal, so scripts capturing stdout get just the answer.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol, TextIO, assert_never

from kcode.events import (
    AgentFinished,
    AgentSpawned,
    AnyEvent,
    ApprovalDecided,
    ApprovalRequested,
    AssistantMessage,
    BudgetWarning,
    CacheWarning,
    Error,
    Event,
    ReasoningDelta,
    Retrying,
    SessionStarted,
    StepStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
    TurnStarted,
    Usage,
    VisualIteration,
    closed,
)
from kcode.safety.secrets import redact
from kcode.safety.terminal_text import json_safe, visible


class Printer(Protocol):
    def event(self, event: Event) -> None: ...

    def finish(self, result: dict[str, Any]) -> None: ...


def _dump(obj: dict[str, Any], secrets: list[str] | None = None) -> str:
    """One JSON line: secrets redacted, and no raw character a terminal would obey."""
    return json_safe(redact(json.dumps(obj, ensure_ascii=False, default=str), secrets or []))


class _Safe:
    """What every printer does to untrusted text: redact secrets, make controls visible."""

    secrets: list[str]

    def text(self, text: str, *, one_line: bool = False) -> str:
        return visible(redact(text, self.secrets), one_line=one_line)


def _notice(safe: _Safe, event: BudgetWarning | CacheWarning) -> str:
    from kcode.agents.usage_report import describe_notice

    return safe.text(describe_notice(event), one_line=True)


class TextPrinter(_Safe):
    def __init__(
        self, out: TextIO, err: TextIO, progress: bool, secrets: list[str] | None = None
    ) -> None:
        self.out, self.err, self.progress = out, err, progress
        self.secrets = list(secrets or [])

    def event(self, event: Event) -> None:
        self._show(closed(event))
        self.err.flush()

    def _show(self, event: AnyEvent) -> None:
        # Exhaustive (issue #12): a new event type fails mypy here until this printer decides.
        prefix = "" if event.agent == "main" else f"[{event.agent}] "
        match event:
            case Error():
                self.err.write(f"kcode: {self.text(event.message)}\n")
            case BudgetWarning() | CacheWarning():  # shown even without a terminal
                self.err.write(f"kcode: warning: {_notice(self, event)}\n")
            case ToolCallStarted():
                if self.progress:
                    args = _dump(event.arguments, self.secrets)
                    line = f"{prefix}… {event.name} {args[:100]}"
                    self.err.write(self.text(line, one_line=True) + "\n")
            case ToolCallFinished():
                if self.progress:
                    mark = "✓" if event.ok else "✗"
                    body = event.content.strip()
                    first = body.splitlines()[0][:100] if body else ""
                    line = f"{prefix}{mark} {event.name} {first}"
                    self.err.write(self.text(line, one_line=True) + "\n")
            case Retrying():
                if self.progress:
                    line = f"{prefix}retrying ({event.reason}) in {event.delay_s:.1f}s"
                    self.err.write(self.text(line, one_line=True) + "\n")
            case (
                SessionStarted() | TurnStarted() | StepStarted() | TextDelta() | ReasoningDelta()
                | AssistantMessage() | ApprovalRequested() | ApprovalDecided() | AgentSpawned()
                | AgentFinished() | Usage() | VisualIteration() | TurnFinished()
            ):  # fmt: skip
                pass  # the answer comes in finish(); the rest is for stream-json
            case _:
                assert_never(event)

    def finish(self, result: dict[str, Any]) -> None:
        text = result.get("result") or ""
        if text:
            self.out.write(self.text(text.rstrip("\n")) + "\n")
        self.out.flush()


class JsonPrinter(_Safe):
    def __init__(self, out: TextIO, err: TextIO, secrets: list[str] | None = None) -> None:
        self.out, self.err = out, err
        self.secrets = list(secrets or [])

    def event(self, event: Event) -> None:
        event = closed(event)
        match event:  # exhaustive (issue #12): stdout keeps the one object, notes go to stderr
            case Error():
                self.err.write(f"kcode: {self.text(event.message)}\n")
            case BudgetWarning() | CacheWarning():
                self.err.write(f"kcode: warning: {_notice(self, event)}\n")
            case (
                SessionStarted() | TurnStarted() | StepStarted() | TextDelta() | ReasoningDelta()
                | AssistantMessage() | ToolCallStarted() | ToolCallFinished() | ApprovalRequested()
                | ApprovalDecided() | AgentSpawned() | AgentFinished() | Usage() | Retrying()
                | VisualIteration() | TurnFinished()
            ):  # fmt: skip
                pass
            case _:
                assert_never(event)

    def finish(self, result: dict[str, Any]) -> None:
        self.out.write(_dump(result, self.secrets) + "\n")
        self.out.flush()


def _held_back(text: str, secrets: list[str]) -> int:
    """Length of the longest tail of `text` that could be the start of a secret."""
    best = 0
    for secret in secrets:
        for size in range(min(len(secret) - 1, len(text)), best, -1):
            if secret.startswith(text[-size:]):
                best = size
                break
    return best


class StreamJsonPrinter:
    """JSON lines. Streamed text is redacted across chunks: a tail that could be the start of a
    secret is held back until the next delta (or any other event of that agent) shows it is not."""

    def __init__(self, out: TextIO, secrets: list[str] | None = None) -> None:
        self.out = out
        self.secrets = list(secrets or [])
        self._pending: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}

    def _write(self, obj: dict[str, Any]) -> None:
        self.out.write(_dump(obj, self.secrets) + "\n")

    def _flush_pending(self, agent: str | None = None) -> None:
        for key in [k for k in self._pending if agent is None or k[0] == agent]:
            base, text = self._pending.pop(key)
            if text:
                self._write({**base, "text": redact(text, self.secrets)})

    def event(self, event: Event) -> None:
        if isinstance(event, TextDelta | ReasoningDelta) and self.secrets:
            obj = event.to_json()
            key = (event.agent, str(obj.get("type")))
            _, before = self._pending.pop(key, (obj, ""))
            text = redact(before + event.text, self.secrets)
            hold = _held_back(text, self.secrets)
            ready, tail = text[: len(text) - hold], text[len(text) - hold :]
            self._pending[key] = (obj, tail)
            if ready:
                self._write({**obj, "text": ready})
            self.out.flush()
            return
        self._flush_pending(event.agent)  # e.g. before the AssistantMessage with the whole text
        self._write(closed(event).to_json())  # only the versioned protocol goes out
        self.out.flush()

    def finish(self, result: dict[str, Any]) -> None:
        self._flush_pending()
        line = {"type": "result", "agent": "main", "ts": time.time(), **result}
        self._write(line)
        self.out.flush()


def make_printer(fmt: str, out: TextIO, err: TextIO, secrets: list[str] | None = None) -> Printer:
    """`secrets`: values (API keys) that must never be printed; they become `[redacted]`."""
    if fmt == "json":
        return JsonPrinter(out, err, secrets)
    if fmt == "stream-json":
        return StreamJsonPrinter(out, secrets)
    return TextPrinter(out, err, progress=err.isatty(), secrets=secrets)


__all__ = ["Printer", "SessionStarted", "TurnFinished", "make_printer"]
