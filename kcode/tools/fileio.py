"""Byte-faithful text file handling shared by the file tools.

Edits must leave every byte the model did not mean to touch exactly as it was: the encoding, a BOM,
CRLF or LF, a missing final newline, the file mode. So files are decoded once into a `DecodedText` that
remembers how to encode the result back, and written atomically (temp file in the same directory, then
os.replace) so a crash or a full disk never leaves half a file behind.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from kcode.tools.base import ToolError
from kcode.tools.unnamed_write import temp_name, write_unnamed

# Longest BOMs first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico", ".tif", ".tiff", ".avif", ".heic"}
)
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


@dataclass(frozen=True)
class DecodedText:
    """A file's text (BOM removed, line endings untouched) plus what it takes to write it back."""

    text: str
    encoding: str
    bom: bytes = b""
    # True when the bytes were not valid UTF-8 and latin-1 (which maps every byte) was used.
    fallback: bool = False

    @property
    def label(self) -> str:
        name = "latin-1" if self.fallback else self.encoding
        return f"{name} with BOM" if self.bom else name

    @property
    def newline(self) -> str:
        return dominant_newline(self.text)

    def encode(self, text: str) -> bytes:
        try:
            return self.bom + text.encode(self.encoding)
        except UnicodeEncodeError as err:
            bad = text[err.start : err.end]
            raise ToolError(
                f"the file is {self.label} and cannot hold the character(s) {bad!r} of the new "
                "text; use characters that encoding supports (or rewrite the file with write_file "
                "to convert it to UTF-8)"
            ) from err


def decode_bytes(data: bytes) -> DecodedText:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return DecodedText(data[len(bom) :].decode(encoding), encoding, bom)
            except UnicodeDecodeError:
                break  # a BOM followed by garbage: keep every byte via latin-1 below
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        return DecodedText(data.decode("latin-1"), "latin-1", fallback=True)


def looks_binary(data: bytes) -> bool:
    """NUL bytes in the first 8 KB mean binary, unless a UTF-16/32 BOM explains them."""
    if any(data.startswith(bom) for bom, enc in _BOMS if not enc.startswith("utf-8")):
        return False
    return b"\x00" in data[:8192]


def looks_like_image(path: Path, head: bytes) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    return any(head.startswith(magic) for magic in _IMAGE_MAGIC[:4]) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )


_NEWLINE_RE = re.compile(r"\r\n|\r|\n")


def dominant_newline(text: str) -> str:
    """The line ending most lines use ("\\n" when there are none); ties prefer LF, then CRLF."""
    counts = {"\n": 0, "\r\n": 0, "\r": 0}
    for m in _NEWLINE_RE.finditer(text):
        counts[m.group()] += 1
    return max(("\n", "\r\n", "\r"), key=lambda nl: counts[nl])


_LONE_LF_RE = re.compile(r"(?<!\r)\n")


def to_newline(text: str, newline: str) -> str:
    """Turn the model's bare LFs into the file's line ending; CRLFs it sent stay as they are."""
    if newline == "\n":
        return text
    return _LONE_LF_RE.sub(newline, text)


def split_lines(text: str) -> list[str]:
    """Lines with their terminators, split on LF only (as git and grep count lines)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def count_lines(text: str) -> int:
    return len(split_lines(text))


def _process_umask() -> int:
    # os.umask() can only be read by setting it, which races with other threads; /proc has it.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _check_pinned_dir(dir_fd: int, expected: Path) -> None:
    try:
        actual = os.readlink(f"/proc/self/fd/{dir_fd}")
    except OSError:
        return  # no /proc: nothing to compare against
    if actual != str(expected):
        raise ToolError(f"{expected} changed (now {actual}) while writing; nothing was written")


def atomic_write(
    path: Path, data: bytes, mode: int | None = None, roots: tuple[Path, ...] | None = None
) -> bool:
    """Write `data` via a temp file in the same directory and os.replace; keep an existing mode.

    Returns True when the file existed before. `mode` overrides the permission bits (a patch that
    says `new mode 100755`; only 0o777 of it counts); otherwise an existing file keeps its bits and
    a new one gets 0o666 & ~umask. With `roots` (the allowed roots), the parent directory is reached
    from a root descriptor without following symlinks (kcode.tools.confine).
    """
    if mode is not None:
        mode &= 0o777
    if roots is not None:
        from kcode.tools.confine import open_parent

        dir_fd = open_parent(path, roots, create=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    # Everything below goes through a descriptor of the parent directory, checked to be where the
    # caller resolved it: a directory swapped for a symlink after the path was confined cannot
    # redirect the write outside the workspace.
    try:
        _check_pinned_dir(dir_fd, path.parent)
        try:
            st = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
            existing_mode: int | None = st.st_mode & 0o7777
            if stat.S_ISDIR(st.st_mode):
                raise ToolError(f"{path} is a directory; give the path of a file inside it")
        except FileNotFoundError:
            existing_mode = None
        if mode is None:
            mode = existing_mode if existing_mode is not None else 0o666 & ~_process_umask()
        if write_unnamed(dir_fd, path.name, data, mode, replace=existing_mode is not None):
            return existing_mode is not None  # no temp file a kill -9 could leave behind
        tmp_name = temp_name(path.name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(tmp_name, flags, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
                os.fchmod(tmp.fileno(), mode)
            os.replace(tmp_name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp_name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dir_fd)
    return existing_mode is not None


_NO_EOL = "\n\\ No newline at end of file"


def _diff_lines(text: str) -> list[str]:
    lines = [line.rstrip("\n").rstrip("\r") for line in split_lines(text)]
    if text and not text.endswith("\n"):
        # Marking the last line makes a final-newline change show up as a changed line.
        lines[-1] += _NO_EOL
    return lines


def unified_diff(before: str, after: str, display_path: str, context: int = 3) -> str:
    """A unified diff for approval prompts and results (CRs hidden so terminals show it cleanly)."""
    old_name = f"a/{display_path}" if before or after == before else "/dev/null"
    new_name = f"b/{display_path}"
    lines = difflib.unified_diff(
        _diff_lines(before), _diff_lines(after), old_name, new_name, n=context, lineterm=""
    )
    return "\n".join(lines)


def diff_stats(diff: str) -> tuple[int, int]:
    """(added, removed) line counts of a unified diff."""
    added = removed = 0
    lines = diff.split("\n")
    if len(lines) >= 2 and lines[0].startswith("--- ") and lines[1].startswith("+++ "):
        lines = lines[2:]
    for line in lines:
        if line.startswith("+"):
            added += 1
        elif line.startswith("-"):
            removed += 1
    return added, removed


def cap_lines(text: str, max_lines: int) -> str:
    lines = text.split("\n")
    if len(lines) <= max_lines:
        return text
    return "\n".join([*lines[:max_lines], f"[... {len(lines) - max_lines} more diff lines ...]"])
