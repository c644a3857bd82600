"""Non-interactive output (SPEC §4): text, one JSON object, or a JSON-lines event stream.

Printers only format; they never decide anything. Text mode prints the final answer on stdout and
progress on stderr only when stderr is a terminal, so scripts capturing stdout get just the answer.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol, TextIO

from kcode.events import (
    Error,
    Event,
    Retrying,
    SessionStarted,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
)


class Printer(Protocol):
    def event(self, event: Event) -> None: ...

    def finish(self, result: dict[str, Any]) -> None: ...


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


class TextPrinter:
    def __init__(self, out: TextIO, err: TextIO, progress: bool) -> None:
        self.out, self.err, self.progress = out, err, progress

    def event(self, event: Event) -> None:
        if isinstance(event, Error):
            self.err.write(f"kcode: {event.message}\n")
        if not self.progress:
            return
        prefix = "" if event.agent == "main" else f"[{event.agent}] "
        if isinstance(event, ToolCallStarted):
            args = _dump(event.arguments)
            self.err.write(f"{prefix}… {event.name} {args[:100]}\n")
        elif isinstance(event, ToolCallFinished):
            mark = "✓" if event.ok else "✗"
            first = event.content.strip().splitlines()[0][:100] if event.content.strip() else ""
            self.err.write(f"{prefix}{mark} {event.name} {first}\n")
        elif isinstance(event, Retrying):
            self.err.write(f"{prefix}retrying ({event.reason}) in {event.delay_s:.1f}s\n")
        self.err.flush()

    def finish(self, result: dict[str, Any]) -> None:
        text = result.get("result") or ""
        if text:
            self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()


class JsonPrinter:
    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err

    def event(self, event: Event) -> None:
        if isinstance(event, Error):
            self.err.write(f"kcode: {event.message}\n")

    def finish(self, result: dict[str, Any]) -> None:
        self.out.write(_dump(result) + "\n")
        self.out.flush()


class StreamJsonPrinter:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, event: Event) -> None:
        self.out.write(_dump(event.to_json()) + "\n")
        self.out.flush()

    def finish(self, result: dict[str, Any]) -> None:
        line = {"type": "result", "agent": "main", "ts": time.time(), **result}
        self.out.write(_dump(line) + "\n")
        self.out.flush()


def make_printer(fmt: str, out: TextIO, err: TextIO) -> Printer:
    if fmt == "json":
        return JsonPrinter(out, err)
    if fmt == "stream-json":
        return StreamJsonPrinter(out)
    return TextPrinter(out, err, progress=err.isatty())


__all__ = ["Printer", "SessionStarted", "TurnFinished", "make_printer"]
