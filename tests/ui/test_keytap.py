"""Keys typed while kcode is busy (issue #14 item 3): the terminal mode and the key tap."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import termios
import time

from prompt_toolkit.input import create_pipe_input

from kcode.ui import termmode
from kcode.ui.keytap import KeyTap, QueuedExit
from kcode.ui.termmode import typed_keys


def read_n(fd: int, n: int, timeout: float = 5.0) -> bytes:
    """Exactly n bytes from fd (the pty delivers what was written a moment later)."""
    out = b""
    while len(out) < n:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"only {out!r} arrived"
        out += os.read(fd, n - len(out))
    return out


def test_quiet_mode_keeps_enter_as_cr_without_echo_and_is_restored() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        os.write(master, b"early\r")  # typed before the switch: cooked, so its Enter became NL
        time.sleep(0.1)
        termmode.quiet_terminal(slave)
        assert termmode.take_pending() == "early\n"  # kept for the first prompt (NL = Enter)
        os.write(master, b"late\r")
        assert read_n(slave, 5) == b"late\r"  # not "\n", which prompt_toolkit reads as Ctrl-J
        os.write(master, b"x")
        assert read_n(slave, 1) == b"x"  # no line buffering
        attrs = termios.tcgetattr(slave)
        assert not attrs[3] & termios.ECHO and attrs[3] & termios.ISIG
        termmode.restore_terminal()
        assert termios.tcgetattr(slave) == before
    finally:
        termmode.restore_terminal()
        os.close(master)
        os.close(slave)


def test_cooked_mode_newlines_typed_during_start_up_are_enters() -> None:
    keys = typed_keys("first\nsecond\r")
    assert [k.key for k in keys].count("c-m") == 2


async def test_the_tap_queues_lines_keeps_the_rest_and_interrupts() -> None:
    interrupts: list[int] = []
    with create_pipe_input() as pipe:
        tap = KeyTap(lambda: pipe, lambda: interrupts.append(1))
        tap.start()
        pipe.send_text("second message\rthird\x1b\rline\r\x7f\x7fx")
        await asyncio.sleep(0.1)
        pipe.send_text("\x03")
        await asyncio.sleep(0.1)
        pipe.send_text("\x1b")  # a lone Esc, told apart from Alt-Enter by the pause after it
        await asyncio.sleep(0.2)
        tap.stop()
        typed = tap.take()
    assert typed.queued == ["second message", "third\nline"]
    assert typed.line == "x"
    assert len(interrupts) == 2


async def test_ctrl_d_on_an_empty_line_queues_an_exit() -> None:
    with create_pipe_input() as pipe:
        tap = KeyTap(lambda: pipe, lambda: None)
        tap.start()
        pipe.send_text("bye\r\x04")
        await asyncio.sleep(0.1)
        tap.stop()
        typed = tap.take()
    assert typed.queued[0] == "bye" and isinstance(typed.queued[1], QueuedExit)
