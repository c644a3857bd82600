"""Isolated checkouts for edit sub-agents, built without touching the user's index, branches or stash.

A snapshot of the working tree (tracked changes, untracked files, not ignored ones) is written as a
commit through a temporary index (GIT_INDEX_FILE): `git add -A` into the copy, `write-tree`,
`commit-tree` with HEAD as parent when there is one. Each agent then gets
`git worktree add --detach` of that commit in a temp dir outside the repo. Git runs in worker threads
(subprocess.run); operations that create or remove something finish even when the caller is
cancelled, so a Ctrl-C never leaves a half-made worktree or a git process behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kcode.vcs.gitcmd import IDENTITY, git_text, holds, run_git, stage_all_but_secrets
from kcode.vcs.gitcmd import GitError as GitError

T = TypeVar("T")

WORKTREE_PREFIX = "kcode-wt-"
REF_PREFIX = "refs/kcode/agents"


# `git worktree add/remove/prune` running at once in one repository race on .git/worktrees/ (one
# reads another's half-written record: "failed to read .git/worktrees/<x>/commondir"). Serialise them
# per repository; they run in worker threads, hence a threading lock.
_WORKTREE_LOCKS: defaultdict[Path, threading.Lock] = defaultdict(threading.Lock)


async def finish_even_if_cancelled(work: Awaitable[T]) -> T:
    """Await `work`; if the caller is cancelled meanwhile, let it finish first, then re-raise."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue
            except Exception:
                break
        raise


@dataclass(frozen=True)
class Repo:
    root: Path  # top of the working tree
    index: Path  # the user's index file (read, never written)
    head: str | None  # None in a repository without commits yet


def find_repo_sync(path: Path) -> Repo | None:
    """The repository whose working tree holds `path`, or None outside git (or in a bare repo)."""
    try:
        root = git_text(path, "rev-parse", "--show-toplevel")
        index = git_text(path, "rev-parse", "--path-format=absolute", "--git-path", "index")
        head = run_git(path, "rev-parse", "--verify", "-q", "HEAD^{commit}", ok_codes=(0, 1))
    except (GitError, OSError):
        return None
    if not root or not holds(root, path):
        return None
    head_sha = head.stdout.decode("utf-8", "replace").strip()
    return Repo(Path(os.path.realpath(root)), Path(index), head_sha or None)


def commit_tree_state_sync(
    work_tree: Path, parent: str | None, message: str, seed_index: Path | None = None
) -> str:
    """Commit everything in `work_tree` (minus ignored files) through a throwaway index.

    Seeding the temp index with a copy of an existing one lets git reuse its stat data instead of
    hashing every file again; the original is only read.
    """
    with tempfile.TemporaryDirectory(prefix="kcode-index-") as tmp:
        index = Path(tmp) / "index"
        if seed_index is not None and seed_index.is_file():
            shutil.copyfile(seed_index, index)
        env = {"GIT_INDEX_FILE": str(index)}
        stage_all_but_secrets(work_tree, env)
        tree = git_text(work_tree, "write-tree", env=env)
    parents = ["-p", parent] if parent else []
    return git_text(work_tree, "commit-tree", tree, *parents, "-m", message, env=IDENTITY)


def snapshot_sync(repo: Repo) -> str:
    return commit_tree_state_sync(
        repo.root, repo.head, "kcode: snapshot of the working tree", repo.index
    )


@dataclass
class Worktree:
    path: Path  # the checkout, a temp dir outside the repository
    base: str  # the snapshot commit it was made from


def add_worktree_sync(repo: Repo, commit: str) -> Worktree:
    path = Path(tempfile.mkdtemp(prefix=WORKTREE_PREFIX))
    try:
        with _WORKTREE_LOCKS[repo.root]:
            run_git(repo.root, "worktree", "add", "--detach", "--quiet", str(path), commit)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        with _WORKTREE_LOCKS[repo.root]:
            run_git(repo.root, "worktree", "prune", ok_codes=range(256))
        raise
    return Worktree(Path(os.path.realpath(path)), commit)


def remove_worktree_sync(repo: Repo, worktree: Worktree) -> None:
    """Always leaves no checkout and no worktree record behind, whatever state it was in."""
    with _WORKTREE_LOCKS[repo.root]:
        force = ("--force", "--force")  # twice: even a locked worktree goes
        run_git(repo.root, "worktree", "remove", *force, str(worktree.path), ok_codes=range(256))
        shutil.rmtree(worktree.path, ignore_errors=True)
        run_git(repo.root, "worktree", "prune", ok_codes=range(256))


def commit_worktree_sync(worktree: Worktree, message: str) -> str:
    own_index = git_text(
        worktree.path, "rev-parse", "--path-format=absolute", "--git-path", "index"
    )
    return commit_tree_state_sync(worktree.path, worktree.base, message, Path(own_index))


def keep_ref_sync(repo: Repo, ref: str, commit: str) -> None:
    run_git(repo.root, "update-ref", ref, commit)


def agent_ref(run_id: str, agent_id: str) -> str:
    return f"{REF_PREFIX}/{run_id}/{agent_id}"


def list_worktrees_sync(repo: Repo) -> list[Path]:
    out = git_text(repo.root, "worktree", "list", "--porcelain")
    return [
        Path(line[len("worktree ") :]) for line in out.splitlines() if line.startswith("worktree ")
    ]


# --- async faces: git runs in a worker thread; create/remove finish even when cancelled ----------


async def find_repo(path: Path) -> Repo | None:
    return await asyncio.to_thread(find_repo_sync, path)


async def snapshot(repo: Repo) -> str:
    return await finish_even_if_cancelled(asyncio.to_thread(snapshot_sync, repo))


async def add_worktree(repo: Repo, commit: str) -> Worktree:
    task = asyncio.ensure_future(asyncio.to_thread(add_worktree_sync, repo, commit))
    try:
        return await finish_even_if_cancelled(task)
    except asyncio.CancelledError:
        if not task.cancelled() and task.exception() is None:  # made, but nobody will use it
            await finish_even_if_cancelled(
                asyncio.to_thread(remove_worktree_sync, repo, task.result())
            )
        raise


async def remove_worktree(repo: Repo, worktree: Worktree) -> None:
    await finish_even_if_cancelled(asyncio.to_thread(remove_worktree_sync, repo, worktree))


async def commit_worktree(worktree: Worktree, message: str) -> str:
    return await finish_even_if_cancelled(
        asyncio.to_thread(commit_worktree_sync, worktree, message)
    )
