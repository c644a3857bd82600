"""Snapshots, worktrees and the three-way merge back, on real git repositories."""

from __future__ import annotations

from pathlib import Path

from kcode.vcs import worktrees as wt
from kcode.vcs.merge import merge_back_sync
from tests.agents.helpers import git, make_repo, worktree_paths

TWO_FUNCS = "def alpha():\n    return 1\n\n\n\n\ndef beta():\n    return 2\n"


def _agent_edit(repo: wt.Repo, base: str, edits: dict[str, str | None]) -> tuple[wt.Worktree, str]:
    tree = wt.add_worktree_sync(repo, base)
    for name, text in edits.items():
        target = tree.path / name
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    return tree, wt.commit_worktree_sync(tree, "agent")


def test_snapshot_holds_uncommitted_and_untracked_files_and_leaves_the_user_state_alone(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "r", {"a.py": "one\n", ".gitignore": "*.log\n"})
    (root / "a.py").write_text("one changed\n")
    git(root, "add", "a.py")  # staged
    (root / "a.py").write_text("one changed twice\n")  # and unstaged on top
    (root / "new.py").write_text("untracked\n")
    (root / "debug.log").write_text("ignored\n")
    status_before = git(root, "status", "--porcelain")
    staged_before = git(root, "diff", "--cached")
    branches_before = git(root, "branch", "-a")

    repo = wt.find_repo_sync(root)
    assert repo is not None
    snap = wt.snapshot_sync(repo)

    assert git(root, "show", f"{snap}:a.py") == "one changed twice\n"
    assert git(root, "show", f"{snap}:new.py") == "untracked\n"
    assert "debug.log" not in git(root, "ls-tree", "--name-only", snap)
    assert git(root, "rev-parse", f"{snap}^") == git(root, "rev-parse", "HEAD")
    assert git(root, "status", "--porcelain") == status_before
    assert git(root, "diff", "--cached") == staged_before
    assert git(root, "branch", "-a") == branches_before
    assert git(root, "stash", "list") == ""


def test_a_repository_without_commits_can_be_snapshotted(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"a.py": "x\n"}, commit=False)
    repo = wt.find_repo_sync(root)
    assert repo is not None and repo.head is None
    snap = wt.snapshot_sync(repo)
    assert git(root, "show", f"{snap}:a.py") == "x\n"
    assert git(root, "rev-list", "--parents", "-n1", snap).split() == [snap]


def test_outside_git_there_is_no_repo(tmp_path: Path) -> None:
    assert wt.find_repo_sync(tmp_path) is None


def test_edits_to_different_functions_of_one_file_both_land(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"m.py": TWO_FUNCS})
    repo = wt.find_repo_sync(root)
    assert repo is not None
    snap = wt.snapshot_sync(repo)
    first, c1 = _agent_edit(repo, snap, {"m.py": TWO_FUNCS.replace("return 1", "return 10")})
    second, c2 = _agent_edit(repo, snap, {"m.py": TWO_FUNCS.replace("return 2", "return 20")})
    seen: list[Path] = []

    one = merge_back_sync(repo, snap, c1, seen.append)
    two = merge_back_sync(repo, snap, c2, seen.append)

    assert one.merged == ["m.py"] and two.merged == ["m.py"]
    assert not one.conflicts and not two.conflicts
    text = (root / "m.py").read_text()
    assert "return 10" in text and "return 20" in text
    assert seen == [root / "m.py", root / "m.py"]
    for tree in (first, second):
        wt.remove_worktree_sync(repo, tree)
    assert worktree_paths(root) == [str(root)]


def test_overlapping_edits_keep_the_first_and_report_the_second(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"m.py": TWO_FUNCS})
    repo = wt.find_repo_sync(root)
    assert repo is not None
    snap = wt.snapshot_sync(repo)
    _, c1 = _agent_edit(repo, snap, {"m.py": TWO_FUNCS.replace("return 1", "return 'first'")})
    _, c2 = _agent_edit(repo, snap, {"m.py": TWO_FUNCS.replace("return 1", "return 'second'")})

    merge_back_sync(repo, snap, c1, lambda p: None)
    outcome = merge_back_sync(repo, snap, c2, lambda p: None)

    text = (root / "m.py").read_text()
    assert "return 'first'" in text and "<<<<<<<" not in text
    assert [c.path for c in outcome.conflicts] == ["m.py"]
    assert "return 'second'" in outcome.conflicts[0].hunks
    wt.keep_ref_sync(repo, wt.agent_ref("run", "edit-2"), c2)
    diff = git(root, "diff", snap, "refs/kcode/agents/run/edit-2")
    assert "+    return 'second'" in diff


