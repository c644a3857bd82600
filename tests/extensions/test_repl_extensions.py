"""The REPL side: the trust question, /plan with approval then execution, Shift-Tab, /command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from kcode.backends.scripted import ScriptedBackend
from kcode.extensions.trust import stored_decision
from kcode.ui.repl import Repl
from tests.ui.helpers import scripted_config, text_console
from tests.ui.test_repl import git_repo, wait_for_text


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


async def test_trust_then_plan_approve_and_carry_out(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    marker = tmp_path / "prompt-hook-ran"
    hooks = {"hooks": {"UserPromptSubmit": [{"hooks": [{"command": f"touch {marker}"}]}]}}
    (root / ".kcode").mkdir()
    (root / ".kcode/hooks.json").write_text(json.dumps(hooks))
    (root / ".kcode/commands").mkdir()
    (root / ".kcode/commands/bump.md").write_text("Bump app.py to $1.\n")
    turns = [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "app.py", "content": "x"}}]},
        {"text": "PLAN: 1. write v2 into app.py"},
        {"tool_calls": [{"name": "write_file",
                         "arguments": {"path": "app.py", "content": "print('v2')\n"}}]},
        {"text": "Carried out the plan."},
    ]  # fmt: skip
    backend = ScriptedBackend(turns)
    console, out = text_console()
    config = scripted_config(root, sandbox="off")
    with create_pipe_input() as pipe:
        repl = Repl(config, root, console=console, input=pipe, output=DummyOutput(),
                    backend=backend)  # fmt: skip
        task = asyncio.create_task(repl.run(None, []))
        await wait_for_text(out, "Trust this project's MCP servers, hooks and commands?")
        assert ".kcode/commands/bump.md" in out.getvalue()
        pipe.send_text("y\r")
        await wait_for_text(out, "Project trusted")
        assert stored_decision(root) is True
        pipe.send_text("\x1b[Z")  # Shift-Tab: ask → auto-edit
        pipe.send_text("/approval\r")
        await wait_for_text(out, "approval: auto-edit")
        assert "bump" in repl.prompt.completer.commands  # type: ignore[union-attr]
        pipe.send_text("/plan /bump v2\r")
        await wait_for_text(out, "Approve this plan and carry it out?")
        assert (root / "app.py").read_text() == "print('v1')\n"  # nothing changed while planning
        pipe.send_text("y\r")
        await wait_for_text(out, "Carried out the plan.")
        assert repl.approver.mode == "auto-edit"  # back to the mode before /plan
        pipe.send_text("\x04")
        assert await asyncio.wait_for(task, 10) == 0
    assert (root / "app.py").read_text() == "print('v2')\n"
    assert marker.exists()  # the trusted project's hook ran
    history = repl.runtime.agent.history
    users = [m.text for m in history if m.role == "user"]
    assert users[0].startswith("Bump app.py to v2.") and "[kcode plan mode]" in users[0]
    assert users[1].startswith("The plan above is approved.")
    tools = [m.text for m in history if m.role == "tool"]
    assert "plan mode: `write_file` does not run" in tools[0]


async def test_declining_trust_keeps_project_hooks_off(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    marker = tmp_path / "ran"
    hooks = {"hooks": {"UserPromptSubmit": [{"hooks": [{"command": f"touch {marker}"}]}]}}
    (root / ".claude").mkdir()
    (root / ".claude/settings.json").write_text(json.dumps(hooks))
    console, out = text_console()
    with create_pipe_input() as pipe:
        repl = Repl(scripted_config(root, sandbox="off"), root, console=console, input=pipe,
                    output=DummyOutput(), backend=ScriptedBackend([{"text": "hello back"}]))  # fmt: skip
        task = asyncio.create_task(repl.run(None, []))
        await wait_for_text(out, "Trust this project?")
        pipe.send_text("n\r")
        await wait_for_text(out, "not trusted")
        pipe.send_text("hi\r")
        await wait_for_text(out, "hello back")
        pipe.send_text("\x04")
        assert await asyncio.wait_for(task, 10) == 0
    assert not marker.exists() and stored_decision(root) is False
