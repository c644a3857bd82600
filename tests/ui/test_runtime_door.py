"""The REPL talks to the core only through the Runtime (issue #12): /model, /think, /clear and
/compact typed at a real REPL (pipe input) change the agent through Runtime methods; the session
log gets one `session_started`; SessionStart hooks (a real script) fire at launch, after /clear and
after compaction, and their additionalContext goes with the next message."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from kcode.agents.compaction import SUMMARY_INSTRUCTIONS
from kcode.backends.base import BackendOptions, ToolSpec
from kcode.backends.scripted import ScriptedBackend
from kcode.messages import Message
from kcode.session import list_sessions
from kcode.ui.repl import Repl
from tests.ui.helpers import scripted_config, text_console
from tests.ui.test_repl import git_repo, wait_for_text
from tests.waiting import async_wait_until

REPO = Path(__file__).resolve().parents[2]


class RecordingBackend(ScriptedBackend):
    """The scripted backend, noting the options of each request and whether it was closed."""

    def __init__(self, turns: Any) -> None:
        super().__init__(turns)
        self.options: list[BackendOptions] = []
        self.closed = False

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> Any:
        self.options.append(options)
        return super().stream(messages, tools, options)

    async def aclose(self) -> None:
        self.closed = True


def reply(messages: Sequence[Message]) -> dict[str, Any]:
    if messages[0].text.startswith(SUMMARY_INSTRUCTIONS):
        return {"text": "ok"}  # the compaction request
    typed = messages[-1].text.splitlines()[0]
    return {"text": f"reply «{typed}» " + "x" * 3000}


def session_start_hook(tmp_path: Path) -> Path:
    """A user-level SessionStart hook (a real Python script) that records its input and adds
    context naming the source."""
    log = tmp_path / "session-start.jsonl"
    hook = tmp_path / "session_start.py"
    hook.write_text(
        f"#!{sys.executable}\nimport json, sys\nd = json.load(sys.stdin)\n"
        f"open({str(log)!r}, 'a').write(json.dumps(d) + '\\n')\n"
        "print(json.dumps({'hookSpecificOutput': {'hookEventName': 'SessionStart',"
        " 'additionalContext': 'ctx-from-' + d['source']}}))\n"
    )
    hook.chmod(0o755)
    config_dir = tmp_path / "xdg-config/kcode"
    config_dir.mkdir(parents=True, exist_ok=True)
    hooks = {"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": str(hook)}]}]}}
    (config_dir / "hooks.json").write_text(json.dumps(hooks))
    return log


def sources(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["source"] for line in log.read_text().splitlines()]


def user_texts(repl: Repl) -> list[str]:
    assert repl.runtime is not None
    return [m.text for m in repl.runtime.history if m.role == "user"]


def session_records(root: Path) -> list[dict[str, Any]]:
    [info] = list_sessions(root)
    return [json.loads(line) for line in info.path.read_text().splitlines()]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


async def test_model_think_clear_compact_go_through_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: None
) -> None:
    root = git_repo(tmp_path)
    log = session_start_hook(tmp_path)
    script = tmp_path / "new-model.json"
    script.write_text(json.dumps([{"text": "the new model answers"}] * 20))
    monkeypatch.setenv("KCODE_SCRIPT", str(script))
    backend = RecordingBackend([reply] * 20)
    console, out = text_console()
    config = scripted_config(root, sandbox="off")
    with create_pipe_input() as pipe:
        repl = Repl(config, root, console=console, input=pipe, output=DummyOutput(),
                    backend=backend)  # fmt: skip
        task = asyncio.create_task(repl.run(None, []))
        # SessionStart fires at launch, before anything is typed.
        await async_wait_until(lambda: sources(log) == ["startup"], "SessionStart at launch")
        pipe.send_text("hello\r")
        await wait_for_text(out, "reply «hello»")
        assert user_texts(repl)[0].startswith("hello") and "ctx-from-startup" in user_texts(repl)[0]

        pipe.send_text("/think on\r")
        await wait_for_text(out, "Thinking is now on.")
        assert repl.runtime is not None and repl.runtime.thinking is True
        pipe.send_text("second\r")
        await wait_for_text(out, "reply «second»")
        assert backend.options[-1].thinking is True
        assert "ctx-from" not in user_texts(repl)[1]  # the launch context went with one message

        pipe.send_text("/clear\r")
        await wait_for_text(out, "Conversation cleared")
        assert "clearing discards the cached conversation" in out.getvalue()
        assert user_texts(repl) == [] and len(repl.runtime.history) == 1
        assert sources(log) == ["startup", "clear"]
        pipe.send_text("after clear\r")
        await wait_for_text(out, "reply «after clear»")
        assert "ctx-from-clear" in user_texts(repl)[0]
        pipe.send_text("one more\r")
        await wait_for_text(out, "reply «one more»")

        before = repl.runtime.estimated_tokens()
        pipe.send_text("/compact\r")
        await wait_for_text(out, "Compacted")
        assert repl.runtime.estimated_tokens() < before
        assert repl.runtime.stats().usage["requests"] >= 5  # the summary request is counted
        assert sources(log) == ["startup", "clear", "compact"]
        pipe.send_text("after compact\r")
        await async_wait_until(
            lambda: any("ctx-from-compact" in t for t in user_texts(repl)), "compact context"
        )

        pipe.send_text("/model scripted:other-model\r")
        await wait_for_text(out, "Now using other-model (scripted).")
        assert repl.runtime.model == "other-model" and repl.runtime.backend is not backend
        assert backend.closed  # no turn was running: the old backend is closed at once
        assert repl.runtime.thinking is True  # /model keeps the other options
        pipe.send_text("to the new model\r")
        await wait_for_text(out, "the new model answers")
        pipe.send_text("\x04")
        assert await asyncio.wait_for(task, 10) == 0
    records = session_records(root)
    started = [r for r in records if r.get("event", {}).get("type") == "session_started"]
    assert len(started) == 1 and started[0]["event"]["backend"] == "scripted"
    assert sources(log) == ["startup", "clear", "compact"]  # no SessionStart at exit


async def test_resumed_repl_session_starts_with_source_resume(tmp_path: Path, home: None) -> None:
    root = git_repo(tmp_path)
    log = session_start_hook(tmp_path)
    console, out = text_console()
    config = scripted_config(root, sandbox="off")
    with create_pipe_input() as pipe:
        repl = Repl(config, root, console=console, input=pipe, output=DummyOutput(),
                    backend=RecordingBackend([reply] * 5))  # fmt: skip
        task = asyncio.create_task(repl.run(None, []))
        pipe.send_text("first\r")
        await wait_for_text(out, "reply «first»")
        pipe.send_text("/exit\r")
        assert await asyncio.wait_for(task, 10) == 0
    [info] = list_sessions(root)
    console, out = text_console()
    with create_pipe_input() as pipe:
        repl = Repl(config, root, console=console, input=pipe, output=DummyOutput(),
                    resume_id=info.session_id, backend=RecordingBackend([reply] * 5))  # fmt: skip
        task = asyncio.create_task(repl.run(None, []))
        await async_wait_until(lambda: sources(log) == ["startup", "resume"], "resume hook")
        pipe.send_text("again\r")
        await wait_for_text(out, "reply «again»")
        assert "ctx-from-resume" in user_texts(repl)[1]
        pipe.send_text("/exit\r")
        assert await asyncio.wait_for(task, 10) == 0


async def test_an_empty_repl_launch_leaves_no_session(tmp_path: Path, home: None) -> None:
    root = git_repo(tmp_path)
    console, _ = text_console()
    config = scripted_config(root, sandbox="off")
    with create_pipe_input() as pipe:
        repl = Repl(config, root, console=console, input=pipe, output=DummyOutput(),
                    backend=RecordingBackend([reply]))  # fmt: skip
        task = asyncio.create_task(repl.run(None, []))
        await async_wait_until(lambda: bool(list_sessions(root)), "the session to be written")
        pipe.send_text("\x04")
        assert await asyncio.wait_for(task, 10) == 0
    assert list_sessions(root) == []


def test_nothing_outside_the_core_reaches_into_an_agent() -> None:
    """The front ends read and change the main agent only through Runtime methods."""
    found = subprocess.run(
        ["grep", "-rnE", r"agent\.(history|backend|options|stats)", "kcode/ui", "kcode/headless.py",
         "kcode/cli/commands"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert found.stdout == ""


def test_the_ui_modules_do_not_import_each_other_in_a_cycle() -> None:
    """ui.launch imports ui.repl, which imports ui.slash and its helpers: none imports back (they
    see the REPL through kcode.ui.repl_api), not even for type checking."""
    back = {
        "kcode/ui/repl.py": "launch", "kcode/ui/keytap.py": "launch",
        **{f"kcode/ui/{name}.py": "repl" for name in (
            "slash", "slash_session", "slash_changes", "extensions_ui", "lines", "shell_escape",
            "busy", "repl_api")},
    }  # fmt: skip
    for path, module in back.items():
        pattern = re.compile(rf"^\s*(from kcode\.ui\.{module} import|import kcode\.ui\.{module}\b)")
        lines = (REPO / path).read_text().splitlines()
        assert not [line for line in lines if pattern.match(line)], path
