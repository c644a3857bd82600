"""Keys typed while kcode is busy: kept, shown, and sent when the turn ends — never echoed raw.

Between prompts the terminal would otherwise be in its cooked mode: the kernel echoes keys over the
live repaint, and turns Enter (CR) into NL, which prompt_toolkit later reads as Ctrl-J ("insert a
newline"), so a message typed during a turn was never sent. So:

- `quiet_terminal` (kcode.ui.termmode) puts the terminal, for the whole REPL, into a mode without
  echo, line buffering or CR→NL translation (signals stay on, so Ctrl-C still works in the short gaps where nothing reads).
  prompt_toolkit saves and restores the mode it finds, so this becomes the resting state; the original
  one comes back at exit.
- `KeyTap` reads keys through the prompt's own prompt_toolkit `Input` while no prompt is active: text
  goes into a line, Enter queues that line (sent after the turn, in order), Ctrl-C / Esc interrupt,
  Ctrl-D on an empty line queues an exit. It is paused while an approval question owns the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prompt_toolkit.input import Input
from prompt_toolkit.input.typeahead import get_typeahead
from prompt_toolkit.key_binding import KeyPress
from prompt_toolkit.keys import Keys

from kcode.ui.termmode import quiet_terminal, restore_terminal

ESCAPE_FLUSH_S = 0.05  # a lone Esc: the parser waits to see whether a sequence (an arrow) follows


class QueuedExit:
    """Ctrl-D typed during a turn: leave once the queue before it has been sent."""

    def __repr__(self) -> str:
        return "QueuedExit()"


__all__ = [
    "KeyTap", "QueuedExit", "TypedAhead", "keep_early_keys", "quiet_terminal", "restore_terminal"
]  # fmt: skip


def keep_early_keys(inp: Input) -> None:
    """Give what was typed before the terminal left its cooked mode (NLs in it are Enters) to the
    next reader of `inp`, the first prompt or the key tap, through prompt_toolkit's typeahead."""
    from prompt_toolkit.input.typeahead import store_typeahead

    from kcode.ui.termmode import take_pending, typed_keys

    early = take_pending()
    if early:
        store_typeahead(inp, typed_keys(early))


@dataclass
class TypedAhead:
    """What the user typed during a busy stretch."""

    queued: list[str | QueuedExit] = field(default_factory=list)
    line: str = ""  # typed but not yet sent: becomes the next prompt's text


class KeyTap:
    """Reads keys from a prompt_toolkit Input between prompts. `start()` / `stop()` nest freely."""

    def __init__(
        self,
        get_input: Callable[[], Input | None],
        on_interrupt: Callable[[], None],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._get_input = get_input
        self._on_interrupt = on_interrupt
        self._on_change = on_change
        self.typed = TypedAhead()
        self._stack: contextlib.ExitStack | None = None
        self._input: Input | None = None
        self._flush_handle: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        return self._stack is not None

    def start(self) -> None:
        if self._stack is not None:
            return
        inp = self._get_input()
        if inp is None or inp.closed:
            return
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(inp.raw_mode())
            stack.enter_context(inp.attach(self._ready))
        except (OSError, ValueError, NotImplementedError):
            stack.close()
            return
        self._stack, self._input = stack, inp
        # Keys a prompt read past its Enter (typed fast) were stored by prompt_toolkit: ours now.
        self._feed(get_typeahead(inp))

    def stop(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._input is not None:
            with contextlib.suppress(Exception):
                self._feed(self._input.flush_keys())
        if self._stack is not None:
            self._stack.close()
        self._stack, self._input = None, None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Let someone else (an approval question) read the keys for a while."""
        was_active = self.active
        self.stop()
        try:
            yield
        finally:
            if was_active:
                self.start()

    def take(self) -> TypedAhead:
        typed, self.typed = self.typed, TypedAhead()
        return typed

    # --- reading ---------------------------------------------------------------------------------
    def _ready(self) -> None:
        inp = self._input
        if inp is None:
            return
        self._feed(inp.read_keys())
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(ESCAPE_FLUSH_S, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._input is not None:
            self._feed(self._input.flush_keys())

    def _feed(self, keys: list[KeyPress]) -> None:
        if not keys:
            return
        skip = False
        for index, press in enumerate(keys):
            if skip:
                skip = False
                continue
            if press.key == Keys.Escape and index + 1 < len(keys):
                # Esc followed by a key in the same read is Alt+key, not a lone Esc: Alt-Enter
                # adds a newline as it does at the prompt; other Alt combinations are dropped.
                if keys[index + 1].key in (Keys.ControlM, Keys.Enter):
                    self.typed.line += "\n"
                skip = True
                continue
            self._key(press)
        self._on_change()

    def _key(self, press: KeyPress) -> None:
        key, data = press.key, press.data
        typed = self.typed
        # Ctrl-J counts as Enter here: it is what an Enter typed while the terminal was still in
        # cooked mode (during kcode's own start-up) arrives as.
        if key in (Keys.ControlM, Keys.Enter, Keys.ControlJ):
            if typed.line.strip():
                typed.queued.append(typed.line)
            typed.line = ""
        elif key in (Keys.ControlC, Keys.Escape):
            self._on_interrupt()
        elif key == Keys.ControlD:
            if not typed.line:
                typed.queued.append(QueuedExit())
        elif key in (Keys.Backspace, Keys.ControlH):
            typed.line = typed.line[:-1]
        elif key == Keys.ControlU:
            typed.line = ""
        elif key == Keys.BracketedPaste:
            typed.line += data.replace("\r\n", "\n").replace("\r", "\n")
        elif isinstance(key, str) and len(key) == 1 and key >= " " and not isinstance(key, Keys):
            typed.line += key
