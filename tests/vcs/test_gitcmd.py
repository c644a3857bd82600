"""kcode/vcs/gitcmd: the one git runner. Real repositories in tmp dirs, real git.

The callers that used to run `git status` directly (run_tests' and the checks' trust decision) now
go through it, so a repository's core.fsmonitor no longer runs when they look at the tree.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from kcode.tools.run_tests import changed_runner_configs
from kcode.vcs.gitcmd import ALL_CODES, IDENTITY, Git, GitError, git_text, run_git, run_git_async


class Boom(Exception):
    pass


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("a\n")
    return repo


def _plant_fsmonitor(repo: Path, marker: Path) -> None:
    with (repo / ".git" / "config").open("a") as f:
        f.write(f'[core]\n\tfsmonitor = "touch {marker}; false"\n')


def test_status_of_run_tests_runs_no_fsmonitor(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    marker = tmp_path / "pwned"
    _plant_fsmonitor(repo, marker)
    (repo / "conftest.py").write_text("")
    assert changed_runner_configs(repo) == ["conftest.py"]
    assert not marker.exists()
    # the same config does run it under a plain `git status`: the test plants a working hook
    subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, check=False)
    assert marker.exists()


def test_outside_git_changed_runner_configs_cannot_tell(tmp_path: Path) -> None:
    assert changed_runner_configs(tmp_path) is None


def test_fail_as_and_text(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert Path(git_text(repo, "rev-parse", "--show-toplevel")).resolve() == repo.resolve()
    with pytest.raises(GitError, match="rev-parse"):
        run_git(repo, "rev-parse", "--verify", "nope")
    with pytest.raises(Boom, match="rev-parse"):
        Git(repo, fail_as=Boom).run("rev-parse", "--verify", "nope")
    assert run_git(repo, "rev-parse", "--verify", "nope", ok_codes=ALL_CODES).returncode != 0


def test_git_object_async_and_identity(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    git = Git(repo, fail_as=Boom)

    async def commit() -> str:
        await git.run_async("add", "a.txt")
        tree = await git.text_async("write-tree")
        return await git.text_async("commit-tree", tree, "-m", "m", env=IDENTITY)

    sha = asyncio.run(commit())
    assert "author kcode <kcode@localhost>" in git.text("cat-file", "commit", sha)
    proc = asyncio.run(run_git_async(repo, "cat-file", "-t", sha))
    assert proc.stdout.strip() == b"commit"
