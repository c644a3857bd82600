"""Bring one sub-agent's commit back into the real working tree, file by file, with git's 3-way merge.

For every path the agent changed (snapshot → agent commit): base = the snapshot's blob, ours = the file
in the working tree now (it may already hold another agent's merged changes or the user's edits),
theirs = the agent's blob. Trivial cases are decided directly (ours unchanged → take theirs; ours
already equal to theirs → nothing to do); otherwise `git merge-file` merges the texts. On a conflict
the working tree keeps ours untouched (never conflict markers), and the conflicting hunks are reported;
the caller keeps the agent's whole commit on a ref so nothing is lost.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kcode.tools.base import ToolError
from kcode.tools.fileio import atomic_write
from kcode.vcs.gitcmd import run_git
from kcode.vcs.worktrees import Repo

MAX_HUNK_CHARS = 2_000
_ABSENT_SHA = "0" * 40
_SYMLINK, _EXECUTABLE = "120000", "100755"


@dataclass
class FileConflict:
    path: str  # relative to the repository root
    why: str
    hunks: str = ""  # the conflicting regions as git marks them, capped


@dataclass
class MergeOutcome:
    changed: list[str] = field(default_factory=list)  # every path the agent changed
    merged: list[str] = field(default_factory=list)  # changes that landed in the working tree
    conflicts: list[FileConflict] = field(default_factory=list)


@dataclass(frozen=True)
class _Side:
    mode: str
    sha: str

    @property
    def absent(self) -> bool:
        return self.sha == _ABSENT_SHA


def changed_paths_sync(repo: Repo, base: str, commit: str) -> list[tuple[str, _Side, _Side]]:
    raw = run_git(repo.root, "diff-tree", "-r", "-z", "--no-renames", base, commit).stdout
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    out = []
    for i in range(0, len(fields) - 1, 2):
        header, path = fields[i], fields[i + 1]
        if not header.startswith(":"):
            continue
        old_mode, new_mode, old_sha, new_sha, _status = header[1:].split(" ")
        out.append((path, _Side(old_mode, old_sha), _Side(new_mode, new_sha)))
    return out


def _blob(repo: Repo, side: _Side) -> bytes | None:
    if side.absent:
        return None
    return run_git(repo.root, "cat-file", "blob", side.sha).stdout


def _read_ours(path: Path) -> bytes | None:
    if path.is_symlink():
        return os.readlink(path).encode("utf-8", "surrogateescape")
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _write(path: Path, data: bytes | None, mode: str) -> None:
    if data is None:
        if path.is_symlink() or path.is_file():
            path.unlink()
        return
    if mode == _SYMLINK:
        if path.is_symlink() or path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(data.decode("utf-8", "surrogateescape"), path)
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        path.rmdir()  # the agent replaced a directory by a file; its files were deleted first
    new_file = not path.exists()
    executable = mode == _EXECUTABLE
    wanted = None
    if new_file or executable != bool(path.stat().st_mode & 0o100):
        wanted = 0o755 if executable else 0o644
    atomic_write(path, data, wanted)


def _apply_mode_change(path: Path, base: _Side, theirs: _Side) -> None:
    """The agent only flipped the executable bit (content unchanged): flip it here too."""
    if (
        base.absent
        or theirs.absent
        or base.mode == theirs.mode
        or _SYMLINK in (base.mode, theirs.mode)
    ):
        return
    if path.is_file() and not path.is_symlink():
        mode = path.stat().st_mode & 0o7777
        path.chmod(mode | 0o111 if theirs.mode == _EXECUTABLE else mode & ~0o111)


def _merge_texts(ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, int]:
    """git merge-file -p: the merged bytes and the number of conflicts (-1 when git refuses, e.g.
    binary content)."""
    with tempfile.TemporaryDirectory(prefix="kcode-merge-") as tmp:
        files = []
        for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            p = Path(tmp) / name
            p.write_bytes(data)
            files.append(str(p))
        labels = ["-L", "working tree", "-L", "snapshot", "-L", "agent"]
        proc = run_git(Path(tmp), "merge-file", "-p", *labels, *files, ok_codes=range(-256, 256))
    code = proc.returncode
    return proc.stdout, (code if 0 <= code < 128 else -1)


def _conflict_hunks(marked: bytes) -> str:
    out: list[str] = []
    inside = False
    for line in marked.decode("utf-8", "replace").splitlines():
        if line.startswith("<<<<<<< "):
            inside = True
        if inside:
            out.append(line)
        if line.startswith(">>>>>>> "):
            inside = False
    text = "\n".join(out)
    return text if len(text) <= MAX_HUNK_CHARS else text[:MAX_HUNK_CHARS] + "\n[... cut ...]"


def merge_back_sync(
    repo: Repo, base: str, commit: str, before_write: Callable[[Path], None]
) -> MergeOutcome:
    """Merge `commit` (a child of `base`) into the working tree. `before_write` is called with each
    absolute path just before it is written, so the caller can record the original for /undo."""
    outcome = MergeOutcome()
    changes = changed_paths_sync(repo, base, commit)
    # Deletions first: an agent that replaced `d/` by a file `d` needs d's files gone before `d`
    # can be written.
    changes = sorted(changes, key=lambda change: not change[2].absent)
    for rel, base_side, their_side in changes:
        try:
            _merge_one(repo, rel, base_side, their_side, outcome, before_write)
        except (OSError, ToolError) as err:
            # One file that cannot be written is that file's conflict, not the fan-out's end:
            # the agent's commit stays on its ref, and its siblings are merged.
            why = f"the agent's version could not be written here ({err})"
            outcome.conflicts.append(FileConflict(rel, why))
    return outcome


def _merge_one(
    repo: Repo,
    rel: str,
    base_side: _Side,
    their_side: _Side,
    outcome: MergeOutcome,
    before_write: Callable[[Path], None],
) -> None:
    outcome.changed.append(rel)
    target = repo.root / rel
    ours = _read_ours(target)
    base_data, theirs = _blob(repo, base_side), _blob(repo, their_side)
    if ours == theirs:
        _apply_mode_change(target, base_side, their_side)
        outcome.merged.append(rel)  # content already there (the same change made twice)
        return
    if ours == base_data:
        before_write(target)
        _write(target, theirs, their_side.mode)
        outcome.merged.append(rel)
        return
    if base_data is None or theirs is None or ours is None:
        why = (
            "created by the agent, but a different file appeared there meanwhile"
            if base_data is None
            else "deleted by the agent, but changed in the working tree meanwhile"
            if theirs is None
            else "changed by the agent, but deleted from the working tree meanwhile"
        )
        outcome.conflicts.append(FileConflict(rel, why))
        return
    merged, conflicts = _merge_texts(ours, base_data, theirs)
    if conflicts == 0:
        before_write(target)
        _write(target, merged, their_side.mode)
        outcome.merged.append(rel)
    elif conflicts < 0:
        why = "changed both here and by the agent, and git cannot merge it (binary?)"
        outcome.conflicts.append(FileConflict(rel, why))
    else:
        why = f"{conflicts} overlapping change(s); the working tree kept its version"
        outcome.conflicts.append(FileConflict(rel, why, _conflict_hunks(merged)))
