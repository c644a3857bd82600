"""A session id is only ever an id (found by a crash hunt with the real binary): `--resume` and
`kcode sessions show` took a path, and the resumed run appended its records to that file; an
unknown id with -p and a 300-character id crashed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kcode.ui.input import MentionError, parse_mentions
from tests.e2e.conftest import make_repo, run_kcode

SCRIPTED = '[{"text": "done"}]'


@pytest.mark.parametrize(
    "session_id", ["../../../victim", "{victim}", "x" * 300, "20200101-000000-abcdeg"]
)
def test_resume_and_show_refuse_what_is_not_a_session_id(
    tmp_path: Path, kcode_env: dict[str, str], session_id: str
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    victim = tmp_path / "victim.jsonl"
    victim.write_text('{"my": "data"}\n')
    session_id = session_id.format(victim=tmp_path / "victim")
    script = tmp_path / "script.json"
    script.write_text(SCRIPTED)
    env = {**kcode_env, "KCODE_BACKEND": "scripted", "KCODE_SCRIPT": str(script)}
    # The sessions directory is three levels below XDG_DATA_HOME's parent: ../../../victim
    # pointed at tmp_path/victim.jsonl before ids were checked.
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    os.makedirs(tmp_path / "data" / "kcode" / "sessions", exist_ok=True)
    for args in (["-p", "hi", f"--resume={session_id}"], ["sessions", "show", session_id]):
        run = run_kcode(args, env, repo)
        assert run.code == 2, (args, run.stdout, run.stderr)
        assert "not a session id" in run.stderr and "internal error" not in run.stderr
    assert victim.read_text() == '{"my": "data"}\n'


def test_resuming_an_unknown_session_with_p_is_a_usage_error(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    script = tmp_path / "script.json"
    script.write_text(SCRIPTED)
    env = {**kcode_env, "KCODE_BACKEND": "scripted", "KCODE_SCRIPT": str(script)}
    run = run_kcode(["-p", "hi", "--resume=20200101-000000-abcdef"], env, tmp_path)
    assert run.code == 2, run.stderr
    assert "no session" in run.stderr and "internal error" not in run.stderr


def test_a_pasted_nul_in_a_mention_is_a_message(tmp_path: Path) -> None:
    with pytest.raises(MentionError, match="NUL"):
        parse_mentions("look at @a.py\0 please", tmp_path)
