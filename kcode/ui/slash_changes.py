"""/diff and /undo: what changed since the session started, and putting it back.

/diff compares against a snapshot taken when the session started: in a git repo, `git stash create`
(a commit of the working tree that touches neither the index nor the stash list) or HEAD, plus the
set of untracked files at that moment; outside git, the originals the tools recorded before writing.
"""

from __future__ import annotations

import asyncio
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from kcode.safety.terminal_text import visible
from kcode.ui.render import diff_text

if TYPE_CHECKING:
    from kcode.ui.repl_api import ReplApi


def _git(root: Path, *args: str) -> str | None:
    from kcode.vcs.gitcmd import GitError, run_git

    try:
        done = run_git(root, *args, ok_codes=range(-256, 256), timeout=20)
    except GitError:
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


@dataclass
class StartSnapshot:
    commit: str | None = None
    untracked: set[str] = field(default_factory=set)

    @classmethod
    def take(cls, root: Path) -> StartSnapshot:
        if _git(root, "rev-parse", "--is-inside-work-tree") is None:
            return cls()
        commit = (_git(root, "stash", "create") or "").strip() or (
            _git(root, "rev-parse", "--verify", "-q", "HEAD") or ""
        ).strip()
        untracked = _git(root, "ls-files", "--others", "--exclude-standard") or ""
        return cls(commit or None, set(untracked.splitlines()))

    def diff(self, root: Path, originals: dict[Path, bytes | None]) -> str:
        if self.commit is None:
            return originals_diff(root, originals)
        tracked = _git(root, "diff", "--no-color", self.commit, "--") or ""
        now_untracked = set(
            (_git(root, "ls-files", "--others", "--exclude-standard") or "").splitlines()
        )
        added = [
            _file_diff(rel, b"", (root / rel).read_bytes())
            for rel in sorted(now_untracked - self.untracked)
            if (root / rel).is_file()
        ]
        return tracked + "".join(added)


def _file_diff(rel: str, before: bytes, after: bytes) -> str:
    old = before.decode("utf-8", errors="replace").splitlines(keepends=True)
    new = after.decode("utf-8", errors="replace").splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, f"a/{rel}", f"b/{rel}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def originals_diff(root: Path, originals: dict[Path, bytes | None]) -> str:
    out = []
    for path, before in sorted(originals.items()):
        try:
            after = path.read_bytes()
        except OSError:
            after = b""
        if after != (before or b""):
            rel = os.path.relpath(path, root)
            out.append(_file_diff(rel, before or b"", after))
    return "".join(out)


def undo_tool_writes(originals: dict[Path, bytes | None], modes: dict[Path, int]) -> list[str]:
    """Put back what the tools overwrote and delete what they created. Returns what changed."""
    restored = []
    for path, before in originals.items():
        try:
            if before is None:
                if path.exists():
                    path.unlink()
                    restored.append(f"deleted {path}")
                continue
            if path.exists() and path.read_bytes() == before:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(before)
            if path in modes:
                os.chmod(path, modes[path] & 0o7777)
            restored.append(f"restored {path}")
        except OSError as err:
            restored.append(f"could not restore {path}: {err}")
    originals.clear()
    modes.clear()
    return restored


async def cmd_diff(repl: ReplApi, arg: str) -> None:
    runtime = await repl.ensure_runtime()
    if runtime is None:
        return
    snapshot = repl.snapshot or StartSnapshot()
    diff = await asyncio.to_thread(snapshot.diff, repl.root, runtime.ctx.changes.originals)
    if not diff.strip():
        repl.console.print("No changes since the session started.")
        return
    repl.console.print(diff_text(diff))


async def cmd_undo(repl: ReplApi, arg: str) -> None:
    """`/undo [N]`: put back what the last N turns changed (checkpoints include shell changes)."""
    runtime = await repl.ensure_runtime()
    if runtime is None:
        return
    turns = arg.strip() or "1"
    if not turns.isdigit() or int(turns) < 1:
        repl.console.print(
            Text(visible(f"/undo takes a number of turns (1 or more), not {turns!r}"))
        )
        return
    checkpoints = runtime.ctx.checkpoints
    if checkpoints is None:  # no checkpointer: restore what the file tools recorded
        changes = runtime.ctx.changes
        if not changes.originals:
            repl.console.print("Nothing to undo: the tools have not written any file.")
            return
        for line in undo_tool_writes(changes.originals, changes.modes):
            repl.console.print(Text(visible(line)))
        return
    from kcode.vcs.checkpoints import CheckpointError

    try:
        report = await asyncio.to_thread(checkpoints.undo, int(turns))
    except CheckpointError as err:
        repl.console.print(Text(visible(str(err))))
        return
    for line in report.lines():
        repl.console.print(Text(visible(line)))
