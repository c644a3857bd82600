"""Parse unified diffs (git-style or plain ---/+++) the way `git apply` reads them.

Where git has a rule the parser follows it, so a patch git accepts means the same thing here: a hunk
ends when the counts in its `@@` header are used up and anything after that up to the next header is
ignored (prose, junk); an empty line inside a hunk is an empty context line; `\\ No newline at end of
file` strips the newline of the line before it. Where git would give up as "corrupt patch" — counts
that promise more lines than the hunk has, which models often write — the hunk simply ends early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK_RE = re.compile(r"^@@+ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NAMED_LINE = re.compile(r"^(---|\+\+\+) ")


class PatchParseError(ValueError):
    pass


@dataclass
class Hunk:
    old_start: int
    new_start: int
    # (kind, text) with kind in " -+"; text keeps its line ending unless marked "no newline".
    lines: list[tuple[str, str]] = field(default_factory=list)
    header: str = ""

    @property
    def before(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "+"]

    @property
    def after(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "-"]

    @property
    def leading_context(self) -> int:
        n = 0
        for kind, _ in self.lines:
            if kind != " ":
                break
            n += 1
        return n

    @property
    def trailing_context(self) -> int:
        n = 0
        for kind, _ in reversed(self.lines):
            if kind != " ":
                break
            n += 1
        return n


@dataclass
class FilePatch:
    old_path: str | None  # None: /dev/null (a new file)
    new_path: str | None  # None: /dev/null (a deleted file)
    hunks: list[Hunk] = field(default_factory=list)
    new_mode: int | None = None
    is_new: bool = False
    is_delete: bool = False
    is_rename: bool = False
    is_copy: bool = False
    binary: bool = False

    @property
    def target(self) -> str:
        return self.new_path if self.new_path is not None else self.old_path or ""


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _unquote(name: str) -> str:
    """git C-quotes unusual names ("a/sp\\303\\244ce"); octal escapes are UTF-8 bytes."""
    if not (len(name) >= 2 and name[0] == '"' and name[-1] == '"'):
        return name
    raw = bytearray()
    body = name[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                raw.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            raw.extend(_ESCAPES.get(nxt, nxt).encode())
            i += 2
            continue
        raw.extend(ch.encode())
        i += 1
    return raw.decode("utf-8", "surrogateescape")


def _header_name(line: str) -> str | None:
    """The path on a ---/+++ line, without a timestamp; None for /dev/null."""
    rest = line[4:].rstrip("\r\n")
    if rest.startswith('"'):
        end = rest.find('"', 1)
        while end != -1 and rest[end - 1] == "\\":
            end = rest.find('"', end + 1)
        name = _unquote(rest[: end + 1]) if end != -1 else rest
    else:
        name = rest.split("\t")[0]
        # GNU diff writes "name  2024-01-01 10:00:00.000 +0100"; drop such a timestamp.
        name = re.sub(r"\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4}$", "", name)
        name = name.rstrip()
    return None if name == "/dev/null" else name


def _git_header_names(line: str) -> tuple[str, str] | None:
    rest = line[len("diff --git ") :].rstrip("\r\n")
    if rest.startswith('"'):
        m = re.match(r'("(?:[^"\\]|\\.)*")\s+(.*)$', rest)
        if not m:
            return None
        return _unquote(m.group(1)), _unquote(m.group(2))
    # "a/x b/x": prefer the split where both halves name the same file.
    candidates = [m.start() for m in re.finditer(" ", rest)]
    for pos in candidates:
        a, b = rest[:pos], rest[pos + 1 :]
        if a[2:] == b[2:] and a.startswith("a/") and b.startswith("b/"):
            return a, b
    for pos in candidates:
        if rest[pos + 1 :].startswith("b/"):
            return rest[:pos], _unquote(rest[pos + 1 :])
    return None


def _strip_prefix(old: str | None, new: str | None) -> tuple[str | None, str | None]:
    """Drop git's a/ and b/ prefixes; plain diffs without them keep their names as they are."""
    old_ok = old is None or old.startswith("a/")
    new_ok = new is None or new.startswith("b/")
    if old_ok and new_ok and (old is not None or new is not None):
        return (old[2:] if old else None), (new[2:] if new else None)
    return old, new