def test_created_and_deleted_files_come_back(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"old.py": "bye\n", "keep.py": "k\n"})
    (root / "tool.sh").write_text("#!/bin/sh\n")
    repo = wt.find_repo_sync(root)
    assert repo is not None
    snap = wt.snapshot_sync(repo)
    tree = wt.add_worktree_sync(repo, snap)
    (tree.path / "old.py").unlink()
    (tree.path / "pkg").mkdir()
    (tree.path / "pkg" / "new.py").write_text("hello\n")
    (tree.path / "tool.sh").chmod(0o755)
    commit = wt.commit_worktree_sync(tree, "agent")

    outcome = merge_back_sync(repo, snap, commit, lambda p: None)

    assert sorted(outcome.merged) == ["old.py", "pkg/new.py", "tool.sh"]
    assert not (root / "old.py").exists()
    assert (root / "pkg" / "new.py").read_text() == "hello\n"
    assert (root / "tool.sh").stat().st_mode & 0o100
    assert (root / "keep.py").read_text() == "k\n"
    wt.remove_worktree_sync(repo, tree)
    assert not tree.path.exists()


def test_hostile_hooks_and_filters_do_not_run_and_secrets_stay_out(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"a.txt": "a\n", ".gitattributes": "* filter=evil\n"})
    marker = tmp_path / "pwned"
    with (root / ".git" / "config").open("a") as f:
        f.write(
            f'[filter "evil"]\n\tsmudge = "touch {marker}; cat"\n\tclean = "touch {marker}; cat"\n'
        )
        f.write(f'[core]\n\tfsmonitor = "touch {marker}; false"\n')
    for name in ("post-checkout", "reference-transaction", "post-commit"):
        hook = root / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
        hook.chmod(0o755)
    (root / ".env").write_text("TOKEN=worktree-secret-value\n")
    repo = wt.find_repo_sync(root)
    assert repo is not None
    base = wt.snapshot_sync(repo)
    tree, commit = _agent_edit(repo, base, {"a.txt": "b\n"})
    assert not (tree.path / ".env").exists()
    outcome = merge_back_sync(repo, base, commit, lambda _p: None)
    wt.remove_worktree_sync(repo, tree)
    assert outcome.merged == ["a.txt"] and (root / "a.txt").read_text() == "b\n"
    assert not marker.exists()
    assert ".env" not in git(root, "ls-tree", "-r", "--name-only", base)


def test_an_agent_that_replaced_a_directory_by_a_file_merges_and_spares_its_siblings(
    tmp_path: Path,
) -> None:
    """`rm -rf d && echo file > d` in one agent's worktree made the merge raise (`d is a
    directory`), which failed the whole fan-out and dropped every sibling's work. Deletions are
    merged first now, and a path that still cannot be written is that path's conflict."""
    import shutil

    root = make_repo(tmp_path / "r", {"d/x.txt": "x\n", "keep.txt": "k\n"})
    repo = wt.find_repo_sync(root)
    assert repo is not None
    snap = wt.snapshot_sync(repo)
    tree = wt.add_worktree_sync(repo, snap)
    shutil.rmtree(tree.path / "d")
    (tree.path / "d").write_text("now a file\n")
    replaced = wt.commit_worktree_sync(tree, "agent A")
    sibling, c2 = _agent_edit(repo, snap, {"keep.txt": "k\nmore\n", "bnew.txt": "b\n"})

    one = merge_back_sync(repo, snap, replaced, lambda _: None)
    two = merge_back_sync(repo, snap, c2, lambda _: None)

    assert not one.conflicts and (root / "d").read_text() == "now a file\n"
    assert not two.conflicts and (root / "keep.txt").read_text() == "k\nmore\n"
    assert (root / "bnew.txt").read_text() == "b\n"
    # A directory that is not empty (the user's own file in it) cannot become a file: a conflict
    # for that path, and the merge goes on.
    (root / "e").mkdir()
    (root / "e" / "mine.txt").write_text("mine\n")
    third_tree, third = _agent_edit(repo, snap, {"e": "file\n", "other.txt": "o\n"})
    outcome = merge_back_sync(repo, snap, third, lambda _: None)
    assert [c.path for c in outcome.conflicts] == ["e"]
    assert (root / "other.txt").read_text() == "o\n" and (root / "e" / "mine.txt").exists()
    for each in (tree, sibling, third_tree):
        wt.remove_worktree_sync(repo, each)
