"""The loop snapshots before every turn, so undo reverts what a real turn did (shell included)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kcode.agents.loop import Agent
from kcode.backends.base import BackendOptions
from kcode.backends.openai.api import OpenAIBackend
from kcode.messages import Message
from kcode.tools.base import ToolContext
from kcode.tools.registry import build_tools
from kcode.vcs.checkpoints import create_checkpoints
from tests.fake_openai import FakeOpenAIServer, Reply
from tests.safety.helpers import make_repo, tree_state
from tests.safety.interrupts import LAUNCH, kcode_env


async def test_a_real_turn_is_snapshotted_and_undone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "one\n", "b.txt": "bee\n"})
    before = tree_state(repo)
    script = [
        Reply.multi_call(("write_file", {"path": "a.txt", "content": "two\n"})),
        Reply.tool_call("shell", {"command": "rm b.txt && mkdir out && echo x > out/made.txt"}),
        Reply.text("done"),
    ]
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(server.base_url, "k", "m")
        ctx = ToolContext(root=repo)
        ctx.checkpoints = create_checkpoints(ctx.root, "turns", ctx.changes)
        agent = Agent(
            backend=backend,
            tools=build_tools(["write_file", "shell"]),
            ctx=ctx,
            system_prompt="t",
            options=BackendOptions(model="m"),
        )
        async for _ in agent.run_turn(Message.user("change it")):
            pass
        await backend.aclose()
    assert tree_state(repo) != before
    report = ctx.checkpoints.undo(1)
    assert tree_state(repo) == before
    assert report.restored == ["a.txt", "b.txt"] and report.removed == ["out/made.txt"]


def test_a_rule_that_does_not_parse_exits_2_naming_the_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    config = tmp_path / "config" / "kcode" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[rules]\nask = ["shell(git push*"]\n')
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, "-p", "hi"],
        cwd=ws,
        env=kcode_env(tmp_path, "http://127.0.0.1:9/v1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert str(config) in done.stderr and "shell(git push*" in done.stderr
