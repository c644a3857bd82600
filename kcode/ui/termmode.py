"""kcode's resting terminal mode for the whole REPL: no echo, no line buffering, no CR→NL.

Imported before prompt_toolkit (kcode.cli.launch sets it while the prompt is still loading), so it
depends on nothing but termios. See kcode.ui.keytap for why the mode matters.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from typing import Any

_saved_modes: dict[int, Any] = {}


def quiet_terminal(fd: int | None = None, original: Any = None) -> None:
    """Echo, canonical mode and CR→NL off until exit (idempotent; a no-op when fd is no terminal).

    `original`: the mode to restore at exit when the terminal is already in another temporary mode.
    """
    import termios

    if fd is None:
        try:
            fd = sys.stdin.fileno()
        except (OSError, ValueError):
            return
    if fd in _saved_modes:
        return
    try:
        saved = original if original is not None else termios.tcgetattr(fd)
        quiet = termios.tcgetattr(fd)
    except (termios.error, OSError):
        return
    quiet[3] |= termios.ISIG  # Ctrl-C still interrupts where no prompt or key tap reads
    quiet[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)
    quiet[6][termios.VMIN] = 1
    quiet[6][termios.VTIME] = 0
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)  # TCSANOW: keep what was typed already
    except termios.error:
        return
    _saved_modes[fd] = saved
    _drain(fd)
    if len(_saved_modes) == 1:
        atexit.register(restore_terminal)
        # A kill (or a closed terminal window) skips atexit: put the terminal back first, or the
        # user's shell is left without echo.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, OSError):  # not the main thread: atexit only
                if signal.getsignal(signum) == signal.SIG_DFL:
                    signal.signal(signum, _restore_and_die)


_pending: list[bytes] = []


def _drain(fd: int) -> None:
    """Read what was typed before the switch: it went through the cooked mode, so its Enters
    became NLs. Kept for the first prompt (`take_pending`), where NL is read as Enter again."""
    import select

    with contextlib.suppress(OSError, ValueError):
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            _pending.append(chunk)


def take_pending() -> str:
    """What `quiet_terminal` found typed already (each NL in it is an Enter), once."""
    data = b"".join(_pending)
    _pending.clear()
    return data.decode("utf-8", errors="ignore")


def _restore_and_die(signum: int, frame: object) -> None:
    restore_terminal()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def restore_terminal() -> None:
    import termios

    for fd, saved in list(_saved_modes.items()):
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        _saved_modes.pop(fd, None)


# Shared by the early prompt (kcode.cli.launch), the REPL and the key tap. They live here, in a module
# that imports nothing of kcode, so that repl and keytap do not import launch (which imports them).
GREETING = "kcode — Enter sends, Alt-Enter newline, /help for commands, Ctrl-D exits"


def typed_keys(text: str) -> list[Any]:
    """Raw terminal input as prompt_toolkit key presses (an NL here was an Enter translated by the
    terminal's cooked mode before kcode switched it off, so it is Enter, not Ctrl-J)."""
    from prompt_toolkit.input.vt100_parser import Vt100Parser

    keys: list[Any] = []
    parser = Vt100Parser(keys.append)
    parser.feed(text.replace("\r\n", "\r").replace("\n", "\r"))
    parser.flush()
    return keys


class NotATerminal(RuntimeError):
    """The REPL needs a terminal; the caller should fall back to `kcode -p` behaviour."""

    def __init__(self) -> None:
        super().__init__("stdin is not a terminal; use kcode -p PROMPT")
