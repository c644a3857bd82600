"""What a local model may write: text up to its end-of-turn marker, and no endless loop.

`OutputGuard` sits between the token loop and the stream (engine.py). It

- stops at the template's end-of-turn texts (builtin_templates.stop_texts) even when the model
  spells a marker as plain text rather than its special token, and keeps the marker out of the
  stream: the tail that could still grow into a marker is held back until it cannot;
- stops when the output has become one block of text repeated over and over (a small model
  stuck in a loop would otherwise fill the whole context, minutes of decoding).

Repetition is a periodic tail: the last `LOOP_MIN_CHARS` characters (and at least three
periods) repeat with a period of at most `LOOP_MAX_PERIOD`. Legitimate output rarely has a
thousand characters of exact repetition; a file of identical lines would be cut, and the turn
says so.
"""

from __future__ import annotations

from collections.abc import Sequence

LOOP_MIN_CHARS = 1000
LOOP_MAX_PERIOD = 500
LOOP_MIN_REPEATS = 3
CHECK_EVERY = 16  # tokens between repetition checks: slicing ~1 kB a few hundred times costs ~1 ms
_KEEP = LOOP_MAX_PERIOD * LOOP_MIN_REPEATS + LOOP_MIN_CHARS


def repeating_period(text: str) -> int:
    """The period of a repeated tail of `text` (see the module docstring), 0 if there is none."""
    n = len(text)
    for period in range(1, LOOP_MAX_PERIOD + 1):
        need = max(LOOP_MIN_CHARS, LOOP_MIN_REPEATS * period)
        if need > n:
            break
        if text[n - need : n - period] == text[n - need + period :]:
            return period
    return 0


def held_back_length(buffer: str, markers: Sequence[str]) -> int:
    """Length of the longest tail of `buffer` that is a proper prefix of one of the markers (the
    text to hold back: it may still grow into a marker). Shared with kcode.backends.llama.toolcall_formats."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(buffer)), longest, -1):
            if buffer.endswith(marker[:size]):
                longest = size
                break
    return longest


class OutputGuard:
    def __init__(self, stop_texts: Sequence[str] = ()) -> None:
        self.stop_texts = tuple(t for t in stop_texts if t)
        self.stopped: str | None = None  # "stop" (a marker) | "repetition"
        self._pending = ""
        self._recent = ""  # the tail of what was let through, for the repetition check
        self._tokens = 0

    def feed(self, text: str) -> str:
        """One token's text in; the text that may be shown now out. After a stop, nothing."""
        if self.stopped:
            return ""
        self._tokens += 1
        buffer = self._pending + text
        for marker in self.stop_texts:
            at = buffer.find(marker)
            if at >= 0:
                buffer = buffer[:at]
                self.stopped = "stop"
        if self.stopped:
            self._pending = ""
            return buffer
        keep = held_back_length(buffer, self.stop_texts) if self.stop_texts else 0
        out, self._pending = buffer[: len(buffer) - keep], buffer[len(buffer) - keep :]
        if out:
            self._recent = (self._recent + out)[-_KEEP:]
        if self._tokens % CHECK_EVERY == 0 and repeating_period(self._recent):
            self.stopped = "repetition"
        return out

    def flush(self) -> str:
        """At the end of generation: what was held back, since it never became a marker."""
        out, self._pending = self._pending, ""
        return "" if self.stopped == "stop" else out
