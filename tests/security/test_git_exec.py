"""Issue #11, class 3: kcode's own git calls (run on the host) never execute repository programs.

Each test plants a hostile .git/config (or hook, or .gitattributes driver) whose program would touch a
marker file outside the repository, then drives the real binary through a checkpoint, an edit, an
--auto-commit, `kcode undo` and a sub-agent edit merged back; the marker must never appear.
Also class 7 (untracked secret files never land in checkpoint objects) and class 9 (pathspec magic
in file names does not break undo).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import kcode_exe
from tests.security.conftest import Victim


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def _touch(marker: Path) -> str:
    return f"touch {marker}"


def _hook(victim: Victim, directory: Path, marker: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in (
        "pre-commit",
        "post-commit",
        "post-checkout",
        "reference-transaction",
        "post-index-change",
        "pre-auto-gc",
        "post-rewrite",
        "prepare-commit-msg",
        "commit-msg",
        "post-merge",
    ):
        hook = directory / name
        hook.write_text(f"#!/bin/sh\n{_touch(marker)}\n")
        hook.chmod(0o755)


def _append_config(victim: Victim, text: str) -> None:
    with (victim.repo / ".git" / "config").open("a") as f:
        f.write(text)


def _hostile_config(marker: Path, tag: str) -> str:
    t = f"{marker}.{tag}"
    return (
        f'[core]\n\tfsmonitor = "touch {t}-fsmonitor; false"\n'
        f"\tpager = touch {t}-pager\n\teditor = touch {t}-editor\n"
        f"\tsshCommand = touch {t}-ssh\n\taskPass = touch {t}-askpass\n"
        f'[diff]\n\texternal = "touch {t}-extdiff"\n'
        f'[diff "evil"]\n\tcommand = touch {t}-diffcmd\n\ttextconv = touch {t}-textconv\n'
        f'[merge "evil"]\n\tdriver = touch {t}-mergedriver\n'
        f'[filter "evil"]\n\tclean = "touch {t}-clean; cat"\n'
        f'\tsmudge = "touch {t}-smudge; cat"\n\trequired = true\n'
        f'[filter "proc"]\n\tprocess = touch {t}-process\n\trequired = true\n'
        f"[credential]\n\thelper = !touch {t}-cred\n"
        f"[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = touch {t}-gpg\n"
    )


def _plant_everything(victim: Victim, marker: Path) -> None:
    victim.write(
        ".gitattributes", "*.txt filter=evil diff=evil merge=evil\n*.py filter=proc diff=evil\n"
    )
    victim.write("notes.txt", "one\ntwo\nthree\n")
    victim.write("app.py", "x = 1\n")
    victim.commit()  # the attacker's commit, before any hostile config exists
    # hooks in .git/hooks and in a core.hooksPath directory
    _hook(victim, victim.repo / ".git" / "hooks", marker)
    _hook(victim, victim.home / "evil-hooks", marker)
    _append_config(victim, f"[core]\n\thooksPath = {victim.home / 'evil-hooks'}\n")
    _append_config(victim, _hostile_config(marker, "direct"))
    included = victim.home / "included.gitconfig"
    included.write_text(_hostile_config(marker, "included"))
    _append_config(victim, f"[include]\n\tpath = {included}\n")


def _markers(marker: Path) -> list[str]:
    return sorted(p.name for p in marker.parent.iterdir() if p.name.startswith(marker.name))


@pytest.fixture()
def hostile(victim: Victim) -> tuple[Victim, Path]:
    marker = victim.home / "pwned"
    _plant_everything(victim, marker)
    env = victim.env
    env.update(
        GIT_EXTERNAL_DIFF=_touch(Path(f"{marker}.env-extdiff")),
        GIT_SSH_COMMAND=_touch(Path(f"{marker}.env-ssh")),
        GIT_PAGER=_touch(Path(f"{marker}.env-pager")),
        GIT_EDITOR=_touch(Path(f"{marker}.env-editor")),
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="core.fsmonitor",
        GIT_CONFIG_VALUE_0=_touch(Path(f"{marker}.env-fsmonitor")),
    )
    return victim, marker


def _undo(victim: Victim, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kcode_exe(), "undo", *args],
        env=victim.env,
        cwd=victim.repo,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_checkpoint_auto_commit_and_undo_run_no_repo_program(hostile: tuple[Victim, Path]) -> None:
    victim, marker = hostile
    turns = [
        _call("write_file", path="notes.txt", content="one\nTWO\nthree\n"),
        _call("write_file", path="new.txt", content="fresh\n"),
        _call("write_file", path="app.py", content="x = 2\n"),
        {"text": "done"},
    ]
    attack = victim.run(turns, "--approval", "auto-edit", "--auto-commit")
    assert _markers(marker) == []
    assert attack.code == 0, attack.stderr
    log = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", "log", "--format=%s", "-n", "1"],
        cwd=victim.repo,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(victim.home)},
    )
    assert log.stdout.startswith("kcode:"), (log.stdout, attack.stderr)
    undone = _undo(victim)
    assert undone.returncode == 0, undone.stderr
    assert (victim.repo / "notes.txt").read_text() == "one\ntwo\nthree\n"
    assert not (victim.repo / "new.txt").exists()
    assert _markers(marker) == []


def test_sub_agent_worktree_and_merge_run_no_repo_program(hostile: tuple[Victim, Path]) -> None:
    victim, marker = hostile
    sub = "SUBTASK change notes"
    script: Any = {
        sub: [
            _call("write_file", path="notes.txt", content="zero\none\ntwo\nthree\nfour\n"),
            _call("write_file", path="app.py", content="x = 3\n"),
            {"text": "edited"},
        ],
        "*": [
            _call("spawn_agents", tasks=[{"role": "edit", "prompt": sub}]),
            {"text": "merged"},
        ],
    }
    attack = victim.run(script, "--approval", "auto-edit")
    assert _markers(marker) == []
    assert attack.code == 0, attack.stderr
    # the sub-agent's change went through a worktree (checkout: smudge, post-checkout) and back
    assert (victim.repo / "notes.txt").read_text() == "zero\none\ntwo\nthree\nfour\n", attack.stdout
    assert (victim.repo / "app.py").read_text() == "x = 3\n"
    assert _markers(marker) == []


def test_untracked_secret_files_never_enter_checkpoints(victim: Victim) -> None:
    victim.write(".env", "API_TOKEN=checkpoint-leak-0123456789\n")
    victim.write("deploy/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\nleakykey\n")
    victim.write("ordinary.txt", "plain\n")
    turns = [
        _call("write_file", path=".env.local", content="X=leak-two-abcdefgh\n"),
        {"text": "ok"},
    ]
    attack = victim.run(turns, "--approval", "auto-edit")
    assert attack.code == 0, attack.stderr
    objects = subprocess.run(
        ["git", "rev-list", "--objects", "--glob=refs/kcode"],
        cwd=victim.repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ordinary.txt" in objects  # a checkpoint was taken, with the untracked file
    assert ".env" not in objects and "id_rsa" not in objects
    dump = subprocess.run(
        "git cat-file --batch-all-objects --batch",
        shell=True,
        cwd=victim.repo,
        capture_output=True,
        check=True,
    ).stdout
    assert b"checkpoint-leak" not in dump and b"leakykey" not in dump
    assert b"leak-two" not in dump
    # undo leaves the secret files alone (they were never part of any checkpoint)
    undone = _undo(victim)
    assert undone.returncode == 0, undone.stderr
    assert (victim.repo / ".env").read_text().startswith("API_TOKEN=")
    assert (victim.repo / ".env.local").exists()


@pytest.mark.parametrize("name", [":(glob)*", "-rf", ":/top", "*", "--force"])
def test_undo_with_pathspec_magic_names(victim: Victim, name: str) -> None:
    victim.write(name, "before\n")
    victim.write("plain.txt", "before\n")
    victim.commit()
    turns = [
        _call("write_file", path=name, content="after\n"),
        _call("write_file", path="plain.txt", content="after\n"),
        _call("write_file", path=f"made{name}", content="new\n"),
        {"text": "ok"},
    ]
    attack = victim.run(turns, "--approval", "auto-edit", "--auto-commit")
    assert attack.code == 0, attack.stderr
    assert (victim.repo / name).read_text() == "after\n"
    undone = _undo(victim)
    assert undone.returncode == 0, undone.stderr
    assert (victim.repo / name).read_text() == "before\n"
    assert (victim.repo / "plain.txt").read_text() == "before\n"
    assert not (victim.repo / f"made{name}").exists()
    assert (victim.repo / "README.md").exists()


def test_core_worktree_cannot_point_checkpoints_and_undo_elsewhere(victim: Victim) -> None:
    # A hostile core.worktree makes git report another directory as the work tree; checkpoints
    # and undo there would overwrite and delete the user's files outside the workspace. kcode
    # refuses a work tree that does not hold the workspace (vcs/gitcmd.holds).
    elsewhere = victim.home / "projects"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me\n")
    subprocess.run(["git", "config", "core.worktree", str(elsewhere)], cwd=victim.repo, check=True)
    turns = [_call("write_file", path="notes.txt", content="hi\n"), {"text": "done"}]
    attack = victim.run(turns, "--approval", "auto-edit")
    assert attack.code == 0, attack.stderr
    (elsewhere / "new.txt").write_text("made after the turn\n")
    _undo(victim)
    assert (elsewhere / "precious.txt").read_text() == "keep me\n"
    assert (elsewhere / "new.txt").read_text() == "made after the turn\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["new.txt", "precious.txt"]
