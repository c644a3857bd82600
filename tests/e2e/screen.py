"""The real `kcode` in a pseudo-terminal, read as a user sees it: through a terminal emulator (pyte).

The raw byte stream says what was *sent*; the screen says what is *visible* after every repaint,
so a question painted over by a spinner, or an answer drawn twice, shows up here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pexpect
import pytest

from tests.e2e.conftest import kcode_exe

pyte = pytest.importorskip("pyte", reason="pyte (a terminal emulator) is in the dev extra")

ROWS, COLS = 40, 120


class Terminal:
    def __init__(
        self, args: list[str], env: dict[str, str], cwd: Path, rows: int = ROWS, cols: int = COLS
    ) -> None:
        # pexpect does not answer cursor-position requests; prompt_toolkit must not wait for them.
        env = {**env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        self.child = pexpect.spawn(
            kcode_exe(), args, env=env, cwd=str(cwd), dimensions=(rows, cols),
            encoding="utf-8", codec_errors="replace", timeout=5,
        )  # fmt: skip
        self.raw = ""
        self.exited = False

    # --- reading ----------------------------------------------------------------------------------
    def pump(self, wait_s: float = 0.05) -> None:
        """Feed whatever the program wrote within `wait_s` into the emulator."""
        deadline = time.monotonic() + wait_s
        while not self.exited:
            left = deadline - time.monotonic()
            try:
                data = self.child.read_nonblocking(65536, timeout=max(left, 0))
            except pexpect.TIMEOUT:
                return
            except pexpect.EOF:
                self.exited = True
                return
            self.raw += data
            self.stream.feed(data)
            if time.monotonic() >= deadline:
                return

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def cursor_line(self) -> str:
        return self.screen.display[self.screen.cursor.y].rstrip()

    def wait_for(self, needle: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if time.monotonic() > deadline or self.exited:
                self.pump(0.1)
                if needle in self.text():
                    return
                raise AssertionError(f"{needle!r} not on screen after {timeout}s:\n{self.text()}")
            self.pump(0.05)

    def wait_until(
        self, check: object, what: str, timeout: float = 20.0, step_s: float = 0.05
    ) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout}s; screen:\n{self.text()}")
            self.pump(step_s)

    # --- writing ----------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        self.child.send(text)

    def close(self, timeout: float = 15.0) -> int | None:
        """Ctrl-D, then wait (bounded) for the exit; the exit status."""
        if not self.exited:
            self.send("\x04")
        deadline = time.monotonic() + timeout
        while not self.exited and time.monotonic() < deadline:
            self.pump(0.1)
        if not self.exited:
            self.child.terminate(force=True)
            raise AssertionError(f"kcode did not exit within {timeout}s:\n{self.text()}")
        self.child.close()
        return self.child.exitstatus


def wait_requests(server: object, count: int, timeout: float = 20.0) -> None:
    """Until the fake server has seen `count` chat requests (bounded)."""
    deadline = time.monotonic() + timeout
    while len(chat_requests(server)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{count} chat requests expected, saw {len(chat_requests(server))}"
            )
        time.sleep(0.02)


def chat_requests(server: object) -> list[object]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]  # type: ignore[attr-defined]


def last_user_text(request: object) -> str:
    users = [m for m in request.body["messages"] if m["role"] == "user"]  # type: ignore[attr-defined]
    content = users[-1]["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return str(content)
