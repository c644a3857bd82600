"""The session log after a kill -9 mid-write: a resumed session appends readable records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kcode.messages import Message
from kcode.session import Session


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _lines(path: Path) -> list[dict[str, object]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "the log must end with a whole line"
    return [json.loads(line) for line in raw.splitlines()]  # every line parses


@pytest.mark.parametrize("torn", [b'{"record": "message", "mess', b"{", b"x" * 200_000])
def test_a_resume_after_a_torn_write_cuts_the_torn_tail(tmp_path: Path, torn: bytes) -> None:
    session = Session.create(tmp_path)
    session.log_message(Message.user("first"))
    session.close()
    with session.path.open("ab") as f:
        f.write(torn)  # what a kill -9 in the middle of a large write() leaves
    resumed = Session.open_existing(session.session_id)
    resumed.log_message(Message.user("after the resume"))
    resumed.close()
    records = _lines(session.path)
    assert [r["record"] for r in records] == ["meta", "message", "message"]
    texts = [m.text for m in Session.open_existing(session.session_id).load_history()]
    assert texts == ["first", "after the resume"]


def test_a_log_that_is_only_a_torn_line_is_cut_to_empty(tmp_path: Path) -> None:
    session = Session.create(tmp_path)
    session.close()
    session.path.write_bytes(b'{"record": "me')
    resumed = Session.open_existing(session.session_id)
    resumed.log_message(Message.user("hello"))
    resumed.close()
    assert [r["record"] for r in _lines(session.path)] == ["message"]


def test_a_large_record_is_written_whole(tmp_path: Path) -> None:
    session = Session.create(tmp_path)
    big = "y" * 3_000_000  # many pages: one write() call may be cut short, the rest must follow
    session.log_message(Message.user(big))
    session.close()
    assert os.path.getsize(session.path) > len(big)
    assert Session.open_existing(session.session_id).load_history()[0].text == big
