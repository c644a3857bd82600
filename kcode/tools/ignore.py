"""Which files a search sees: .gitignore rules at every level, hidden files, binaries, globs.

The rules follow ripgrep's defaults as kcode runs it (see search_backend.RG_BASE_ARGS), so the
pure-Python fallback and ripgrep visit the same files: .gitignore files in the searched tree and in
every directory above it apply (inside or outside a git repo); files and directories whose name
starts with "." are skipped, and so is .git; symlinks are not followed; a path named explicitly is
always searched.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
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


def load_ignore_file(directory: str) -> IgnoreFile | None:
    # A hostile repo may plant a FIFO (or a symlink to one) named .gitignore: open without
    # blocking or following, and read only a regular file, with a cap.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(os.path.join(directory, ".gitignore"), flags)
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


def walk_files(top: Path) -> Iterator[Path]:
    """Every searchable file under `top` (or `top` itself when it is a file), in no fixed order."""
    if top.is_file():
        yield top
        return
    stack = ancestor_ignore_files(top)
    yield from _walk(str(top), stack)


def _walk(directory: str, stack: list[IgnoreFile]) -> Iterator[Path]:
    own = load_ignore_file(directory)
    if own is not None:
        stack = [*stack, own]
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    subdirs = []
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        is_dir = entry.is_dir(follow_symlinks=False)
        if stack and is_ignored(entry.path, is_dir, stack):
            continue
        if is_dir:
            subdirs.append(entry.path)
        elif entry.is_file(follow_symlinks=False):
            yield Path(entry.path)
    for sub in subdirs:
        yield from _walk(sub, stack)


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
