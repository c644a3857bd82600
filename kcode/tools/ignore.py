"""Which files a search sees: .gitignore rules at every level, hidden files, binaries, globs.

The rules follow ripgrep's defaults as kcode runs it (see search_backend.RG_BASE_ARGS), so the
pure-Python fallback and ripgrep visit the same files: .gitignore files in the searched tree and in
every directory above it apply (inside or outside a git repo); files and directories whose name
starts with "." are skipped, and so is .git; symlinks are not followed; a path named explicitly is
always searched.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pathspec import GitIgnoreSpec

BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class IgnoreFile:
    base: str  # the directory holding the .gitignore, absolute, no trailing slash
    rules: tuple[tuple[re.Pattern[str], bool], ...]  # (pattern, True = ignore / False = re-include)

    def verdict(self, rel: str) -> bool | None:
        """The last rule matching `rel` itself (dirs end in "/"); None when none does.

        Like ripgrep, a rule matches a path only by itself, not by naming one of its parent
        directories: the walk never enters an ignored directory anyway, and a directory the user
        names explicitly (even inside an ignored one) is searched.
        """
        for regex, ignore in reversed(self.rules):
            m = regex.match(rel)
            if m is not None and m.end() == len(rel):
                return ignore
        return None


MAX_IGNORE_BYTES = 4 * 1024 * 1024


def load_ignore_file(directory: str, dir_fd: int | None = None) -> IgnoreFile | None:
    # A hostile repo may plant a FIFO (or a symlink to one) named .gitignore: open without
    # blocking or following, and read only a regular file, with a cap. With `dir_fd` the file is
    # opened relative to that (pinned) directory, and `directory` only names it.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if dir_fd is None:
            fd = os.open(os.path.join(directory, ".gitignore"), flags)
        else:
            fd = os.open(".gitignore", flags, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, MAX_IGNORE_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    lines = data.decode("utf-8", "replace").splitlines()
    spec = GitIgnoreSpec.from_lines(lines)
    rules = tuple(
        (p.regex, bool(p.include))
        for p in spec.patterns
        if p.include is not None and p.regex is not None
    )
    return IgnoreFile(directory.rstrip("/") or "/", rules) if rules else None


def ancestor_ignore_files(directory: Path) -> list[IgnoreFile]:
    """The .gitignore files of every directory above `directory`, outermost first."""
    found = []
    for parent in reversed(directory.parents):
        ignore = load_ignore_file(str(parent))
        if ignore is not None:
            found.append(ignore)
    return found


def is_ignored(path: str, is_dir: bool, stack: list[IgnoreFile]) -> bool:
    """Deeper .gitignore files win; within one file the last matching pattern wins."""
    for ignore in reversed(stack):
        base = ignore.base if ignore.base != "/" else ""
        rel = path[len(base) + 1 :]
        verdict = ignore.verdict(rel + "/" if is_dir else rel)
        if verdict is not None:
            return verdict
    return False


def walk_files(top: Path, roots: tuple[Path, ...] | None = None) -> Iterator[Path]:
    """Every searchable file under `top` (or `top` itself when it is a file), in no fixed order."""
    for path, _ in walk_file_stats(top, roots):
        yield path


def walk_file_stats(
    top: Path, roots: tuple[Path, ...] | None = None
) -> Iterator[tuple[Path, os.stat_result]]:
    """(path, lstat) of every searchable file under `top`.

    The walk holds a descriptor of each directory and opens the next one relative to it with
    O_NOFOLLOW (kcode.tools.confine), so a directory swapped for a symlink mid-walk is skipped
    instead of followed out of the workspace; `top` itself is reached from the allowed `roots`
    (default: `top`) the same way."""
    from kcode.tools.confine import open_dir

    if top.is_file():
        with contextlib.suppress(OSError):
            yield top, top.stat(follow_symlinks=False)
        return
    stack = ancestor_ignore_files(top)
    try:
        fd = open_dir(top, roots or (top,))
    except (OSError, ValueError):
        return
    yield from _walk(str(top), fd, stack, 0)


# Deeper directories are not walked: each level holds a descriptor and a generator frame, and a
# hostile tree 3,000 levels deep ran out of both (RecursionError). Real trees stay far below.
MAX_WALK_DEPTH = 200


def _walk(
    directory: str, fd: int, stack: list[IgnoreFile], depth: int
) -> Iterator[tuple[Path, os.stat_result]]:
    """Walks the directory open as `fd` (and closes it), down to MAX_WALK_DEPTH levels."""
    from kcode.tools.confine import LIST_DIR_FLAGS

    try:
        own = load_ignore_file(directory, fd)
        if own is not None:
            stack = [*stack, own]
        try:
            with os.scandir(fd) as listing:
                entries = list(listing)
        except OSError:
            return
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            path = f"{directory.rstrip('/')}/{entry.name}"
            is_dir = stat.S_ISDIR(st.st_mode)
            if not (is_dir or stat.S_ISREG(st.st_mode)):
                continue  # symlinks, FIFOs, sockets, devices
            if stack and is_ignored(path, is_dir, stack):
                continue
            if is_dir:
                subdirs.append((path, entry.name))
            else:
                yield Path(path), st
        for path, name in subdirs if depth < MAX_WALK_DEPTH else ():
            try:
                sub = os.open(name, LIST_DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # gone, or swapped for a symlink since the listing: not followed
            yield from _walk(path, sub, stack, depth + 1)
    finally:
        os.close(fd)


def looks_binary(head: bytes) -> bool:
    return b"\x00" in head


def path_sort_key(display_path: str) -> tuple[str, ...]:
    """Directory-aware order used by every search output, so ripgrep and the fallback agree."""
    return tuple(display_path.split("/"))


class GlobFilter:
    """A file filter like ripgrep's -g: `*.py` matches names at any depth, `src/**/*.ts` matches
    paths relative to the searched directory, `{a,b}` alternatives, a leading `!` excludes."""

    def __init__(self, glob: str) -> None:
        text = glob.strip()
        self.negated = text.startswith("!")
        if self.negated:
            text = text[1:]
        self.match_basename = "/" not in text.rstrip("/")
        self.glob = text.lstrip("/").removeprefix("./")
        self.regex = compile_glob(self.glob)

    @property
    def rg_type_glob(self) -> str | None:
        """The glob as a ripgrep file type (which narrows by name and keeps ignore rules)."""
        return self.glob if self.match_basename and not self.negated else None

    def accepts(self, relative_path: str) -> bool:
        target = relative_path.rsplit("/", 1)[-1] if self.match_basename else relative_path
        return bool(self.regex.fullmatch(target)) != self.negated


@lru_cache(maxsize=64)
def compile_glob(glob: str) -> re.Pattern[str]:
    return re.compile(_glob_to_regex(glob))


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "{":
            end = glob.find("}", i)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            options = glob[i + 1 : end].split(",")
            out.append("(?:" + "|".join(_glob_to_regex(o) for o in options) + ")")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def special_ignore_file(top: Path, stop: Callable[[], bool] = lambda: False) -> str | None:
    """The first `.gitignore` at or above `top`, or in a directory a search of `top` enters, that is
    not a regular file (a FIFO, a device, a symlink to one): ripgrep opens those blocking and would
    hang. Walks directories only, descriptor-relative like _walk; `stop()` ends it early."""
    from kcode.tools.confine import LIST_DIR_FLAGS

    def special(fd: int | None, directory: str) -> bool:
        name = ".gitignore" if fd is not None else os.path.join(directory, ".gitignore")
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):  # ripgrep follows it
                st = os.stat(name, dir_fd=fd)
        except OSError:
            return False
        return not stat.S_ISREG(st.st_mode)

    for parent in (top, *top.parents):
        if special(None, str(parent)):
            return str(parent / ".gitignore")
    if not top.is_dir():
        return None
    try:
        pending = [
            (str(top), os.open(top, LIST_DIR_FLAGS & ~os.O_NOFOLLOW), ancestor_ignore_files(top))
        ]
    except OSError:
        return None
    try:
        while pending and not stop():
            directory, fd, stack = pending.pop()
            try:
                if special(fd, directory):
                    return f"{directory}/.gitignore"
                own = load_ignore_file(directory, fd)
                stack = [*stack, own] if own is not None else stack
                with os.scandir(fd) as listing:
                    names = [e.name for e in listing if e.is_dir(follow_symlinks=False)]
                for name in names:
                    path = f"{directory.rstrip('/')}/{name}"
                    if name.startswith(".") or (stack and is_ignored(path, True, stack)):
                        continue
                    with contextlib.suppress(OSError):
                        pending.append((path, os.open(name, LIST_DIR_FLAGS, dir_fd=fd), stack))
            except OSError:
                continue
            finally:
                os.close(fd)
    finally:
        for _, fd, _ in pending:
            os.close(fd)
    return None
