"""/compact never keeps a bigger history than it started with (issue #14 item 5)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kcode.messages import Message, ToolCall, ToolResult
from kcode.ui.repl import Repl
from kcode.ui.slash import compact_now
from tests.ui.test_repl import Harness, git_repo


def small_history() -> list[Message]:
    history = [Message.system("system")]
    for n in range(3):
        call = ToolCall(f"c{n}", "read_file", {"path": f"f{n}.py"})
        history += [Message.user(f"task {n}"), Message.assistant("", (call,))]
        history += [Message.tool(ToolResult(f"c{n}", True, "x" * 2000)), Message.assistant("ok")]
    return history


async def run_compact(tmp_path: Path, summary: str) -> tuple[Repl, list[Message], str]:
    root = git_repo(tmp_path)
    harness = Harness(root, [{"text": summary}])
    repl = Repl(harness.config, root, console=harness.console)
    repl._runtime_factory = harness.factory(repl)
    runtime = await asyncio.wait_for(repl.ensure_runtime(), 10)
    runtime.agent.history[:] = small_history()  # test set-up: a conversation to compact
    before = list(runtime.history)
    await compact_now(repl)
    return repl, before, harness.buffer.getvalue()


async def test_a_summary_bigger_than_the_history_is_not_kept(tmp_path: Path) -> None:
    repl, before, out = await run_compact(tmp_path, "a very long summary " * 2000)
    assert repl.runtime is not None and list(repl.runtime.history) == before
    assert "would not make the context smaller" in out and "history is unchanged" in out
    assert repl.runtime.stats().usage["requests"] == 1  # the request was still made and counted


async def test_a_smaller_summary_replaces_the_old_traffic(tmp_path: Path) -> None:
    repl, before, out = await run_compact(tmp_path, "ok")
    assert repl.runtime is not None
    history: Any = repl.runtime.history
    assert "Compacted" in out
    assert len(str(history)) < len(str(before))
