"""Keys typed while kcode starts: kept, echoed, and handed to prompt_toolkit once it is loaded.

Split out of kcode/cli/launch.py (the fast REPL start), which draws the early prompt with it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


@dataclass
class TypeAhead:
    text: str = ""
    # Set when the line ended before prompt_toolkit was ready: the text, KeyboardInterrupt or EOFError.
    first: str | BaseException | None = None
    rest: str = ""  # what was typed after that line


def type_ahead(load: Any, out: Any) -> TypeAhead:
    """Draw the prompt at once and keep what the user types while `load` imports prompt_toolkit.

    Importing prompt_toolkit takes several times Python's own start-up. Meanwhile the terminal is in
    a quiet raw-ish mode: printable keys are echoed and kept, Backspace edits, Enter / Ctrl-C / Ctrl-D end the
    line. Other keys (arrows, Tab) are dropped in this short window. The real prompt then redraws the
    same line, with the kept text, in place. Everything typed before the import finished is read
    (nothing is left in the terminal's queue in a translated form), and the terminal is left in
    kcode's quiet mode (kcode.ui.keytap), never back in the cooked one, so an Enter typed next is
    still an Enter when prompt_toolkit reads it.
    """
    import os
    import select
    import termios
    import threading

    result = TypeAhead()
    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):
        loader.join()
        return result
    out.write("› ")
    out.flush()
    chars: list[str] = []
    try:
        # No canonical mode, no echo, and no signal keys: Ctrl-C arrives as a byte, as it does in
        # prompt_toolkit, instead of cancelling the whole start-up.
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        while result.first is None:
            alive = loader.is_alive()
            if not select.select([fd], [], [], 0.005 if alive else 0)[0]:
                if alive:
                    continue
                break  # loaded, and the queue is empty
            data = os.read(fd, 1024).decode("utf-8", errors="ignore")
            for index, ch in enumerate(data):
                if result.first is not None:
                    result.rest = data[index:]
                    break
                if ch in ("\r", "\n"):
                    result.first = "".join(chars)
                    continue
                if ch == "\x04" and not chars:
                    result.first = EOFError()
                    continue
                if ch == "\x03":
                    result.first = KeyboardInterrupt()
                    continue
                if ch in ("\x7f", "\b"):
                    if chars:
                        chars.pop()
                        out.write("\b \b")
                elif ch >= " ":
                    chars.append(ch)
                    out.write(ch)
            out.flush()
    finally:
        from kcode.ui.termmode import quiet_terminal

        quiet_terminal(fd, original=saved)
    loader.join()
    result.text = "".join(chars)
    out.write("\n" if result.first is not None else "\r\x1b[K")
    out.flush()
    return result
