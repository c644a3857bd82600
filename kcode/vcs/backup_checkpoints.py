"""Undo outside git: per-turn copies of the files kcode's tools wrote (kcode.vcs.checkpoints has
the git snapshots used everywhere else)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kcode.tools.base import FileChanges
from kcode.tools.fileio import atomic_write
from kcode.vcs.checkpoints import KEEP_PER_SESSION, CheckpointError, UndoReport, remove_path


class BackupCheckpoints:
    """Outside git: per-turn copies of the files the tools wrote, kept in memory for /undo."""

    SHELL_WARNING = (
        "warning: this workspace is not a git repository, so only files written by kcode's file "
        "tools can be undone; changes made by shell or run_tests commands cannot."
    )

    def __init__(self, changes: FileChanges) -> None:
        self.changes = changes
        self.turns: list[tuple[set[Path], dict[Path, bytes | None]]] = []

    async def before_turn(self, prompt: str = "") -> None:
        await asyncio.to_thread(self._snapshot)

    async def after_turn(self) -> None:
        return None

    def _snapshot(self) -> None:
        known = set(self.changes.originals)
        contents: dict[Path, bytes | None] = {}
        for path in known:
            try:
                contents[path] = path.read_bytes()
            except OSError:
                contents[path] = None
        self.turns.append((known, contents))
        del self.turns[:-KEEP_PER_SESSION]

    def undo(self, turns: int = 1) -> UndoReport:
        if turns < 1 or turns > len(self.turns):
            raise CheckpointError(
                f"cannot undo {turns} turn(s); {len(self.turns)} can be undone here"
            )
        known, contents = self.turns[-turns]
        wanted = dict(contents)
        for path, original in self.changes.originals.items():
            if path not in known:
                wanted[path] = original  # first written after that turn began
        report = UndoReport(turns=turns, warnings=[self.SHELL_WARNING])
        for path, before in sorted(wanted.items()):
            try:
                now: bytes | None = path.read_bytes()
            except OSError:
                now = None
            if now == before:
                continue
            shown = path.as_posix()
            if before is None:
                remove_path(path)
                report.removed.append(shown)
            else:
                atomic_write(path, before, self.changes.modes.get(path, 0o644) & 0o7777)
                report.restored.append(shown)
        del self.turns[-turns:]
        return report
