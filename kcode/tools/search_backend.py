"""Content search for the grep tool: ripgrep when installed, a pure-Python fallback otherwise.

Both produce the same `SearchOutcome` on the same tree: files in `path_sort_key` order, lines in file
order. ripgrep runs in parallel (unsorted) and its per-file blocks are sorted here, which is far
cheaper than `rg --sort path` (single-threaded). Only the blocks that are shown get parsed line by
line; the rest are only counted.

Regex dialect: ripgrep uses Rust's `regex`; the fallback uses Python's `re` after translating the
common Rust-only spellings (`\\z`, `(?<name>...)`, `[[:alpha:]]`-style classes). Literals, `\\b`,
`\\w`/`\\d`/`\\s`, classes, alternation, anchors and `(?i)` mean the same in both. Look-around and
back-references work only in the fallback (ripgrep reports them as errors).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kcode.tools.base import ToolError
from kcode.tools.confine import read_if_regular
from kcode.tools.ignore import (
    GlobFilter,
    looks_binary,
    path_sort_key,
    special_ignore_file,
    walk_files,
)

OutputMode = Literal["content", "files", "count"]

# Ignore rules identical to the fallback's: .gitignore everywhere (even outside git), nothing else.
RG_BASE_ARGS = (
    "--no-config",
    "--no-require-git",
    "--no-ignore-global",
    "--no-ignore-exclude",
    "--no-ignore-dot",
    "--no-messages",
    "--color=never",
    "--null",
    "--with-filename",
)
MAX_SEARCH_BYTES = 50 * 1024 * 1024  # the fallback skips bigger files (ripgrep streams them)
RG_TIMEOUT_S = 60.0
FALLBACK_ENV = "KCODE_GREP_FALLBACK"  # set to 1 to force the pure-Python search


@dataclass(frozen=True)
class SearchQuery:
    pattern: str
    target: Path  # absolute: a directory or a file
    root: Path  # workspace root; output paths are relative to it when inside
    glob: str | None = None
    ignore_case: bool = False
    context: int = 0
    mode: OutputMode = "content"

    def display(self, path: Path | str) -> str:
        text = str(path)
        root = str(self.root)
        if text == root:
            return "."
        if text.startswith(root + "/"):
            return text[len(root) + 1 :]
        return text


# One line of a file in the output: (line number, is it a match (not context), text).
Line = tuple[int, bool, str]


@dataclass
class FileHits:
    path: str
    match_count: int
    lines: list[Line] | None = None  # content mode only; parsed lazily for ripgrep
    raw: bytes | None = None


@dataclass
class SearchOutcome:
    files: list[FileHits] = field(default_factory=list)
    backend: str = "rg"

    @property
    def total_matches(self) -> int:
        return sum(f.match_count for f in self.files)


def ripgrep_path() -> str | None:
    if os.environ.get(FALLBACK_ENV, "") not in ("", "0"):
        return None
    return shutil.which("rg")


async def search(query: SearchQuery, force_fallback: bool = False) -> SearchOutcome:
    rg = None if force_fallback else ripgrep_path()
    if rg is None:
        return await asyncio.to_thread(search_python, query)
    return await search_ripgrep(rg, query)


# ---------------------------------------------------------------- ripgrep


def ripgrep_argv(rg: str, query: SearchQuery, glob: GlobFilter | None) -> list[str]:
    argv = [rg, *RG_BASE_ARGS]
    if query.ignore_case:
        argv.append("--ignore-case")
    if glob is not None and glob.rg_type_glob is not None:
        # A ripgrep type keeps the .gitignore rules, unlike -g which overrides them.
        argv += ["--type-add", f"kcodeglob:{glob.rg_type_glob}", "--type", "kcodeglob"]
    if query.mode == "files":
        argv.append("--files-with-matches")
    elif query.mode == "count":
        argv.append("--count")
    else:
        argv += ["--heading", "--line-number"]
        if query.context:
            argv.append(f"--context={query.context}")
    target = query.display(query.target)
    return [*argv, "--regexp", query.pattern, "--", target]


async def search_ripgrep(rg: str, query: SearchQuery) -> SearchOutcome:
    glob = GlobFilter(query.glob) if query.glob else None
    proc = await asyncio.create_subprocess_exec(
        *ripgrep_argv(rg, query, glob),
        cwd=query.root,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # ripgrep opens every .gitignore blocking: a FIFO named so would hang it. A directory-only scan
    # for such files runs alongside; if it finds one, ripgrep is stopped and the pure-Python search
    # (which never opens special files blocking) answers instead.
    stopped = False
    scan = asyncio.ensure_future(
        asyncio.to_thread(special_ignore_file, query.target, lambda: stopped)
    )
    # Not awaited when ripgrep answers first: retrieve its outcome so nothing is ever logged.
    scan.add_done_callback(lambda done: done.cancelled() or done.exception())
    talk = asyncio.ensure_future(proc.communicate())
    deadline = asyncio.get_running_loop().time() + RG_TIMEOUT_S
    try:
        await asyncio.wait({scan, talk}, timeout=RG_TIMEOUT_S, return_when="FIRST_COMPLETED")
        if not talk.done() and scan.done() and scan.result() is not None:
            proc.kill()
            await proc.wait()
            return await asyncio.to_thread(search_python, query)
        # Bounded: ripgrep blocks forever on a FIFO it opens that the scan did not see.
        left = max(deadline - asyncio.get_running_loop().time(), 0.001)
        out, err = await asyncio.wait_for(talk, left)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ToolError(
            f"ripgrep did not finish within {RG_TIMEOUT_S:.0f} s (a FIFO or special file in the "
            "tree?); narrow the search with path or glob"
        ) from None
    except asyncio.CancelledError:
        proc.kill()
        raise
    finally:
        stopped = True
    if proc.returncode == 2 and not out:
        message = err.decode("utf-8", errors="replace").strip()
        why = message or "it exited with code 2 without saying why (a tree too deep to walk?)"
        raise ToolError(f"ripgrep could not search: {why}")
    files = _parse_ripgrep(out, query)
    keep = _path_filter(query, glob, from_ripgrep=True)
    if keep is not None:
        files = [f for f in files if keep(f.path)]
    files.sort(key=lambda f: path_sort_key(f.path))
    return SearchOutcome(files, "rg")


_MATCH_LINE = re.compile(rb"^\d+:", re.MULTILINE)


def _parse_ripgrep(out: bytes, query: SearchQuery) -> list[FileHits]:
    files: list[FileHits] = []
    if not out:
        return files
    if query.mode == "files":
        for raw_path in out.split(b"\0"):
            if raw_path.strip():
                files.append(FileHits(_clean_path(raw_path.strip(b"\n")), 1))
        return files
    if query.mode == "count":
        for row in out.splitlines():
            raw_path, _, raw_count = row.partition(b"\0")
            files.append(FileHits(_clean_path(raw_path), int(raw_count)))
        return files
    for block in out.rstrip(b"\n").split(b"\n\n"):
        raw_path, _, body = block.partition(b"\0")
        count = body.count(b"\n") + 1 if not query.context else len(_MATCH_LINE.findall(body))
        files.append(FileHits(_clean_path(raw_path), count, raw=body))
    return files


def _clean_path(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="surrogateescape")
    return text[2:] if text.startswith("./") else text


def ripgrep_lines(body: bytes) -> list[Line]:
    lines: list[Line] = []
    for raw in body.decode("utf-8", errors="replace").split("\n"):
        if raw == "--":
            continue
        digits = 0
        while raw[digits].isdigit():
            digits += 1
        lines.append((int(raw[:digits]), raw[digits] == ":", raw[digits + 1 :]))
    return lines


def _path_filter(
    query: SearchQuery, glob: GlobFilter | None, from_ripgrep: bool
) -> Callable[[str], bool] | None:
    """The glob, applied to paths relative to the searched directory (or a file's own name)."""
    if glob is None:
        return None
    explicit = query.display(query.target)
    prefix = "" if explicit == "." else explicit + "/"

    def keep(display_path: str) -> bool:
        if display_path == explicit:
            return glob.accepts(display_path.rsplit("/", 1)[-1])
        relative = display_path[len(prefix) :] if display_path.startswith(prefix) else display_path
        # A ripgrep type match also lets hidden files through; the hidden rule still applies.
        if from_ripgrep and relative.rsplit("/", 1)[-1].startswith("."):
            return False
        return glob.accepts(relative)

    return keep


# ---------------------------------------------------------------- pure Python


_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": r"\s",
    "word": r"\w",
    "xdigit": "0-9A-Fa-f",
    "punct": r"!-/:-@\[-`{-~",
}


