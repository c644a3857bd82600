"""kcode's own git calls ignore a hostile core.worktree, and new content of a tracked secret file
never becomes a git object (issue #11 classes 3 and 7), against the real binary."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import Victim
from tests.security.test_git_exec import _call, _undo


def _tree_names(victim: Victim) -> list[str]:
    out = subprocess.run(
        ["git", "rev-list", "--objects", "--glob=refs/kcode"],
        cwd=victim.repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split(" ", 1)[1] for line in out.splitlines() if " " in line]


@pytest.mark.parametrize("how", ["parent", "relative-parent", "grandparent", "include", "sibling"])
def test_core_worktree_elsewhere_is_neutralised(victim: Victim, how: str) -> None:
    # The repo sits in the user's projects directory next to other work; core.worktree names
    # that directory (or another one): checkpoints would snapshot it, undo would delete there.
    parent = victim.repo.parent
    (parent / "precious.txt").write_text("keep me\n")
    sibling = parent / "other-project"
    sibling.mkdir()
    (sibling / "work.txt").write_text("mine\n")
    value = {
        "parent": str(parent),
        "relative-parent": "../..",  # relative to .git
        "grandparent": str(parent.parent),
        "include": str(parent),
        "sibling": str(sibling),
    }[how]
    if how == "include":
        included = victim.home / "evil.gitconfig"
        included.write_text(f"[core]\n\tworktree = {value}\n")
        key, value = "include.path", str(included)
    else:
        key = "core.worktree"
    subprocess.run(["git", "config", key, value], cwd=victim.repo, check=True)
    turns: list[dict[str, Any]] = [
        _call("write_file", path="notes.txt", content="hi\n"),
        {"text": "done"},
    ]
    attack = victim.run(turns, "--approval", "auto-edit", "--auto-commit")
    assert attack.code == 0, attack.stderr
    # the checkpoints hold the repository's files at their own paths, nothing from outside
    names = _tree_names(victim)
    assert "README.md" in names
    assert not any("precious" in n or "other-project" in n or n.startswith("repo/") for n in names)
    # After the turn the user keeps working outside the repository.
    (parent / "later.txt").write_text("made after the turn\n")
    (sibling / "later.txt").write_text("also later\n")
    undone = _undo(victim)
    assert undone.returncode == 0, undone.stderr
    # undo acted in the repository, and only there
    assert not (victim.repo / "notes.txt").exists()
    assert (victim.repo / "README.md").read_text() == "# a project\n"
    assert (parent / "precious.txt").read_text() == "keep me\n"
    assert (parent / "later.txt").exists() and (sibling / "later.txt").exists()
    assert (sibling / "work.txt").read_text() == "mine\n"


def test_new_content_of_a_tracked_secret_file_is_never_hashed(victim: Victim) -> None:
    victim.write(".env", "API_TOKEN=committed-by-mistake\n")
    victim.write("config/prod.tfvars", 'password = "committed-too"\n')
    victim.commit()
    # The user then puts the real secrets in, without committing them.
    victim.write(".env", "API_TOKEN=fresh-secret-0123456789\n")
    victim.write("config/prod.tfvars", 'password = "fresh-tf-secret-987"\n')
    turns: list[dict[str, Any]] = [
        _call("write_file", path="notes.txt", content="hi\n"),
        {"text": "done"},
    ]
    attack = victim.run(turns, "--approval", "auto-edit")
    assert attack.code == 0, attack.stderr
    assert ".env" in _tree_names(victim)  # a checkpoint was taken, with the committed .env
    _assert_not_hashed(victim)
    # undo (which snapshots the tree once more) neither reverts the secret files to the
    # committed text nor deletes them
    undone = _undo(victim)
    assert undone.returncode == 0, undone.stderr
    _assert_not_hashed(victim)
    assert not (victim.repo / "notes.txt").exists()
    assert (victim.repo / ".env").read_text() == "API_TOKEN=fresh-secret-0123456789\n"
    tfvars = Path(victim.repo / "config/prod.tfvars").read_text()
    assert tfvars == 'password = "fresh-tf-secret-987"\n'


def _assert_not_hashed(victim: Victim) -> None:
    dump = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=victim.repo,
        capture_output=True,
        check=True,
    ).stdout
    assert b"committed-by-mistake" in dump  # the dump does see blobs
    assert b"fresh-secret" not in dump and b"fresh-tf-secret" not in dump
