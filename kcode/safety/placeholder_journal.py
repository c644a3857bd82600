"""Placeholders for missing control dirs that outlive a killed kcode are removed by the next one.

kcode.safety.sandbox covers a missing `.kcode`, `.git`, `.mcp.json`, ... in the workspace with an empty
read-only mount, whose mount point bwrap creates on the real file system; kcode removes it when the
command ends. A kcode killed (kill -9, a crash, a closed laptop) while the command runs cannot, and
an empty `.git` or `.mcp.json` left in the user's tree changes what git and kcode see next time.

So each process notes the mount points it is about to have created in a journal of its own
(`<data dir>/placeholders/<pid>-<start time>`), before the command starts, and rewrites it as they are
removed. The first sandboxed command of a later kcode sweeps the journals of processes that are gone:
a noted path that is still an empty dir (or an empty file) is removed — never one that has content,
and never one that a live kcode's journal also names (it may be in use right now).
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

from kcode.config.loader import data_dir


def journal_dir() -> Path:
    return data_dir() / "placeholders"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (pid + this names one process)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so count from its closing paren.
    fields = stat_line[stat_line.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


@functools.cache
def _own_journal() -> Path:
    return journal_dir() / f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def record(paths: Iterable[str]) -> None:
    """Write the journal of this process: exactly `paths` (none: no journal)."""
    wanted = sorted(set(paths))
    journal = _own_journal()
    with contextlib.suppress(OSError):  # a journal we cannot write only loses the clean-up
        if not wanted:
            journal.unlink(missing_ok=True)
            return
        journal.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = journal.with_name(f"{journal.name}.{threading.get_ident()}.tmp")  # per thread
        tmp.write_text("".join(f"{p}\n" for p in wanted), encoding="utf-8")
        os.replace(tmp, journal)


def _alive(journal: Path) -> bool:
    pid, _, started = journal.name.partition("-")
    if not pid.isdigit():
        return True  # not ours to judge
    return _start_time(int(pid)) == started


def remove_if_placeholder(path: str) -> bool:
    """Remove `path` if it is still what a placeholder leaves: an empty dir or an empty file."""
    try:
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(path)  # fails when not empty
        elif stat.S_ISREG(info.st_mode) and info.st_size == 0:
            os.unlink(path)
        else:
            return False
    except OSError:
        return False
    return True


def sweep() -> list[str]:
    """Remove the placeholders of kcode processes that are gone; the paths removed."""
    directory = journal_dir()
    try:
        journals = [p for p in directory.iterdir() if not p.name.endswith(".tmp")]
    except OSError:
        return []
    live: set[str] = set()
    dead: dict[Path, list[str]] = {}
    for journal in journals:
        try:
            paths = journal.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        if journal == _own_journal() or _alive(journal):
            live.update(paths)
        else:
            dead[journal] = paths
    removed = []
    for journal, paths in dead.items():
        for path in paths:
            if path and path not in live and remove_if_placeholder(path):
                removed.append(path)
        with contextlib.suppress(OSError):
            journal.unlink()
    return removed


@functools.cache
def sweep_once() -> None:
    sweep()
