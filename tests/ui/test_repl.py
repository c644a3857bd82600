"""The REPL loop end to end in-process: pipe input, a scripted model, real tools and session files."""

from __future__ import annotations

import asyncio
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from kcode.backends.scripted import ScriptedBackend
from kcode.session import Session, list_sessions
from kcode.ui.repl import Repl
from tests.ui.helpers import make_runtime, scripted_config, text_console
from tests.waiting import async_wait_until


async def wait_for_text(buffer: StringIO, needle: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while needle not in buffer.getvalue():
        if loop.time() > deadline:
            raise AssertionError(f"{needle!r} never appeared in:\n{buffer.getvalue()}")
        await asyncio.sleep(0.02)


def git_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.py").write_text("print('v1')\n")
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t",
                                                 "commit", "-qm", "init"]):  # fmt: skip
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


class Harness:
    def __init__(self, root: Path, turns: list[Any]) -> None:
        self.root = root
        self.console, self.buffer = text_console()
        self.config = scripted_config(root)
        self.backend = ScriptedBackend(turns)
        self.runtime: Any = None

    def factory(self, repl: Repl) -> Any:
        def build() -> Any:
            self.runtime = make_runtime(self.config, self.root, self.backend, repl.approver)
            return self.runtime

        return build


async def test_prompt_answer_approval_slash_commands_and_exit(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    harness = Harness(root, [
        {"text": "Hi there, **ready**."},
        {"tool_calls": [{"name": "write_file",
                         "arguments": {"path": "app.py", "content": "print('v2')\n"}}]},
        {"tool_calls": [{"name": "shell", "arguments": {"command": "echo approved-output"}}]},
        {"text": "Changed app.py and ran the command."},
    ])  # fmt: skip
    with create_pipe_input() as pipe:
        repl = Repl(harness.config, root, console=harness.console, input=pipe, output=DummyOutput())
        repl._runtime_factory = harness.factory(repl)
        task = asyncio.create_task(repl.run(None, []))
        out = harness.buffer
        pipe.send_text("hello\r")
        await wait_for_text(out, "Hi there, ready.")
        pipe.send_text("update app.py\r")
        await wait_for_text(out, "write_file wants to edit app.py")
        assert "+print('v2')" in out.getvalue()
        pipe.send_text("y\r")
        await wait_for_text(out, "shell wants to run")
        assert "$ echo approved-output" in out.getvalue()
        pipe.send_text("t\r")
        pipe.send_text("not now\r")
        await wait_for_text(out, "Changed app.py and ran the command.")
        assert "✓ write_file app.py →" in out.getvalue()
        assert "✗ shell echo approved-output → the user declined echo approved-output: not now" in (
            out.getvalue()
        )
        assert (root / "app.py").read_text() == "print('v2')\n"
        for command, expected in (
            ("/help", "/compact"),
            ("/stats", "requests 4"),
            ("/diff", "+print('v2')"),
            ("/hlep", "Unknown command /hlep. Did you mean /help?"),
            ("/undo", "restored"),
        ):
            pipe.send_text(command + "\r")
            await wait_for_text(out, expected)
        assert (root / "app.py").read_text() == "print('v1')\n"
        pipe.send_text("\x04")
        assert await asyncio.wait_for(task, 10) == 0
    await wait_for_text(out, "saved; resume with kcode -c")
    [info] = list_sessions(root)
    history = Session.open_existing(info.session_id).load_history()
    assert [m.text for m in history if m.role == "user"] == ["hello", "update app.py"]


async def test_bad_mention_is_not_sent_and_ctrl_c_twice_exits(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    harness = Harness(root, [{"text": "unused"}])
    with create_pipe_input() as pipe:
        repl = Repl(harness.config, root, console=harness.console, input=pipe, output=DummyOutput())
        repl._runtime_factory = harness.factory(repl)
        task = asyncio.create_task(repl.run(None, []))
        pipe.send_text("read @nope.py please\r")
        await wait_for_text(harness.buffer, "@nope.py: no such file in the workspace")
        pipe.send_text("\x03")  # the prompt is empty (the line is in the history, not put back)
        await wait_for_text(harness.buffer, "press Ctrl-C again to exit")
        pipe.send_text("\x03")
        assert await asyncio.wait_for(task, 10) == 0


async def test_ctrl_c_cancels_a_slow_turn_and_the_next_prompt_works(tmp_path: Path) -> None:
    root = git_repo(tmp_path)

    def reply(messages: Any) -> dict[str, Any]:
        # The cancelled turn leaves no assistant message, so the retry is turn 1 again.
        if messages[-1].text == "slow one":
            return {"text": "too slow", "delay_s": 30}
        return {"text": "second answer"}

    harness = Harness(root, [reply])
    with create_pipe_input() as pipe:
        repl = Repl(harness.config, root, console=harness.console, input=pipe, output=DummyOutput())
        repl._runtime_factory = harness.factory(repl)
        task = asyncio.create_task(repl.run(None, []))
        pipe.send_text("slow one\r")
        await async_wait_until(lambda: repl.turn_task is not None, "the turn to start")
        repl.cancel_turn()  # what the SIGINT handler does
        await wait_for_text(harness.buffer, "interrupted — the conversation is kept")
        pipe.send_text("again\r")
        await wait_for_text(harness.buffer, "second answer")
        pipe.send_text("/exit\r")
        assert await asyncio.wait_for(task, 10) == 0
    assert "too slow" not in harness.buffer.getvalue()
