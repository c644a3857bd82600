"""Finding where an edit_file `old_string` goes, exactly or (only when unique) whitespace-tolerantly.

Models copy code out of read_file output and often get indentation or trailing spaces slightly wrong.
An exact match always wins. Failing that, a line-by-line match that ignores a consistent indentation
shift and trailing whitespace is tried, then one that ignores all whitespace differences inside lines;
a tolerant match is used only when it is the only one, and `new_string` is re-indented the same way.
When nothing matches, the error shows the closest lines so the model can correct its old_string.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from kcode.tools.base import ToolError
from kcode.tools.fileio import split_lines, to_newline


@dataclass(frozen=True)
class Replacement:
    start: int  # character offsets into the text
    end: int
    new: str


@dataclass(frozen=True)
class EditOutcome:
    text: str
    how: str  # "exact" or a description of the tolerant match used
    first_line: int
    count: int


def line_number(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _occurrences(text: str, needle: str) -> list[int]:
    found = []
    start = text.find(needle)
    while start != -1:
        found.append(start)
        start = text.find(needle, start + 1)
    return found


def _non_overlapping(starts: list[int], length: int) -> list[int]:
    kept: list[int] = []
    for s in starts:
        if not kept or s >= kept[-1] + length:
            kept.append(s)
    return kept


def apply_edit(
    text: str, old: str, new: str, replace_all: bool, newline: str, label: str
) -> EditOutcome:
    """Apply one edit to `text` or raise ToolError saying why and what to do instead."""
    if old == "":
        raise ToolError(
            f"{label}: old_string is empty; quote the exact text to replace (to create or "
            "rewrite a whole file use write_file)"
        )
    if old == new:
        raise ToolError(f"{label}: old_string and new_string are identical; nothing would change")
    variants = [old]
    converted = to_newline(old, newline)
    if converted != old:
        variants.insert(0, converted)  # the file's own line endings are the likelier match
    new_text = to_newline(new, newline)
    for variant in variants:
        starts = _occurrences(text, variant)
        if not starts:
            continue
        if len(starts) > 1 and not replace_all:
            lines = ", ".join(str(line_number(text, s)) for s in starts[:20])
            raise ToolError(
                f"{label}: old_string matches {len(starts)} times (at lines {lines}); include "
                "more surrounding lines to make it unique, or set replace_all to change every one"
            )
        starts = _non_overlapping(starts, len(variant))
        pieces = []
        previous = 0
        for s in starts:
            pieces.append(text[previous:s])
            pieces.append(new_text)
            previous = s + len(variant)
        pieces.append(text[previous:])
        return EditOutcome("".join(pieces), "exact", line_number(text, starts[0]), len(starts))
    replacement, how = _tolerant_match(text, old, new, newline, label)
    result = text[: replacement.start] + replacement.new + text[replacement.end :]
    return EditOutcome(result, how, line_number(text, replacement.start), 1)


def _content_lines(s: str) -> list[str]:
    """The lines of a model-supplied string, without terminators or surrounding blank lines."""
    lines = [line.rstrip("\r") for line in s.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _squash(line: str) -> str:
    return " ".join(line.split())


def _indent_shift_ok(file_lines: list[str], old_lines: list[str]) -> bool:
    """True when every non-blank line differs only by one common indentation change."""
    shift: tuple[str, str] | None = None
    for fl, ol in zip(file_lines, old_lines, strict=True):
        if not ol.strip():
            continue
        fi, oi = _indent(fl), _indent(ol)
        common = 0
        while common < min(len(fi), len(oi)) and fi[-1 - common] == oi[-1 - common]:
            common += 1
        this = (fi[: len(fi) - common], oi[: len(oi) - common])
        if shift is None:
            shift = this
        elif this != shift:
            return False
    return True


def _reindent(new_lines: list[str], file_first: str, old_first: str) -> list[str]:
    file_indent, old_indent = _indent(file_first), _indent(old_first)
    out = []
    for line in new_lines:
        if not line.strip():
            out.append("")
        elif line.startswith(old_indent):
            out.append(file_indent + line[len(old_indent) :])
        else:
            out.append(line)
    return out


def _tolerant_match(
    text: str, old: str, new: str, newline: str, label: str
) -> tuple[Replacement, str]:
    file_lines = split_lines(text)
    bare = [line.rstrip("\n").rstrip("\r") for line in file_lines]
    old_lines = _content_lines(old)
    if not old_lines:
        raise ToolError(f"{label}: old_string is only whitespace and was not found")
    k = len(old_lines)
    levels = (
        ("ignoring indentation and trailing whitespace", lambda s: s.strip()),
        ("ignoring whitespace differences", _squash),
    )
    for how, key in levels:
        old_keys = [key(line) for line in old_lines]
        hits = []
        for i in range(len(bare) - k + 1):
            if key(bare[i]) != old_keys[0]:
                continue
            window = bare[i : i + k]
            if [key(line) for line in window] != old_keys:
                continue
            if key is not _squash and not _indent_shift_ok(window, old_lines):
                continue
            hits.append(i)
        if len(hits) > 1:
            lines = ", ".join(str(h + 1) for h in hits[:20])
            raise ToolError(
                f"{label}: old_string has no exact match and matches {len(hits)} places when "
                f"{how} (lines {lines}); quote the text exactly, with more surrounding lines"
            )
        if len(hits) == 1:
            return _replace_lines(text, file_lines, hits[0], k, old_lines, new, newline), how
    raise ToolError(
        f"{label}: old_string was not found in the file.{closest_lines(bare, old_lines)}"
    )


def _replace_lines(
    text: str, file_lines: list[str], first: int, k: int, old_lines: list[str], new: str, nl: str
) -> Replacement:
    start = sum(len(line) for line in file_lines[:first])
    last = file_lines[first + k - 1]
    end = start + sum(len(line) for line in file_lines[first : first + k])
    ending = last[len(last.rstrip("\r\n")) :]
    new_lines = _content_lines(new)
    if not new_lines:
        if not ending and start > 0:  # deleting the last lines: drop the newline before them
            previous = file_lines[first - 1]
            start -= len(previous) - len(previous.rstrip("\r\n"))
        return Replacement(start, end, "")
    first_file = next(
        (file_lines[first + j] for j, ol in enumerate(old_lines) if ol.strip()), file_lines[first]
    )
    first_old = next((ol for ol in old_lines if ol.strip()), old_lines[0])
    body = nl.join(_reindent(new_lines, first_file.rstrip("\r\n"), first_old))
    return Replacement(start, end, to_newline(body, nl) + ending)


def closest_lines(file_lines: list[str], old_lines: list[str], shown: int = 12) -> str:
    """A hint with the stretch of the file most similar to old_string, with line numbers."""
    k = len(old_lines)
    if not file_lines or k == 0:
        return ""
    target = "\n".join(line.strip() for line in old_lines)
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)
    scored = []
    for i in range(max(1, len(file_lines) - k + 1)):
        matcher.set_seq1("\n".join(line.strip() for line in file_lines[i : i + k]))
        scored.append((matcher.quick_ratio(), i))
    scored.sort(reverse=True)
    best_ratio, best = 0.0, 0
    for _, i in scored[:10]:
        matcher.set_seq1("\n".join(line.strip() for line in file_lines[i : i + k]))
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best_ratio, best = ratio, i
    if best_ratio < 0.3:
        return " No similar lines either; read the file again before editing."
    last = min(best + k, len(file_lines))
    rows = [f"{n + 1:>6}\t{file_lines[n]}" for n in range(best, last)]
    if len(rows) > shown:
        rows = [*rows[:shown], f"[... {len(rows) - shown} more lines]"]
    return (
        f" The closest text ({best_ratio:.0%} similar) is at lines {best + 1}-{last}:\n"
        + "\n".join(rows)
        + "\nCopy old_string exactly from the file (read_file shows the current text)."
    )
