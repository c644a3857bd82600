"""The REPL while it is busy (a turn, /compact, a slash command): keys are kept, not lost.

A mixin of kcode.ui.repl.Repl, which provides `keytap`, `queue`, `renderer`, `console`, `prefill`,
`turn_task`, `handle_line` and the `_line_task` / `_interrupted` fields.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rich.text import Text

from kcode.ui.status import BusyStatus


class BusyLines:
    keytap: Any
    queue: list[Any]
    renderer: Any
    console: Any
    prefill: str
    turn_task: asyncio.Task[None] | None
    _line_task: asyncio.Task[None] | None
    _interrupted: bool

    async def handle_line(self, line: str, images: list[Path] | None = None) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Esc or Ctrl-C while busy: stop the turn, or whatever else runs (/compact)."""
        self._interrupted = True
        if self.turn_task is not None and not self.turn_task.done():
            self.turn_task.cancel()
        elif self._line_task is not None and not self._line_task.done():
            self._line_task.cancel()

    def begin_busy(self, label: str) -> BusyStatus:
        status = BusyStatus(label, typed=self.keytap.typed)
        self.renderer.begin_busy(status)
        return status

    async def busy_line(self, line: str, images: list[Path] | None = None) -> None:
        """Handle a line while the key tap keeps (and shows) whatever is typed meanwhile."""
        self.keytap.start()
        if self.prefill:  # half-typed text from before: shown (and editable) while this runs
            self.keytap.typed.line, self.prefill = self.prefill + self.keytap.typed.line, ""
        self._interrupted = False
        self._line_task = asyncio.create_task(self.handle_line(line, images))
        try:
            await asyncio.wait({self._line_task})
            if self._line_task.cancelled():
                self.renderer.end_busy()
                self.console.print(Text("⏹ interrupted", "yellow"))
            elif (err := self._line_task.exception()) is not None:
                raise err
        finally:
            self._line_task = None
            self.keytap.stop()
            typed = self.keytap.take()
            texts = [q for q in typed.queued if isinstance(q, str)]
            if self._interrupted and texts:
                # After an interrupt nothing is sent on its own: what was queued comes back at
                # the prompt to be edited or sent (as Claude Code does).
                typed.line = "\n".join([*texts, typed.line]).strip("\n")
                typed.queued = [q for q in typed.queued if not isinstance(q, str)]
            self.queue.extend(typed.queued)
            if typed.line:
                self.prefill = (self.prefill + typed.line) if self.prefill else typed.line
