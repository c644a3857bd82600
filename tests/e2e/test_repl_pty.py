"""The real `kcode` REPL in a pseudo-terminal against the fake OpenAI server."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest

from tests.e2e.conftest import kcode_exe, make_repo
from tests.fake_openai import FakeOpenAIServer, Reply
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def _main_tools_available() -> bool:
    from kcode.tools.registry import ROLE_TOOLS, build_tools

    try:
        build_tools(ROLE_TOOLS["main"])
    except ImportError:
        return False
    return True


def spawn(args: list[str], env: dict[str, str], cwd: Path, ready: str = "›") -> pexpect.spawn:
    # pexpect does not answer cursor-position requests; tell prompt-toolkit not to send them.
    env = {**env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        kcode_exe(), args, env=env, cwd=str(cwd), dimensions=(40, 120), encoding="utf-8",
        timeout=30,
    )  # fmt: skip
    child.expect(ready)
    return child


def test_repl_session_in_a_terminal(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    if not _main_tools_available():
        pytest.skip("the main agent's tool set is not complete yet (a tool module is missing)")
    repo = make_repo(tmp_path / "repo", {"app.py": "print('v1')\n"})
    script = [
        Reply.text("Hello from the fake model."),
        Reply.tool_call("shell", {"command": "echo e2e-approved"}),
        Reply.text("The command printed its word."),
        Reply.text("never shown", delay_s=20),
        Reply.text("Back after the interruption."),
    ]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        child = spawn([], kcode_env, repo)
        child.send("hello\r")
        child.expect("Hello from the fake model.")
        child.send("run the command\r")
        child.expect("shell wants to run")
        child.expect(r"Allow\? ")
        child.send("y\r")
        child.expect("The command printed its word.")
        for command, expected in (
            ("/help", "/compact"),
            ("/stats", "critical steps"),
            ("/diff", "No changes since the session started"),
            ("/hlp", "Did you mean /help"),
        ):
            child.send(command + "\r")
            child.expect(expected)
        child.send("take your time\r")
        # In flight now (its reply waits 20 s): Ctrl-C interrupts it, read as a key by the key
        # tap or as SIGINT by the turn's handler, both set up before the request was sent.
        wait_until(lambda: len(srv.requests) >= 4, "the slow request to reach the server")
        child.sendintr()
        child.expect("interrupted")
        child.send("again\r")
        child.expect("Back after the interruption.")
        child.send("\x04")
        child.expect("saved; resume with kcode -c")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0

        resumed = spawn(["-c"], kcode_env, repo, ready="resumed")  # the replay ends with a rule
        assert "Hello from the fake model." in resumed.before
        assert "› hello" in resumed.before and "shell echo e2e-approved" in resumed.before
        resumed.send("\x04")
        resumed.expect(pexpect.EOF)
        resumed.close()
        assert resumed.exitstatus == 0


def test_session_start_hooks_fire_at_launch_and_after_clear(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    """The real binary: SessionStart (a user-level bash hook) runs when the REPL starts, before
    anything is typed, and again after /clear; each one's output goes with the next message."""
    repo = make_repo(tmp_path / "repo", {"app.py": "print('v1')\n"})
    log = tmp_path / "hook.log"
    hook = tmp_path / "start.sh"
    hook.write_text(
        '#!/bin/bash\ninput=$(cat)\ncase "$input" in\n'
        f'  *\'"source": "clear"\'*) echo clear >> {log}; echo "context-after-clear";;\n'
        f"  *) echo launch >> {log}; echo context-at-launch;;\nesac\n"
    )
    hook.chmod(0o755)
    config = tmp_path / "xdg-config/kcode"
    config.mkdir(parents=True)
    hooks = {"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": str(hook)}]}]}}
    (config / "hooks.json").write_text(json.dumps(hooks))
    script = [Reply.text("First answer."), Reply.text("Second answer.")]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        child = spawn([], kcode_env, repo)
        wait_until(lambda: log.exists() and log.read_text() == "launch\n", "SessionStart at launch")
        child.send("hello\r")
        child.expect("First answer.")
        child.send("/clear\r")
        child.expect("Conversation cleared")
        wait_until(lambda: log.read_text() == "launch\nclear\n", "SessionStart after /clear")
        child.send("fresh start\r")
        child.expect("Second answer.")
        child.send("\x04")
        child.expect("saved; resume with kcode -c")
        child.expect(pexpect.EOF)
        child.close()
        first, second = (r.body or {} for r in srv.requests)
    assert "context-at-launch" in str(first["messages"][-1])
    assert "context-after-clear" in str(second["messages"][-1])
    assert "context-at-launch" not in str(second["messages"])
