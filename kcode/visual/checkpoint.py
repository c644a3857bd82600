"""Per-iteration snapshots of the workspace, so the fix loop can restore its best iteration.

In a git repository a snapshot is a commit object built through a temporary index (the user's index,
HEAD and branches are never touched) and kept on a hidden ref, refs/kcode/visual/<run>/<iteration>;
restoring writes back only the files that differ from that snapshot. Outside git the workspace's files
are copied (only those that changed since the previous snapshot) under the run directory.
.kcode/ and other tool folders are never snapshotted nor restored.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import shutil
import tempfile
from pathlib import Path

from kcode.vcs.gitcmd import IDENTITY, Git, GitError, stage_all_but_secrets
from kcode.visual.errors import VisualError

EXCLUDED_DIRS = {".git", ".kcode", "node_modules", ".venv", "__pycache__"}
RUN_DIRS = frozenset({b".kcode"})  # the fix loop's own runs and screenshots are not the user's work
MAX_COPY_BYTES = 5_000_000


def _git_in(cwd: Path) -> Git:
    # A git failure is a problem of the run, not bad input (exit 1); pathspecs here use magic
    # (`:(exclude,glob)`) on purpose, hence literal=False.
    return Git(cwd, fail_as=lambda message: VisualError(message, 1), literal=False)


class Checkpoints:
    """snapshot(i) after each iteration; restore(i) to go back; diff(i, j) for the report."""

    async def snapshot(self, iteration: int) -> None:
        raise NotImplementedError

    async def restore(self, iteration: int) -> list[str]:
        raise NotImplementedError

    async def diff(self, before: int, after: int) -> str:
        raise NotImplementedError


async def open_checkpoints(workspace: Path, run_dir: Path, run_id: str) -> Checkpoints:
    try:
        top = await _git_in(workspace).text_async("rev-parse", "--show-toplevel")
    except (VisualError, FileNotFoundError):
        return CopyCheckpoints(workspace, run_dir / "checkpoints")
    return GitIterationCheckpoints(Path(top), workspace, run_id)


class GitIterationCheckpoints(Checkpoints):
    def __init__(self, top: Path, workspace: Path, run_id: str) -> None:
        self.top = top
        self.git = _git_in(top)
        self.scope = workspace.resolve().relative_to(top.resolve()).as_posix() or "."
        self.run_id = run_id
        self.trees: dict[int, str] = {}

    def _ref(self, iteration: int) -> str:
        return f"refs/kcode/visual/{self.run_id}/{iteration}"

    async def _write_tree(self) -> str:
        git_dir = Path(await self.git.text_async("rev-parse", "--absolute-git-dir"))
        with tempfile.TemporaryDirectory() as tmp:
            index = Path(tmp) / "index"
            if (git_dir / "index").exists():
                # A warm stat cache (fast `add`); copy2 keeps the index's mtime, or git would
                # trust the stat of a file edited in the index's second ("racily clean").
                shutil.copy2(git_dir / "index", index)
            env = {"GIT_INDEX_FILE": str(index)}
            # Secret files are never hashed (a sandboxed `git cat-file` could read them back).
            try:
                await asyncio.to_thread(stage_all_but_secrets, self.top, env, RUN_DIRS)
            except GitError as err:
                raise VisualError(str(err)) from err
            return await self.git.text_async("write-tree", env=env)

    async def snapshot(self, iteration: int) -> None:
        tree = await self._write_tree()
        message = f"kcode visual {self.run_id} iteration {iteration}"
        commit = await self.git.text_async("commit-tree", tree, "-m", message, env=IDENTITY)
        await self.git.run_async("update-ref", self._ref(iteration), commit)
        self.trees[iteration] = tree

    async def restore(self, iteration: int) -> list[str]:
        wanted = self.trees[iteration]
        current = await self._write_tree()
        if current == wanted:
            return []
        listing = await self.git.run_async(
            "diff", "--name-status", "--no-renames", "-z", current, wanted
        )
        fields = listing.stdout.decode("utf-8", errors="replace").split("\0")
        changed: list[str] = []
        for status, path in zip(fields[0::2], fields[1::2], strict=False):
            if not path:
                continue
            target = self.top / path
            if status == "D":
                target.unlink(missing_ok=True)
            else:
                blob = (await self.git.run_async("cat-file", "blob", f"{wanted}:{path}")).stdout
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(blob)
            changed.append(path)
        return changed

    async def diff(self, before: int, after: int) -> str:
        if before not in self.trees or after not in self.trees:
            return ""
        diff = await self.git.run_async("diff", "--no-color", self.trees[before], self.trees[after])
        return diff.stdout.decode("utf-8", errors="replace")


def _workspace_files(workspace: Path) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for root, dirs, names in os.walk(workspace):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]
        for name in names:
            path = Path(root) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            if stat.st_size <= MAX_COPY_BYTES:
                found[path.relative_to(workspace).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


class CopyCheckpoints(Checkpoints):
    def __init__(self, workspace: Path, store: Path) -> None:
        self.workspace = workspace.resolve()
        self.store = store
        # iteration -> {relative path: stored copy}
        self.manifests: dict[int, dict[str, Path]] = {}
        self._last_stat: dict[str, tuple[int, int]] = {}
        self._last_manifest: dict[str, Path] = {}

    def _snapshot_sync(self, iteration: int) -> None:
        files = _workspace_files(self.workspace)
        manifest: dict[str, Path] = {}
        for rel, stat in files.items():
            if self._last_stat.get(rel) == stat and rel in self._last_manifest:
                manifest[rel] = self._last_manifest[rel]
                continue
            copy = self.store / str(iteration) / rel
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.workspace / rel, copy)
            manifest[rel] = copy
        self.manifests[iteration] = manifest
        self._last_stat, self._last_manifest = files, manifest

    async def snapshot(self, iteration: int) -> None:
        await asyncio.to_thread(self._snapshot_sync, iteration)

    def _restore_sync(self, iteration: int) -> list[str]:
        manifest = self.manifests[iteration]
        current = _workspace_files(self.workspace)
        changed = []
        for rel in sorted(set(current) - set(manifest)):
            (self.workspace / rel).unlink(missing_ok=True)
            changed.append(rel)
        for rel, copy in manifest.items():
            target = self.workspace / rel
            if target.exists() and target.read_bytes() == copy.read_bytes():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(copy, target)
            changed.append(rel)
        self._last_stat, self._last_manifest = _workspace_files(self.workspace), manifest
        return changed

    async def restore(self, iteration: int) -> list[str]:
        return await asyncio.to_thread(self._restore_sync, iteration)

    async def diff(self, before: int, after: int) -> str:
        old, new = self.manifests.get(before, {}), self.manifests.get(after, {})
        chunks: list[str] = []
        for rel in sorted(set(old) | set(new)):
            if old.get(rel) == new.get(rel):
                continue
            a = _text_lines(old.get(rel))
            b = _text_lines(new.get(rel))
            chunks.extend(difflib.unified_diff(a, b, f"a/{rel}", f"b/{rel}"))
        return "".join(chunks)


def _text_lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
