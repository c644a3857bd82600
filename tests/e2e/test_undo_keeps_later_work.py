"""`kcode undo` puts back what kcode's turns changed and nothing else: the real binary.

It used to compare the checkpoint with the tree as it is *now*, so files the user created after
the turn were deleted and hand edits reverted, without a word (found by a crash hunt).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.conftest import Run, kcode_exe, make_repo, run_kcode


def turn(tmp_path: Path, env: dict[str, str], repo: Path) -> None:
    """One scripted turn: edit a.py, create b.py, both through kcode's tools."""
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                {
                    "tool_calls": [
                        {"name": "write_file", "arguments": {"path": "b.py", "content": "B\n"}},
                        {
                            "name": "edit_file",
                            "arguments": {
                                "path": "a.py",
                                "edits": [{"old_string": "v1", "new_string": "v2"}],
                            },
                        },
                    ]
                },
                {"text": "done"},
            ]
        )
    )
    run = run_kcode(
        ["-p", "change things", "--approval", "auto"],
        {**env, "KCODE_BACKEND": "scripted", "KCODE_SCRIPT": str(script)},
        repo,
    )
    assert run.code == 0, run.stderr
    assert (repo / "a.py").read_text() == "v2\n" and (repo / "b.py").exists()


def undo(env: dict[str, str], repo: Path) -> Run:
    proc = subprocess.run(
        [kcode_exe(), "undo"], env=env, cwd=repo, capture_output=True, text=True, timeout=60
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def test_undo_leaves_files_the_user_made_after_the_turn(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "v1\n", "c.py": "c\n"})
    turn(tmp_path, kcode_env, repo)
    (repo / "notes.txt").write_text("my notes\n")
    (repo / "work").mkdir()
    (repo / "work" / "draft.md").write_text("draft\n")
    (repo / "c.py").write_text("c, edited by hand\n")

    done = undo(kcode_env, repo)
    assert done.code == 0, done.stderr
    assert (repo / "a.py").read_text() == "v1\n" and not (repo / "b.py").exists()
    assert (repo / "notes.txt").read_text() == "my notes\n"
    assert (repo / "work" / "draft.md").read_text() == "draft\n"
    assert (repo / "c.py").read_text() == "c, edited by hand\n"
    assert "notes.txt" not in done.stdout and "draft.md" not in done.stdout


def test_undo_refuses_to_overwrite_a_later_hand_edit_of_a_file_the_turn_changed(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "v1\n"})
    turn(tmp_path, kcode_env, repo)
    (repo / "a.py").write_text("v2 and my own line\n")

    refused = undo(kcode_env, repo)
    assert refused.code == 2, refused.stdout
    assert "a.py" in refused.stderr and "nothing was changed" in refused.stderr
    assert (repo / "a.py").read_text() == "v2 and my own line\n" and (repo / "b.py").exists()

    (repo / "a.py").write_text("v2\n")  # put back as kcode left it: the undo goes through
    done = undo(kcode_env, repo)
    assert done.code == 0, done.stderr
    assert (repo / "a.py").read_text() == "v1\n" and not (repo / "b.py").exists()


def test_file_names_in_undo_output_cannot_drive_the_terminal(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    """A repository chooses its file names; undo prints them (and names them when it refuses)."""
    evil = "a\x1b]0;pwned\x07.py"
    repo = make_repo(tmp_path / "repo", {"a.py": "v1\n", evil: "e1\n"})
    script = tmp_path / "evil.json"
    edit = {"path": evil, "edits": [{"old_string": "e1", "new_string": "e2"}]}
    script.write_text(json.dumps([{"tool_calls": [{"name": "edit_file", "arguments": edit}]},
                                  {"text": "done"}]))  # fmt: skip
    env = {**kcode_env, "KCODE_BACKEND": "scripted", "KCODE_SCRIPT": str(script)}
    assert run_kcode(["-p", "go", "--approval", "auto"], env, repo).code == 0
    (repo / evil).write_text("e2 and mine\n")
    refused = undo(kcode_env, repo)
    assert refused.code == 2 and "\x1b" not in refused.stderr and "\x07" not in refused.stderr
    (repo / evil).write_text("e2\n")
    done = undo(kcode_env, repo)
    assert done.code == 0, done.stderr
    assert "\x1b" not in done.stdout and "restored a" in done.stdout
    assert (repo / evil).read_text() == "e1\n"
