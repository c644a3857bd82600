"""Per-turn checkpoints of the working tree, and undo.

In a git repository every turn starts by snapshotting the whole working tree (tracked and untracked
files, .gitignore honoured) into a hidden ref `refs/kcode/checkpoints/<session>/<n>`. The snapshot is
built in a temporary index (GIT_INDEX_FILE) with write-tree + commit-tree, so the user's index, branch
and stash are never touched, and it works before the first commit. Undo compares a checkpoint with the
tree as it is now, so it also reverts what `shell` and `run_tests` did.

Outside git, `BackupCheckpoints` keeps per-turn copies of the files the tools wrote (shell changes
cannot be undone there, and undo says so).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcode.safety.json_input import loads_json
from kcode.tools.base import FileChanges
from kcode.tools.fileio import atomic_write
from kcode.vcs.gitcmd import IDENTITY, Git, GitError, git_text, holds, stage_all_but_secrets

if TYPE_CHECKING:
    from kcode.vcs.backup_checkpoints import BackupCheckpoints

REF_PREFIX = "refs/kcode/checkpoints"
KEEP_PER_SESSION = 50
INDEX_PREFIX = "kcode-index-"  # snapshot_tree's throwaway index files in .git


class CheckpointError(Exception):
    """Undo cannot proceed; nothing was changed. The message says why and what to do."""


@dataclass
class UndoReport:
    restored: list[str] = field(default_factory=list)  # modified or deleted files put back
    removed: list[str] = field(default_factory=list)  # files created since, deleted again
    turns: int = 0
    warnings: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # files that could not be put back, and why

    def lines(self) -> list[str]:
        out = [f"restored {p}" for p in self.restored] + [f"removed {p}" for p in self.removed]
        out += [f"could not put back {why}" for why in self.failed]
        if not out:
            out.append(f"nothing to undo: the last {self.turns} turn(s) changed no files")
        return [*self.warnings, *out]


def git_toplevel(path: Path) -> Path | None:
    try:
        top = git_text(path, "rev-parse", "--show-toplevel")
    except (GitError, OSError):
        return None
    return Path(top) if top and holds(top, path) else None


class GitCheckpoints:
    """Snapshots into hidden refs; a manifest in the git dir remembers which refs undo expects."""

    def __init__(self, root: Path, session_id: str, *, auto_commit: bool = False) -> None:
        top = git_toplevel(root)
        if top is None:
            raise CheckpointError(f"{root} is not inside a git repository")
        self.top = top
        self.git = Git(top, fail_as=CheckpointError)
        self.root = Path(os.path.realpath(root))
        self.session_id = session_id
        self.auto_commit = auto_commit
        self.git_dir = Path(self.git.text("rev-parse", "--absolute-git-dir"))
        self.manifest = self.git_dir / "kcode" / "checkpoints" / f"{session_id}.jsonl"
        self._turn_prompt = ""
        sweep_stale_indexes(self.git_dir)

    # ----- snapshots -------------------------------------------------------------------------

    def snapshot_tree(self) -> str:
        """The working tree as a git tree id, built in a throwaway index."""
        fd, index = tempfile.mkstemp(prefix=INDEX_PREFIX, dir=self.git_dir)
        os.close(fd)
        try:
            real_index = self.git_dir / "index"
            if real_index.is_file():
                # A copy keeps git's stat cache, so unchanged files are not hashed again. copy2
                # keeps the index's mtime too: git re-reads a file changed in the same second as
                # the index was written ("racily clean") only if the index does not look newer.
                shutil.copy2(real_index, index)
            else:
                os.unlink(index)
            env = {"GIT_INDEX_FILE": index}
            try:
                stage_all_but_secrets(self.root, env)
            except GitError as err:
                raise CheckpointError(str(err)) from None
            return self.git.text("write-tree", env=env)
        finally:
            for leftover in (index, index + ".lock"):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def entries(self) -> list[dict[str, Any]]:
        if not self.manifest.is_file():
            return []
        out = []
        for line in self.manifest.read_text(encoding="utf-8").splitlines():
            try:
                out.append(loads_json(line))
            except ValueError:
                continue  # a line torn by a kill; the refs are still there
        return out

    def _write_manifest(self, entries: list[dict[str, Any]]) -> None:
        self.manifest.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(e) + "\n" for e in entries)
        atomic_write(self.manifest, text.encode("utf-8"))

    def snapshot(self, prompt: str = "") -> str:
        """Record the tree as it is before a turn; returns the ref name."""
        entries = self.entries()
        number = (entries[-1]["n"] + 1) if entries else 1
        ref = f"{REF_PREFIX}/{self.session_id}/{number}"
        tree = self.snapshot_tree()
        message = f"kcode checkpoint {number} of session {self.session_id}\n\n{prompt[:500]}"
        commit = self.git.text("commit-tree", tree, "-m", message, env=IDENTITY)
        self.git.run("update-ref", ref, commit)
        entries.append({"n": number, "ref": ref, "prompt": prompt[:200], "time": time.time()})
        self._write_manifest(self._prune(entries))
        return ref

    def record_after(self) -> None:
        """Record the tree as the last turn left it (`<ref>-after`): undo then puts back only
        what the turn changed, not files the user created or edited after it."""
        entries = self.entries()
        if not entries or entries[-1].get("after"):
            return
        last = entries[-1]
        tree = self.snapshot_tree()
        message = f"kcode checkpoint {last['n']} of session {self.session_id}: after the turn"
        parent = str(last["ref"])
        commit = self.git.text("commit-tree", tree, "-p", parent, "-m", message, env=IDENTITY)
        after = f"{parent}-after"
        self.git.run("update-ref", after, commit)
        last["after"] = after
        self._write_manifest(entries)

    def _drop_refs(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            for ref in (entry.get("ref"), entry.get("after")):
                if ref:
                    try:
                        self.git.run("update-ref", "-d", str(ref))
                    except CheckpointError:
                        pass  # already gone

    def _prune(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(entries) <= KEEP_PER_SESSION:
            return entries
        self._drop_refs(entries[:-KEEP_PER_SESSION])
        return entries[-KEEP_PER_SESSION:]

    async def before_turn(self, prompt: str = "") -> None:
        self._turn_prompt = prompt
        await asyncio.to_thread(self.snapshot, prompt)

    async def after_turn(self) -> None:
        await asyncio.to_thread(self.record_after)
        if self.auto_commit:
            await asyncio.to_thread(self.commit_turn)

    # ----- undo ------------------------------------------------------------------------------

    def changed_since(self, ref: str) -> list[tuple[str, str]]:
        """(status, path) pairs between a checkpoint and the working tree now; A = created since."""
        return self._diff(f"{ref}^{{tree}}", self.snapshot_tree())

    def _diff(self, old: str, new: str) -> list[tuple[str, str]]:
        """(status, path) pairs between two trees, within the workspace; A = created in `new`."""
        if old == new:
            return []
        out = self.git.run("diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new)
        fields = out.stdout.decode("utf-8", "surrogateescape").split("\0")
        pairs = [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]
        rel = self.root.relative_to(self.top).as_posix() if self.root != self.top else ""
        return [(s, p) for s, p in pairs if not rel or p == rel or p.startswith(rel + "/")]

    def _checked_ref(self, entry: dict[str, Any]) -> str:
        ref = str(entry["ref"])
        try:
            self.git.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        except CheckpointError:
            raise CheckpointError(
                f"the checkpoint ref {ref} is missing (deleted by hand?), so this turn cannot "
                f"be undone; nothing was changed. Remaining checkpoints: "
                f"`git for-each-ref {REF_PREFIX}/{self.session_id}`."
            ) from None
        return ref

    def undo(self, turns: int = 1) -> UndoReport:
        """Put back the files the last `turns` turns changed, as they were before the first of
        them. Only those files: a file the user created or edited after the turns is left alone,
        and a file the turns changed that the user edited since stops the undo before anything
        is written (it would lose that edit)."""
        if turns < 1:
            raise CheckpointError(f"cannot undo {turns} turns; give a number of turns >= 1")
        entries = self.entries()
        if not entries:
            raise CheckpointError("nothing to undo: no checkpoints recorded for this session")
        if turns > len(entries):
            raise CheckpointError(
                f"only {len(entries)} turn(s) can be undone in session {self.session_id}; "
                f"nothing was changed"
            )
        first = len(entries) - turns
        for entry in entries[first:]:
            self._checked_ref(entry)
        target = f"{entries[first]['ref']}^{{tree}}"
        now = self.snapshot_tree()
        touched: dict[str, None] = {}  # the turns' paths, in order, once each
        for i in range(first, len(entries)):
            before = f"{entries[i]['ref']}^{{tree}}"
            for _, path in self._diff(before, self._after_tree(entries, i, now)):
                touched[path] = None
        end = self._after_tree(entries, len(entries) - 1, now)
        edited_since = {p for _, p in self._diff(end, now)} & {
            p for _, p in self._diff(target, now)
        }
        conflicts = [self._show(self.top / p) for p in touched if p in edited_since]
        if conflicts:
            raise CheckpointError(
                f"undo would overwrite changes made after kcode's turn(s) to {', '.join(conflicts[:10])}"
                f"{' …' if len(conflicts) > 10 else ''}; nothing was changed. Commit, stash or move "
                "those changes away (or put the files back as kcode left them), then undo again."
            )
        report = UndoReport(turns=turns)
        for path in touched:
            absolute = self.top / path
            try:
                if self._restore(target, path, absolute):
                    report.restored.append(self._show(absolute))
                else:
                    report.removed.append(self._show(absolute))
            except OSError as err:
                report.failed.append(f"{self._show(absolute)}: {err.strerror or err}")
        if report.failed:
            report.warnings.append("the checkpoints are kept: fix what is below and undo again")
            return report
        self._drop_refs(entries[first:])
        self._write_manifest(entries[:first])
        return report

    def _after_tree(self, entries: list[dict[str, Any]], i: int, now: str) -> str:
        """The tree as turn `i` left it: its `-after` ref; for a turn that ended without one (a
        kill, a crash), the next turn's checkpoint, or, for the last turn, the tree now."""
        after = entries[i].get("after")
        if after:
            return f"{after}^{{tree}}"
        if i + 1 < len(entries):
            return f"{entries[i + 1]['ref']}^{{tree}}"
        return now

    def _show(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _restore(self, tree: str, path: str, absolute: Path) -> bool:
        """Put `path` back as it is in `tree`; False when it was not there (it is removed)."""
        listing = self.git.run("ls-tree", "-z", tree, "--", path)
        entry = listing.stdout.decode("utf-8", "surrogateescape").rstrip("\0")
        if not entry:
            if absolute.exists() or absolute.is_symlink():
                remove_path(absolute)
            return False
        meta, _, _ = entry.partition("\t")
        mode, kind, blob = meta.split(" ")
        if kind != "blob":
            # A directory in `tree` (its files are restored one by one): what the turn put in
            # its place, a symlink or a file, goes.
            if absolute.is_symlink() or absolute.is_file():
                remove_path(absolute)
                return False
            return True
        data = self.git.run("cat-file", "blob", blob).stdout
        if absolute.is_dir() and not absolute.is_symlink():
            shutil.rmtree(absolute)
        if mode == "120000":
            remove_path(absolute)
            absolute.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(data, absolute)
            return True
        if absolute.is_symlink():
            absolute.unlink()
        atomic_write(absolute, data, 0o755 if mode == "100755" else 0o644)
        return True

    # ----- auto-commit -----------------------------------------------------------------------

    def commit_turn(self) -> str | None:
        """One commit on the current branch with what the last turn changed (--auto-commit)."""
        entries = self.entries()
        if not entries:
            return None
        ref = self._checked_ref(entries[-1])
        paths = [p for _, p in self.changed_since(ref)]
        if not paths:
            return None
        prompt = (self._turn_prompt or entries[-1].get("prompt", "")).strip().splitlines()
        title = (prompt[0] if prompt else "changes")[:60]
        body = "\n".join(f"- {p}" for p in paths[:50])
        message = f"kcode: {title}\n\nFiles changed by kcode in this turn:\n{body}\n"
        commit = ("commit", "-q", "--no-verify", "-m", message, "--only", "--", *paths)
        self.git.run("add", "-A", "--", *paths)
        self.git.run(*commit, env=IDENTITY)
        return self.git.text("rev-parse", "HEAD")


def remove_path(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    parent = path.parent
    # Directories a turn created and that are now empty go too, as git does not track them.
    while parent.is_dir() and not parent.is_symlink() and not any(parent.iterdir()):
        if (parent / ".git").exists():
            break
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def create_checkpoints(
    root: Path, session_id: str, changes: FileChanges, *, auto_commit: bool = False
) -> GitCheckpoints | BackupCheckpoints:
    from kcode.vcs.backup_checkpoints import BackupCheckpoints

    if git_toplevel(root) is not None:
        try:
            return GitCheckpoints(root, session_id, auto_commit=auto_commit)
        except CheckpointError:
            pass
    return BackupCheckpoints(changes)


def latest_session_checkpoints(root: Path) -> GitCheckpoints:
    """The checkpoints of the most recent session in this repository (for `kcode undo`)."""
    top = git_toplevel(root)
    if top is None:
        raise CheckpointError(
            f"{root} is not a git repository: `kcode undo` needs git checkpoints. Outside git, "
            "use /undo inside the session that made the changes."
        )
    git_dir = Path(Git(top, fail_as=CheckpointError).text("rev-parse", "--absolute-git-dir"))
    manifests = sorted(
        (git_dir / "kcode" / "checkpoints").glob("*.jsonl"), key=lambda p: p.stat().st_mtime
    )
    for manifest in reversed(manifests):
        checkpoints = GitCheckpoints(root, manifest.stem)
        if checkpoints.entries():
            return checkpoints
    raise CheckpointError(f"nothing to undo: kcode has recorded no checkpoints in {top}")


STALE_INDEX_S = 3600.0  # far longer than any snapshot takes: a younger one may be another run's


def sweep_stale_indexes(git_dir: Path) -> None:
    """Remove the throwaway indexes (`snapshot_tree`) that a killed kcode left in .git."""
    cutoff = time.time() - STALE_INDEX_S
    try:
        entries = list(os.scandir(git_dir))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(INDEX_PREFIX) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            pass  # gone already, or not ours to remove: harmless either way