def translate_rust_regex(pattern: str) -> str:
    """Rewrite the Rust-regex spellings Python's `re` lacks into their Python equivalents."""
    pattern = re.sub(r"(?<!\\)((?:\\\\)*)\\z", r"\1\\Z", pattern)
    pattern = re.sub(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", r"(?P<\1>", pattern)
    return re.sub(r"\[:(\w+):\]", lambda m: _POSIX_CLASSES.get(m.group(1), m.group(0)), pattern)


def compile_pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    try:
        return re.compile(translate_rust_regex(pattern), re.IGNORECASE if ignore_case else 0)
    except re.error as err:
        raise ToolError(f"invalid regex {pattern!r}: {err}") from None


def search_python(query: SearchQuery) -> SearchOutcome:
    line_regex = compile_pattern(query.pattern, query.ignore_case)
    # A whole-file search rejects most files in one C call; it may over-accept (a match spanning
    # lines) but never under-accepts, and the per-line pass below decides.
    # \A and \Z anchor to the whole text, not a line, so such patterns skip that shortcut.
    anchored = "\\A" in line_regex.pattern or "\\Z" in line_regex.pattern
    file_regex = None if anchored else re.compile(line_regex.pattern, line_regex.flags | re.M)
    glob = GlobFilter(query.glob) if query.glob else None
    keep = _path_filter(query, glob, from_ripgrep=False)
    files: list[FileHits] = []
    inside = query.target == query.root or query.target.is_relative_to(query.root)
    roots = (
        (query.root,)
        if inside
        else (query.target if query.target.is_dir() else query.target.parent,)
    )
    for path in walk_files(query.target, roots):
        display = query.display(path)
        if keep is not None and not keep(display):
            continue
        try:
            # O_NONBLOCK + fstat: a FIFO swapped in after the walk is skipped, never waited on.
            data = read_if_regular(path, roots, MAX_SEARCH_BYTES)
        except (OSError, ToolError):
            continue
        if looks_binary(data):
            continue
        text = data.decode("utf-8", errors="replace")
        if file_regex is not None and not file_regex.search(text):
            continue
        hits = _search_lines(text, line_regex, query)
        if hits is not None:
            files.append(FileHits(display, hits[0], hits[1]))
    files.sort(key=lambda f: path_sort_key(f.path))
    return SearchOutcome(files, "python")


def _search_lines(
    text: str, regex: re.Pattern[str], query: SearchQuery
) -> tuple[int, list[Line]] | None:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    matched = [i for i, line in enumerate(lines) if regex.search(line)]
    if not matched:
        return None
    if query.mode != "content":
        return (1 if query.mode == "files" else len(matched)), []
    return len(matched), list(_with_context(lines, matched, query.context))


def _with_context(lines: list[str], matched: list[int], context: int) -> Iterator[Line]:
    matched_set = set(matched)
    shown: set[int] = set()
    for i in matched:
        shown.update(range(max(0, i - context), min(len(lines), i + context + 1)))
    for i in sorted(shown):
        yield i + 1, i in matched_set, lines[i]
