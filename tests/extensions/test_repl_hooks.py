"""PreCompact and Notification hooks in the REPL, as real hook scripts in the user's hooks.json.

PreCompact: `/compact` (trigger manual, with its custom_instructions) and the automatic compaction
when the context is nearly full (trigger auto), both blocked by an exit-2 hook and then let through.
Notification: the approval prompt (permission_prompt) and a prompt left waiting (idle_prompt).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from kcode.agents.compaction import SUMMARY_INSTRUCTIONS
from kcode.backends.scripted import ScriptedBackend
from kcode.extensions import notify
from kcode.messages import Message
from kcode.ui.repl import Repl
from tests.ui.helpers import scripted_config, text_console
from tests.ui.test_repl import git_repo, wait_for_text

RECORDER = """#!{python}
import json, os, sys
data = json.load(sys.stdin)
with open({log!r}, "a") as f:
    f.write(json.dumps(data) + "\\n")
if data["hook_event_name"] == "PreCompact" and os.path.exists({block!r}):
    sys.stderr.write("keep the full log")
    sys.exit(2)
"""


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A Python hook on PreCompact and Notification in the user's hooks.json (user hooks need
    no trust question); it logs its stdin and blocks compaction while `block` exists."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    log, block = tmp_path / "hooks.jsonl", tmp_path / "block"
    hook = tmp_path / "record.py"
    hook.write_text(RECORDER.format(python=sys.executable, log=str(log), block=str(block)))
    hook.chmod(0o755)
    entry = [{"hooks": [{"type": "command", "command": str(hook)}]}]
    user_dir = tmp_path / "xdg-config" / "kcode"
    user_dir.mkdir(parents=True)
    hooks = {"hooks": {"PreCompact": entry, "Notification": entry}}
    (user_dir / "hooks.json").write_text(json.dumps(hooks))
    return {"log": log, "block": block}


def logged(log: Path, event: str) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    return [d for d in seen if d["hook_event_name"] == event]


async def test_pre_compact_manual_and_auto_block_then_let_through(
    tmp_path: Path, recorder: dict[str, Path]
) -> None:
    root = git_repo(tmp_path)
    answers = {"one": "first answer " + "y" * 1500, "two": "second answer",
               "three": "x" * 4000, "four": "fourth answer", "five": "fifth answer"}  # fmt: skip
    summaries: list[str] = []

    def model(messages: Sequence[Message]) -> dict[str, Any]:
        if messages[0].text.startswith(SUMMARY_INSTRUCTIONS):  # a compaction's summary request
            summaries.append(f"SUMMARY {len(summaries) + 1}")
            return {"text": summaries[-1]}
        return {"text": answers[[m for m in messages if m.role == "user"][-1].text]}

    console, out = text_console()
    config = scripted_config(root, sandbox="off")
    log, block = recorder["log"], recorder["block"]
    with create_pipe_input() as pipe:
        repl = Repl(config, root, console=console, input=pipe, output=DummyOutput(),
                    backend=ScriptedBackend([model] * 20))  # fmt: skip
        task = asyncio.create_task(repl.run(None, []))
        for line, answer in (("one", "first answer"), ("two", "second answer")):
            pipe.send_text(line + "\r")
            await wait_for_text(out, answer)
        pipe.send_text("/compact focus on the API\r")
        await wait_for_text(out, "Compacted ")
        block.touch()
        pipe.send_text("/compact\r")
        await wait_for_text(out, "Compaction skipped: keep the full log")
        history = list(repl.runtime.agent.history)
        assert any("SUMMARY 1" in m.text for m in history)
        pipe.send_text("three\r")
        await wait_for_text(out, "xxxxxxxx")
        repl.config.context_window = 1024  # the next turn finds the context nearly full
        pipe.send_text("four\r")
        await wait_for_text(out, "fourth answer")
        assert out.getvalue().count("Compaction skipped: keep the full log") == 2
        block.unlink()
        pipe.send_text("five\r")
        await wait_for_text(out, "fifth answer")
        pipe.send_text("\x04")
        assert await asyncio.wait_for(task, 10) == 0
    got = [(d["trigger"], d["custom_instructions"]) for d in logged(log, "PreCompact")]
    assert got == [("manual", "focus on the API"), ("manual", ""), ("auto", ""), ("auto", "")]
    assert all(d["session_id"] and d["cwd"] == str(root) for d in logged(log, "PreCompact"))
    assert "Context is nearly full; compacting" in out.getvalue()
    texts = [m.text for m in repl.runtime.agent.history]
    assert summaries == ["SUMMARY 1", "SUMMARY 2"]
    assert any("SUMMARY 2" in t for t in texts) and not any("x" * 4000 in t for t in texts)


async def test_notification_on_a_permission_prompt_and_an_idle_prompt(
    tmp_path: Path, recorder: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "IDLE_AFTER_S", 0.5)
    root = git_repo(tmp_path)
    turns = [
        {"tool_calls": [{"name": "shell", "arguments": {"command": "echo asked"}}]},
        {"text": "did not run it"},
    ]
    console, out = text_console()
    log = recorder["log"]
    with create_pipe_input() as pipe:
        repl = Repl(scripted_config(root, sandbox="off"), root, console=console, input=pipe,
                    output=DummyOutput(), backend=ScriptedBackend(turns))  # fmt: skip
        task = asyncio.create_task(repl.run(None, []))
        pipe.send_text("run it\r")
        await wait_for_text(out, "shell wants to run")
        for _ in range(500):  # fired in the background while the question waits
            if logged(log, "Notification"):
                break
            await asyncio.sleep(0.02)
        pipe.send_text("n\r")
        await wait_for_text(out, "did not run it")
        for _ in range(500):
            if len(logged(log, "Notification")) >= 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.2)  # long enough for a second idle notice, which must not come
        pipe.send_text("\x04")
        assert await asyncio.wait_for(task, 10) == 0
    seen = logged(log, "Notification")
    assert [d["notification_type"] for d in seen] == ["permission_prompt", "idle_prompt"]
    assert seen[0]["message"] == "kcode needs your permission to use shell: echo asked"
    assert seen[0]["title"] == "kcode" and seen[0]["permission_mode"] == "ask"
    assert seen[1]["message"] == "kcode is waiting for your input"
