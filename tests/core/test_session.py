"""Session logs: append-only JSONL, resumable, torn lines tolerated, secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kcode.events import TextDelta, TurnStarted
from kcode.messages import Message, ToolCall
from kcode.session import Session, list_sessions


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def test_history_round_trips_and_lists(tmp_path: Path) -> None:
    session = Session.create(tmp_path, {"model": "m"})
    session.log_message(Message.system("sys"))
    session.log_message(Message.user("hello"))
    session.log_message(Message.assistant("hi", reasoning="thought"))
    session.close()
    reopened = Session.open_existing(session.session_id)
    history = reopened.load_history()
    assert [m.role for m in history] == ["system", "user", "assistant"]
    assert history[2].reasoning == "thought"
    [info] = list_sessions(tmp_path)
    assert info.session_id == session.session_id and info.first_prompt == "hello"


def test_a_torn_last_line_and_unanswered_calls_are_repaired(tmp_path: Path) -> None:
    session = Session.create(tmp_path)
    session.log_message(Message.user("go"))
    call = ToolCall("c1", "grep", {"pattern": "x"})
    session.log_message(Message.assistant("", (call,)))
    session.close()
    with session.path.open("a") as f:
        f.write('{"record": "message", "message": {"role": "tool", "par')  # killed mid-write
    history = Session.open_existing(session.session_id).load_history()
    assert history[-1].role == "tool" and history[-1].tool_call_id == "c1"
    assert "interrupted" in history[-1].text


def test_secrets_are_redacted_and_deltas_not_logged(tmp_path: Path) -> None:
    session = Session.create(tmp_path, redact=["sk-canary-123"])
    session.log_event(TurnStarted(prompt="my key is sk-canary-123"))
    session.log_event(TextDelta(text="chunk"))
    session.close()
    text = session.path.read_text()
    assert "sk-canary-123" not in text and "[redacted]" in text
    assert all(json.loads(line) for line in text.splitlines())
    assert "text_delta" not in text
    assert (session.path.stat().st_mode & 0o777) == 0o600
