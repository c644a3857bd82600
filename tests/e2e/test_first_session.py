"""Issue #14: the first interactive session as a newcomer meets it, read off the screen (pyte).

The real `kcode` in a pseudo-terminal against the fake OpenAI server. Every wait is bounded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import make_repo
from tests.e2e.screen import Terminal, chat_requests, last_user_text, wait_requests
from tests.fake_openai import FakeOpenAIServer, Reply

pytestmark = pytest.mark.slow

ALLOW = "Allow? [y/n/a/p/t]"


def assert_question_owns_the_screen(term: Terminal) -> None:
    """The question is on the cursor's line, nothing is drawn below it, and it stays so."""
    for _ in range(4):  # a spinner repainting over it would show within a few frames
        term.pump(0.15)
        assert ALLOW in term.cursor_line(), f"cursor is not on the question:\n{term.text()}"
        below = term.screen.display[term.screen.cursor.y + 1 :]
        assert not any(line.strip() for line in below), f"drawn below the question:\n{term.text()}"


def test_approvals_for_shell_run_tests_and_edits_are_visible_and_answered(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"app.py": "print('v1')\n"})
    script = [
        Reply.tool_call("shell", {"command": "echo shell-ran-$((6*7))"}),
        Reply.tool_call("run_tests", {"command": "echo tests-ran"}),
        Reply.tool_call("write_file", {"path": "app.py", "content": "print('v2')\n"}),
        Reply.text("All three done."),
    ]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        term = Terminal([], kcode_env, repo)
        term.wait_for("›")
        term.send("do the three things\r")
        titles = ("shell wants to run", "run_tests wants to run", "write_file wants to")
        for answered, title in enumerate(titles):
            term.wait_for(title)
            term.wait_until(lambda: ALLOW in term.cursor_line(), "the question is asked")
            assert_question_owns_the_screen(term)
            term.send("y\r")
            # The answer echoed after the question (the next one may follow in the same read).
            term.wait_until(
                lambda n=answered: term.raw.count(ALLOW + " y") > n, "the answer is taken"
            )
        term.wait_for("All three done.")
        screen = term.text()
        assert "✓ shell echo shell-ran-$((6*7))" in screen
        assert "✓ run_tests echo tests-ran" in screen
        assert "✓ write_file app.py" in screen
        assert term.close() == 0
    assert (repo / "app.py").read_text() == "print('v2')\n"
    tool_results = [m for m in srv.requests[1].body["messages"] if m["role"] == "tool"]
    assert "shell-ran-42" in str(tool_results[-1]["content"])


# From launch, and from the moment the first prompt character is drawn (the start-up's most
# delicate stretch: the instant prompt hands the keys over to prompt_toolkit within ~50 ms).
MOMENTS = [("launch", ms) for ms in (0, 15, 40, 70, 110, 160, 230, 300)]
MOMENTS += [("prompt", ms) for ms in (0, 5, 10, 20, 30, 45, 60, 90)]
# Just before prompt_toolkit takes over the keys, as measured by a first launch:
# where the instant prompt gave the keys back to the terminal's cooked mode.
MOMENTS += [("ready", ms) for ms in (-90, -60, -40, -25, -10, 0)]
_ready_s: list[float] = []


def ready_time(env: dict[str, str], cwd: Path) -> float:
    """Seconds from launch until prompt_toolkit reads the keys; measured once per test run."""
    if not _ready_s:
        started = time.monotonic()
        term = Terminal([], env, cwd)
        # prompt_toolkit switches bracketed paste on as it starts reading keys
        term.wait_until(
            lambda: "\x1b[?2004h" in term.raw, "prompt_toolkit", timeout=15, step_s=0.001
        )
        _ready_s.append(time.monotonic() - started)
        term.close()
    return _ready_s[0]


