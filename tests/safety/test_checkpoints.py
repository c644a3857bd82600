"""Checkpoints and undo: edits, shell changes, user changes that must survive, no commits, no git."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kcode.tools.base import ToolContext
from kcode.vcs.backup_checkpoints import BackupCheckpoints
from kcode.vcs.checkpoints import (
    REF_PREFIX,
    CheckpointError,
    GitCheckpoints,
    create_checkpoints,
)
from tests.safety.helpers import call, git, make_repo, tree_state


def _ctx(root: Path, session: str = "s1") -> ToolContext:
    ctx = ToolContext(root=root)
    ctx.checkpoints = create_checkpoints(ctx.root, session, ctx.changes)
    return ctx


async def test_undo_reverts_tool_edits_and_shell_creates_deletes_renames(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n", "b.txt": "bee\n", "c.txt": "sea\n"})
    ctx = _ctx(repo)
    before = tree_state(repo)
    await ctx.checkpoints.before_turn("change things")
    await call(ctx, "write_file", path="a.py", content="a = 2\n")
    result = await call(
        ctx,
        "shell",
        command="echo new > new.txt && rm b.txt && mv c.txt d.txt && mkdir -p x/y"
        " && echo z > x/y/z.txt",
    )
    assert result.ok, result.content
    assert tree_state(repo) != before
    report = ctx.checkpoints.undo(1)
    assert tree_state(repo) == before
    assert sorted(report.restored) == ["a.py", "b.txt", "c.txt"]
    assert sorted(report.removed) == ["d.txt", "new.txt", "x/y/z.txt"]
    assert not (repo / "x").exists()
    # The user's index, branch and stash are untouched.
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "stash", "list") == ""
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"


async def test_uncommitted_user_changes_present_before_the_turn_survive(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n", "keep.txt": "v1\n"})
    (repo / "keep.txt").write_text("user edit, not committed\n")
    (repo / "untracked.txt").write_text("user's untracked file\n")
    git(repo, "add", "keep.txt")  # staged by the user
    (repo / ".gitignore").write_text("build/\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("ignored\n")
    index_before = (repo / ".git" / "index").read_bytes()
    ctx = _ctx(repo)
    await ctx.checkpoints.before_turn("edit")
    assert (repo / ".git" / "index").read_bytes() == index_before
    await call(ctx, "shell", command="echo turn >> keep.txt; rm untracked.txt; echo x > a.py")
    report = ctx.checkpoints.undo()
    assert (repo / "keep.txt").read_text() == "user edit, not committed\n"
    assert (repo / "untracked.txt").read_text() == "user's untracked file\n"
    assert (repo / "a.py").read_text() == "a = 1\n"
    assert (repo / "build" / "out.bin").exists()
    assert sorted(report.restored) == ["a.py", "keep.txt", "untracked.txt"]
    assert git(repo, "diff", "--cached", "--name-only").strip() == "keep.txt"


async def test_works_in_a_repo_with_no_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "one\n"}, commit=False)
    ctx = _ctx(repo)
    await ctx.checkpoints.before_turn("t1")
    await call(ctx, "shell", command="echo two > a.txt; echo b > b.txt")
    report = ctx.checkpoints.undo()
    assert (repo / "a.txt").read_text() == "one\n"
    assert not (repo / "b.txt").exists()
    assert report.restored == ["a.txt"] and report.removed == ["b.txt"]
    with pytest.raises(subprocess.CalledProcessError):
        git(repo, "rev-parse", "HEAD")  # still no commit


async def test_undo_several_turns_and_the_refs_are_hidden(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"n.txt": "0\n"})
    ctx = _ctx(repo, "sess")
    for i in range(1, 4):
        await ctx.checkpoints.before_turn(f"turn {i}")
        await call(ctx, "write_file", path="n.txt", content=f"{i}\n")
    refs = git(repo, "for-each-ref", "--format=%(refname)", REF_PREFIX).split()
    assert refs == [f"{REF_PREFIX}/sess/{i}" for i in (1, 2, 3)]
    assert git(repo, "branch", "--list").strip() == "* main"
    ctx.checkpoints.undo(2)
    assert (repo / "n.txt").read_text() == "1\n"
    ctx.checkpoints.undo(1)
    assert (repo / "n.txt").read_text() == "0\n"
    with pytest.raises(CheckpointError, match="nothing to undo"):
        ctx.checkpoints.undo(1)


async def test_a_checkpoint_ref_deleted_by_hand_is_named_and_nothing_changes(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "one\n"})
    ctx = _ctx(repo, "gone")
    await ctx.checkpoints.before_turn("t")
    (repo / "a.txt").write_text("two\n")
    git(repo, "update-ref", "-d", f"{REF_PREFIX}/gone/1")
    with pytest.raises(CheckpointError, match=f"{REF_PREFIX}/gone/1"):
        ctx.checkpoints.undo()
    assert (repo / "a.txt").read_text() == "two\n"


def test_old_checkpoints_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kcode.vcs.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "KEEP_PER_SESSION", 3)
    repo = make_repo(tmp_path / "r", {"a.txt": "x\n"})
    cp = GitCheckpoints(repo, "p")
    for i in range(6):
        cp.snapshot(f"t{i}")
    refs = git(repo, "for-each-ref", "--format=%(refname)", REF_PREFIX).split()
    assert refs == [f"{REF_PREFIX}/p/{i}" for i in (4, 5, 6)]


async def test_auto_commit_makes_one_commit_per_turn(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "one\n", "user.txt": "u\n"})
    (repo / "user.txt").write_text("user change\n")
    cp = GitCheckpoints(repo, "ac", auto_commit=True)
    await cp.before_turn("Add a greeting file")
    (repo / "hello.txt").write_text("hi\n")
    await cp.after_turn()
    log = git(repo, "log", "--format=%s", "-n", "1").strip()
    assert log == "kcode: Add a greeting file"
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["hello.txt"]
    assert "user.txt" in git(repo, "status", "--porcelain")  # the user's change stays theirs


async def test_outside_git_tool_writes_are_undone_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "a.txt").write_text("orig\n")
    ctx = _ctx(root)
    assert isinstance(ctx.checkpoints, BackupCheckpoints)
    await ctx.checkpoints.before_turn("t1")
    await call(ctx, "write_file", path="a.txt", content="t1\n")
    await ctx.checkpoints.before_turn("t2")
    await call(ctx, "write_file", path="a.txt", content="t2\n")
    await call(ctx, "write_file", path="new.txt", content="n\n")
    report = ctx.checkpoints.undo(1)
    assert (root / "a.txt").read_text() == "t1\n" and not (root / "new.txt").exists()
    assert any("shell" in w for w in report.warnings)
    ctx.checkpoints.undo(1)
    assert (root / "a.txt").read_text() == "orig\n"


def test_kcode_undo_command_restores_and_lists_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "one\n"})
    cp = GitCheckpoints(repo, "20250101-000000-abcdef")
    cp.snapshot("t")
    (repo / "a.txt").write_text("changed\n")
    (repo / "made.txt").write_text("new\n")
    done = subprocess.run(
        [sys.executable, "-m", "kcode", "undo", "1", "-C", str(repo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "restored a.txt" in done.stdout and "removed made.txt" in done.stdout
    assert (repo / "a.txt").read_text() == "one\n"
    again = subprocess.run(
        [sys.executable, "-m", "kcode", "undo", "-C", str(repo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2 and "nothing to undo" in again.stderr


async def test_untracked_secret_files_are_skipped_and_survive_undo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n"})
    (repo / ".env").write_text("TOKEN=old-secret-value\n")
    ctx = _ctx(repo)
    await ctx.checkpoints.before_turn("edit")
    await call(ctx, "write_file", path="a.py", content="a = 2\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "server.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (repo / "new.txt").write_text("new\n")
    report = ctx.checkpoints.undo(1)
    assert sorted(report.removed) == ["new.txt"] and report.restored == ["a.py"]
    assert (repo / ".env").is_file() and (repo / "sub" / "server.pem").is_file()
    dump = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True
    ).stdout
    assert b"old-secret-value" not in dump and b"BEGIN PRIVATE KEY" not in dump


async def test_subdirectory_workspace_snapshot_with_literal_pathspecs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"pkg/:(glob)*": "x\n", "top.txt": "t\n"})
    ctx = _ctx(repo / "pkg")
    await ctx.checkpoints.before_turn("edit")
    await call(ctx, "write_file", path=":(glob)*", content="y\n")
    (repo / "top.txt").write_text("user edit outside the workspace\n")
    report = ctx.checkpoints.undo(1)
    assert report.restored == [":(glob)*"]
    assert (repo / "pkg" / ":(glob)*").read_text() == "x\n"
    assert (repo / "top.txt").read_text().startswith("user edit")


async def test_a_tracked_directory_swapped_for_a_symlink_is_snapshotted(tmp_path: Path) -> None:
    """`mv cfg other; ln -s other cfg`: git refuses paths "beyond a symbolic link", which used to
    fail the next turn's checkpoint (exit 1). The snapshot holds the link, and undo brings the
    directory back."""
    repo = make_repo(tmp_path / "r", {"cfg/a.txt": "a\n", "b.txt": "b\n"})
    ctx = _ctx(repo)
    await ctx.checkpoints.before_turn("swap")
    result = await call(ctx, "shell", command="mv cfg other && ln -s other cfg")
    assert result.ok, result.content
    await ctx.checkpoints.before_turn("next turn")  # must not raise
    tree = git(repo, "ls-tree", "-r", "--name-only", f"{REF_PREFIX}/s1/2")
    assert "cfg/a.txt" not in tree.split() and "other/a.txt" in tree.split()
    ctx.checkpoints.undo(2)
    assert (repo / "cfg").is_dir() and not (repo / "cfg").is_symlink()
    assert (repo / "cfg/a.txt").read_text() == "a\n" and not (repo / "other").exists()


async def test_the_visual_fix_loop_snapshots_never_hash_secret_files(tmp_path: Path) -> None:
    """`kcode fix` snapshots every iteration into git objects; an untracked .env or key must not
    end up there (a sandboxed `git cat-file` could read it back), and the run's own .kcode dir
    stays out of the snapshot."""
    from kcode.visual.checkpoint import open_checkpoints

    repo = make_repo(tmp_path / "r", {"index.html": "<p>v1</p>\n"})
    (repo / ".env").write_text("TOKEN=visual-secret-value\n")
    (repo / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (repo / ".kcode" / "runs").mkdir(parents=True)
    (repo / ".kcode" / "runs" / "shot.txt").write_text("run output\n")
    checkpoints = await open_checkpoints(repo, repo / ".kcode" / "runs", "run1")
    await checkpoints.snapshot(0)
    (repo / "index.html").write_text("<p>v2</p>\n")
    await checkpoints.snapshot(1)
    assert "index.html" in await checkpoints.diff(0, 1)
    assert await checkpoints.restore(0) == ["index.html"]
    assert (repo / "index.html").read_text() == "<p>v1</p>\n"
    assert (repo / ".env").is_file() and (repo / "id_rsa").is_file()
    dump = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True
    ).stdout
    assert b"visual-secret-value" not in dump and b"OPENSSH PRIVATE KEY" not in dump
    assert b"run output" not in dump


def test_throwaway_indexes_a_killed_run_left_in_git_are_swept(tmp_path: Path) -> None:
    """A kill -9 in the middle of a snapshot leaves .git/kcode-index-*; the next run removes the
    old ones and leaves a fresh one (another kcode may be snapshotting right now) alone."""
    import os
    import time

    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n"})
    old, fresh = repo / ".git" / "kcode-index-old", repo / ".git" / "kcode-index-fresh"
    old.write_bytes(b"DIRC")
    fresh.write_bytes(b"DIRC")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    GitCheckpoints(repo, "sweep")
    assert not old.exists() and fresh.exists()


async def test_an_edit_in_the_same_second_as_the_index_is_still_snapshotted(tmp_path: Path) -> None:
    """Same size, same mtime as the index entry: only git's "racily clean" check (a file not older
    than the index is re-read) sees the edit, and it works only if the throwaway index keeps the
    real index's mtime. A plain copy looked newer, and the edit was missed (1 run in 30)."""
    import os

    from kcode.visual.checkpoint import open_checkpoints

    repo = make_repo(tmp_path / "r", {"index.html": "<p>v1</p>\n"})
    page, real_index = repo / "index.html", repo / ".git" / "index"
    # Seconds in the past: a throwaway index that does not keep this mtime looks newer than it.
    stamp = real_index.stat().st_mtime_ns - 10_000_000_000
    os.utime(page, ns=(stamp, stamp))
    git(repo, "update-index", "--refresh")  # the entry now records that mtime
    os.utime(real_index, ns=(stamp, stamp))
    before = GitCheckpoints(repo, "racy").snapshot_tree()
    visual = await open_checkpoints(repo, repo / ".kcode" / "runs", "racy")
    await visual.snapshot(0)
    page.write_text("<p>v2</p>\n")  # the same size...
    os.utime(page, ns=(stamp, stamp))  # ...and the same mtime as before
    assert GitCheckpoints(repo, "racy").snapshot_tree() != before
    await visual.snapshot(1)
    assert "v2" in await visual.diff(0, 1)