def parse_patch(text: str) -> list[FilePatch]:
    lines = _lines(text)
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    in_git_header = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            names = _git_header_names(line)
            old, new = _strip_prefix(*(names or (None, None)))
            current = FilePatch(old, new)
            patches.append(current)
            in_git_header = True
            i += 1
            continue
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _strip_prefix(_header_name(line), _header_name(lines[i + 1]))
            if current is None or not in_git_header:
                current = FilePatch(old, new)
                patches.append(current)
            else:
                if not current.is_rename and not current.is_copy:
                    current.old_path, current.new_path = old, new
                else:
                    current.old_path = current.old_path if old is not None else None
                    current.new_path = current.new_path if new is not None else None
            current.is_new = current.is_new or old is None
            current.is_delete = current.is_delete or new is None
            in_git_header = False
            i += 2
            continue
        if in_git_header and current is not None:
            _read_extended_header(line, current)
            if line.startswith("@@"):
                in_git_header = False
            else:
                i += 1
                continue
        if line.startswith("@@") and current is not None:
            hunk, i = _read_hunk(lines, i)
            current.hunks.append(hunk)
            continue
        i += 1  # prose, junk, or lines after a hunk's counted length: ignored like git does
    for patch in patches:
        if patch.old_path is None and patch.new_path is None:
            raise PatchParseError("a file section names no file (both sides /dev/null)")
    return [
        p
        for p in patches
        if p.hunks
        or p.is_new
        or p.is_delete
        or p.is_rename
        or p.binary
        or p.new_mode is not None
        or p.is_copy
    ]


def _read_extended_header(line: str, patch: FilePatch) -> None:
    body = line.rstrip("\r\n")
    if body.startswith("new file mode "):
        patch.is_new = True
        patch.old_path = None
        patch.new_mode = int(body.split()[-1], 8) & 0o7777
    elif body.startswith("deleted file mode "):
        patch.is_delete = True
        patch.new_path = None
    elif body.startswith("new mode "):
        patch.new_mode = int(body.split()[-1], 8) & 0o7777
    elif body.startswith("rename from "):
        patch.is_rename = True
        patch.old_path = _unquote(body[len("rename from ") :])
    elif body.startswith("rename to "):
        patch.is_rename = True
        patch.new_path = _unquote(body[len("rename to ") :])
    elif body.startswith("copy from "):
        patch.is_copy = True
        patch.old_path = _unquote(body[len("copy from ") :])
    elif body.startswith("copy to "):
        patch.is_copy = True
        patch.new_path = _unquote(body[len("copy to ") :])
    elif body.startswith(("GIT binary patch", "Binary files ")):
        patch.binary = True


def _looks_like_header(lines: list[str], i: int) -> bool:
    line = lines[i]
    if line.startswith(("diff --git ", "@@ ")):
        return True
    return line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _read_hunk(lines: list[str], i: int) -> tuple[Hunk, int]:
    header = lines[i].rstrip("\r\n")
    m = _HUNK_RE.match(header)
    if m is None:
        # "@@" without numbers: place the hunk by its context alone; read it while lines look
        # like hunk lines.
        hunk = Hunk(0, 0, header=header)
        old_left = new_left = 1 << 30
    else:
        old_left = int(m.group(2)) if m.group(2) is not None else 1
        new_left = int(m.group(4)) if m.group(4) is not None else 1
        hunk = Hunk(int(m.group(1)), int(m.group(3)), header=header)
    counted = m is not None
    i += 1
    while i < len(lines) and (old_left > 0 or new_left > 0):
        line = lines[i]
        kind = line[0]
        if kind == "\\":
            _mark_no_newline(hunk)
            i += 1
            continue
        if _looks_like_header(lines, i) or kind not in " -+\n":
            break  # the header promised more lines than there are
        if not counted and kind == "\n" and not _more_hunk_lines_follow(lines, i):
            break
        text = "\n" if kind == "\n" else line[1:]
        kind = " " if kind == "\n" else kind
        if kind != "+":
            old_left -= 1
        if kind != "-":
            new_left -= 1
        if old_left < 0 or new_left < 0:
            break  # more of one side than the header says: the rest is not this hunk's
        hunk.lines.append((kind, text))
        i += 1
    if i < len(lines) and lines[i].startswith("\\"):
        _mark_no_newline(hunk)
        i += 1
    return hunk, i


def _more_hunk_lines_follow(lines: list[str], i: int) -> bool:
    for j in range(i + 1, len(lines)):
        if lines[j][0] in " -+" and not _looks_like_header(lines, j):
            return True
        if lines[j] != "\n":
            return False
    return False


def _mark_no_newline(hunk: Hunk) -> None:
    if hunk.lines:
        kind, text = hunk.lines[-1]
        if text.endswith("\n"):
            hunk.lines[-1] = (kind, text[:-1])
