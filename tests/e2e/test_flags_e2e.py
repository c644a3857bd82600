"""Issue #12 "Bad input" and global flags around subcommands, through the real `kcode` binary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import run_kcode

BAD = [
    (["--no-such-flag"], "unknown flag --no-such-flag"),
    (["fix", "ui.png", "--no-such-flag"], "unknown flag --no-such-flag for kcode fix"),
    (["--model", "a", "-p", "x", "--model", "b"], "--model given twice; give it once"),
    (["--entry", "index.html", "fix", "ui.png"], "put it after the command: kcode fix IMAGE"),
    (["models", "list", "--approval", "auto"], "--approval does not apply to kcode models list"),
    (["doctor", "--sandbox", "off"], "--sandbox does not apply to kcode doctor"),
]


@pytest.mark.parametrize(
    ("argv", "says"), BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], says: str, tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    run = run_kcode(argv, kcode_env, tmp_path)
    assert run.code == 2 and run.stdout == ""
    assert run.stderr.startswith("kcode: ") and run.stderr.count("\n") == 1, run.stderr
    assert says in run.stderr


def test_a_bad_flag_with_json_output_is_the_json_result(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    run = run_kcode(["--output-format", "json", "fix", "a.png", "--entry", "x", "--entry", "y"],
                    kcode_env, tmp_path)  # fmt: skip
    result = json.loads(run.stdout)
    assert run.code == 2 and result["exit_code"] == 2 and "--entry given twice" in result["error"]


def test_global_flags_reach_the_command_before_or_after_its_name(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shown = []
    for argv in (["--model", "before-model", "-C", str(work), "config", "show"],
                 ["config", "show", "-C", str(work), "--model", "before-model"]):  # fmt: skip
        run = run_kcode(argv, kcode_env, tmp_path)
        assert run.code == 0, run.stderr
        shown.append(run.stdout)
        assert "before-model" in run.stdout and "(flag" in run.stdout
    assert shown[0] == shown[1]


def test_the_issue_example_gets_past_the_flags(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    # Before #12: `No such option: --entry`. Now the flags parse and the fix loop says what it
    # cannot do with this directory (no image here).
    run = run_kcode(["--model", "X", "fix", "ui.png", "--entry", "index.html", "-p"],
                    kcode_env, tmp_path)  # fmt: skip
    assert "--entry" not in run.stderr and "option" not in run.stderr.lower()
    assert run.code == 2 and "ui.png" in run.stderr