@pytest.mark.parametrize(("after", "delay_ms"), MOMENTS)
def test_a_message_typed_at_launch_is_sent_once_by_its_enter(
    after: str, delay_ms: int, tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    message = f"typed {delay_ms} ms after the {after}"
    with FakeOpenAIServer(default=Reply.text("Answered the early message.")) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        if after == "ready":
            ready = ready_time(kcode_env, tmp_path)
            term = Terminal([], kcode_env, tmp_path)
            time.sleep(max(ready + delay_ms / 1000, 0))
        else:
            term = Terminal([], kcode_env, tmp_path)
        if after == "prompt":
            term.wait_until(lambda: "›" in term.raw, "the first prompt", timeout=15, step_s=0.001)
            time.sleep(delay_ms / 1000)
        if after == "launch":
            time.sleep(delay_ms / 1000)
        term.send(message + "\r")
        wait_requests(srv, 1)
        term.wait_for("Answered the early message.")
        term.wait_for("›")
        assert term.close() == 0
        sent = [last_user_text(r) for r in chat_requests(srv)]
    assert sent == [message]


def test_messages_typed_during_a_streaming_answer_are_queued_and_each_sent_once(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    slow = "word " * 60
    replies = [
        Reply.text(slow + "end-of-slow-answer", chunk_chars=5, chunk_delay_s=0.05),
        Reply.text("Answer to the second."),
        Reply.text("Answer to the third."),
    ]
    with FakeOpenAIServer(replies) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        term = Terminal([], kcode_env, tmp_path)
        term.wait_for("›")
        term.send("first, a slow one\r")
        term.wait_for("word word")
        # The status line while the answer streams: elapsed time, tokens, how to interrupt.
        term.wait_for("esc/Ctrl-C to interrupt")
        term.send("second message\r")
        term.send("third message\r")
        term.send("half typed")
        term.wait_for("queued: second message")
        term.wait_for("queued: third message")
        term.wait_for("Answer to the third.")
        term.wait_for("› half typed")  # the unsent text is back at the prompt, unsent
        screen = term.text()
        assert screen.count("end-of-slow-answer") == 1  # no repaint left the answer twice
        term.send("\x15")  # Ctrl-U: clear the half-typed line, then leave
        assert term.close() == 0
        sent = [last_user_text(r) for r in chat_requests(srv)]
    assert sent == ["first, a slow one", "second message", "third message"]


def test_model_as_the_first_command_changes_the_model_on_the_wire(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    with FakeOpenAIServer(default=Reply.text("Hello from the other model.")) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        term = Terminal([], kcode_env, tmp_path)
        term.send("/model other-model\r")
        term.wait_for("Now using other-model")
        term.send("hi\r")
        term.wait_for("Hello from the other model.")
        assert term.close() == 0
        models = [r.body["model"] for r in chat_requests(srv)]
    assert models == ["other-model"]


def test_status_line_during_a_slow_answer_and_interrupt_by_escape(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    replies = [Reply.text("never shown", delay_s=20), Reply.text("Back again.")]
    with FakeOpenAIServer(replies) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        term = Terminal([], kcode_env, tmp_path)
        term.wait_for("›")
        term.send("take your time\r")
        term.wait_for("esc/Ctrl-C to interrupt")
        term.wait_for("Working… 1s")  # the elapsed time counts up
        term.send("\x1b")
        term.wait_for("interrupted")
        term.send("again\r")
        term.wait_for("Back again.")
        assert term.close() == 0
        assert len(chat_requests(srv)) == 2


def test_only_a_base_url_uses_the_servers_model(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    kcode_env.pop("KCODE_MODEL")
    with FakeOpenAIServer(default=Reply.text("Served."), models=["served-model-7b"]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        term = Terminal([], kcode_env, tmp_path)
        term.wait_for("›")
        term.send("hi\r")
        term.wait_for("Served.")
        assert "using served-model-7b" in term.text()
        assert term.close() == 0
        assert [r.body["model"] for r in chat_requests(srv)] == ["served-model-7b"]


def test_an_initial_prompt_is_echoed_and_what_is_typed_meanwhile_is_sent(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    replies = [
        Reply.text("First answer.", delay_s=1.0),
        Reply.text("Second answer."),
        Reply.text("After continuing."),
    ]
    with FakeOpenAIServer(replies) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        term = Terminal(["what is this repo?"], kcode_env, tmp_path)
        term.send("and a follow-up\r")  # typed while kcode starts and the first turn runs
        term.wait_for("› what is this repo?")
        term.wait_for("Second answer.")
        assert term.close() == 0
        resumed = Terminal(["-c"], kcode_env, tmp_path)
        resumed.send("typed while resuming\r")
        resumed.wait_for("After continuing.")
        assert resumed.close() == 0
        sent = [last_user_text(r) for r in chat_requests(srv)]
    assert sent == ["what is this repo?", "and a follow-up", "typed while resuming"]
