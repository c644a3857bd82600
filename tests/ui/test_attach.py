"""`@file` puts the file in the message; a bad mention is not glued back (issue #14 item 10)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from kcode.ui.repl import Repl
from tests.ui.test_repl import Harness, git_repo, wait_for_text


async def test_a_mentioned_file_is_in_the_message_and_secrets_are_not(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    (root / ".env").write_text("API_TOKEN=hunter2\n")
    seen: list[str] = []

    def reply(messages: Any) -> dict[str, Any]:
        seen.append(messages[-1].text)
        return {"text": "Read it."}

    harness = Harness(root, [reply, reply])
    with create_pipe_input() as pipe:
        repl = Repl(harness.config, root, console=harness.console, input=pipe, output=DummyOutput())
        repl._runtime_factory = harness.factory(repl)
        task = asyncio.create_task(repl.run(None, []))
        pipe.send_text("explain @app.py please\r")
        await wait_for_text(harness.buffer, "Read it.")
        assert "attached @app.py (1 lines)" in harness.buffer.getvalue()
        pipe.send_text("and @.env\r")
        await wait_for_text(harness.buffer, "@.env not attached")
        pipe.send_text("/exit\r")
        assert await asyncio.wait_for(task, 10) == 0
    assert seen[0].startswith("explain @app.py please")
    assert '<file path="app.py">' in seen[0] and "print('v1')" in seen[0]
    assert "hunter2" not in seen[1] and 'error="not attached"' in seen[1]


async def test_a_bad_mention_is_not_put_back_at_the_prompt(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    seen: list[str] = []

    def reply(messages: Any) -> dict[str, Any]:
        seen.append(messages[-1].text)
        return {"text": "ok"}

    harness = Harness(root, [reply])
    with create_pipe_input() as pipe:
        repl = Repl(harness.config, root, console=harness.console, input=pipe, output=DummyOutput())
        repl._runtime_factory = harness.factory(repl)
        task = asyncio.create_task(repl.run(None, []))
        pipe.send_text("read @nope.py\r")
        await wait_for_text(harness.buffer, "↑ recalls")
        pipe.send_text("something else\r")
        await wait_for_text(harness.buffer, "ok")
        pipe.send_text("/exit\r")
        assert await asyncio.wait_for(task, 10) == 0
    assert seen == ["something else"]
