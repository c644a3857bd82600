"""Applying parsed hunks to a file's lines the way `git apply` does, with extra tolerance after it.

git places each hunk (in order, on the text the earlier hunks produced) at the position nearest to the
line its header names where the hunk's old side matches byte for byte, trying line, line+1, line-1,
line+2, ... A hunk starting at line 0 or 1 must match at the top, one without trailing context at the
bottom. That is level 1 here, so any patch git applies gives git's bytes. Only when git would refuse,
kcode goes on: without the top/bottom rule, then ignoring line-ending differences (an LF patch on a CRLF
file), then ignoring whitespace — the last only when the match is unique.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kcode.tools.base import ToolError
from kcode.tools.edit_match import closest_lines
from kcode.tools.patch_parse import Hunk

Key = Callable[[str], str]


def _exact(line: str) -> str:
    return line


def _no_eol(line: str) -> str:
    return line.rstrip("\r\n")


def _no_ws(line: str) -> str:
    return " ".join(line.split())


@dataclass(frozen=True)
class HunkPlacement:
    number: int
    line: int  # 1-based line where the hunk's old side starts in the text it was applied to
    offset: int  # lines away from where the header said (after earlier hunks)
    how: str  # "exact", "ignoring line endings", "ignoring whitespace"


def _find(
    lines: list[str],
    before: list[str],
    hint: int,
    key: Key,
    must_start: bool,
    must_end: bool,
    first_only: bool = False,
) -> list[int]:
    """Positions where `before` matches, nearest to `hint` first (git's search order)."""
    n, k = len(lines), len(before)
    if k > n:
        return []
    keys_before = [key(b) for b in before]
    if must_start:
        hint = 0
    elif must_end:
        hint = n - k
    hint = max(0, min(hint, n))
    order = [hint]
    for step in range(1, n + 1):
        if hint + step <= n:
            order.append(hint + step)
        if hint - step >= 0:
            order.append(hint - step)
    found = []
    for pos in order:
        if pos + k > n:
            continue
        if must_start and pos != 0:
            continue
        if must_end and pos + k != n:
            continue
        if all(key(lines[pos + j]) == keys_before[j] for j in range(k)):
            found.append(pos)
            if first_only:
                break
    return found


def _newline_of(lines: list[str]) -> str:
    counts: dict[str, int] = {}
    for line in lines:
        ending = line[len(line.rstrip("\r\n")) :]
        if ending:
            counts[ending] = counts.get(ending, 0) + 1
    return max(counts, key=lambda e: counts[e]) if counts else "\n"


def _tolerant_after(hunk: Hunk, lines: list[str], pos: int, newline: str) -> list[str]:
    """The new lines when the match was not byte-exact: context keeps the file's own bytes."""
    out = []
    file_index = pos
    for kind, text in hunk.lines:
        if kind == " ":
            out.append(lines[file_index])
            file_index += 1
        elif kind == "-":
            file_index += 1
        else:
            body = text.rstrip("\r\n")
            out.append(body + newline if text.endswith("\n") else body)
    return out


def apply_hunks(
    lines: list[str], hunks: list[Hunk], strip_bom: bool
) -> tuple[list[str], list[HunkPlacement]]:
    """Apply every hunk in order; raise ToolError naming the first hunk that does not fit."""
    lines = list(lines)
    placements = []
    newline = _newline_of(lines)
    for number, hunk in enumerate(hunks, start=1):
        if strip_bom:
            hunk = _without_bom(hunk)
        before, after = hunk.before, hunk.after
        counted = hunk.header.startswith("@@ -")
        must_start = counted and hunk.old_start <= 1
        must_end = counted and hunk.trailing_context == 0
        hint = hunk.new_start - 1 if hunk.new_start else 0
        placed: tuple[int, str] | None = None
        attempts: list[tuple[Key, bool, bool, str]] = []
        levels: tuple[tuple[Key, str], ...] = (
            (_exact, "exact"),
            (_no_eol, "ignoring line endings"),
        )
        for level_key, level_how in levels:
            attempts.append((level_key, must_start, must_end, level_how))
            if must_start or must_end:
                attempts.append((level_key, False, False, level_how))  # beyond git: anywhere
        for key, top, bottom, how in attempts:
            hits = _find(lines, before, hint, key, top, bottom, first_only=True)
            if hits:
                placed = (hits[0], how)
                break
        if placed is None:
            hits = _find(lines, before, hint, _no_ws, False, False)
            if len(hits) > 1:
                where = ", ".join(str(h + 1) for h in hits[:10])
                raise ToolError(
                    f"hunk {number} ({hunk.header}) matches only when ignoring whitespace, and "
                    f"then at {len(hits)} places (lines {where}); fix its context lines"
                )
            if hits:
                placed = (hits[0], "ignoring whitespace")
        if placed is None:
            bare = [line.rstrip("\r\n") for line in lines]
            hint_text = closest_lines(bare, [b.rstrip("\r\n") for b in before])
            raise ToolError(
                f"hunk {number} ({hunk.header}) does not match the file: its context and removed "
                f"lines were not found.{hint_text}"
            )
        pos, how = placed
        new_lines = after if how == "exact" else _tolerant_after(hunk, lines, pos, newline)
        lines[pos : pos + len(before)] = new_lines
        placements.append(HunkPlacement(number, pos + 1, pos - hint, how))
    return lines, placements


def _without_bom(hunk: Hunk) -> Hunk:
    if not hunk.lines or not hunk.lines[0][1].startswith("\ufeff"):
        return hunk
    kind, text = hunk.lines[0]
    return Hunk(hunk.old_start, hunk.new_start, [(kind, text[1:]), *hunk.lines[1:]], hunk.header)
