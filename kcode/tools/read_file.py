"""read_file: numbered lines of a text file, a window at a time (SPEC §5)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import Field

from kcode.messages import ToolResult
from kcode.safety.secrets import check_readable
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError, ok
from kcode.tools.confine import file_size, open_file, read_head
from kcode.tools.fileio import decode_bytes, looks_binary, looks_like_image

# One very long line (minified JS) must not eat the whole byte budget of a read.
MAX_LINE_CHARS = 2_000
# Files up to this size are read whole (to count lines and detect the encoding); bigger ones are
# streamed line by line from the start, and only the lines shown are kept.
MAX_WHOLE_READ = 10 * 1024 * 1024


class ReadFileArgs(ToolArgs):
    path: str = Field(description="File path, relative to the workspace root.")
    offset: int | None = Field(default=None, ge=1, description="First line to show (1-based).")
    limit: int | None = Field(default=None, ge=1, description="Maximum number of lines to show.")


class ReadFileTool(Tool[ReadFileArgs]):
    name = "read_file"
    description = (
        "Read a text file as numbered lines (number, tab, text). Long files are cut at about "
        "2,000 lines / 100 KB with a note saying which offset to read next; use offset and limit "
        "to read a part. Images are refused (use view_image); list directories with glob."
    )
    args_model = ReadFileArgs
    read_only = True

    async def run(self, args: ReadFileArgs, ctx: ToolContext) -> ToolResult:
        path = ctx.resolve(args.path)
        check_readable(ctx, path)  # .env, private keys, credential files (kcode.safety.secrets)
        return await asyncio.to_thread(_read, path, args, ctx)


def _read(path: Path, args: ReadFileArgs, ctx: ToolContext) -> ToolResult:
    shown = ctx.display(path)
    try:
        fd = open_file(path, ctx.roots, shown)
    except FileNotFoundError:
        raise ToolError(
            f"{shown} does not exist; find the right path with glob (e.g. pattern='**/{path.name}')"
        ) from None
    except PermissionError:
        raise ToolError(f"{shown} is not readable (permission denied)") from None
    except ToolError as err:
        if "is a directory" in str(err):
            raise ToolError(
                f"{shown} is a directory, not a file; list its files with glob "
                f"(pattern='*', path={shown!r})"
            ) from None
        raise
    try:
        size = file_size(fd)
        # Only what can be shown is read: a huge file is streamed, never loaded whole.
        if size > MAX_WHOLE_READ:
            return _read_large(fd, path, size, args, ctx)
        data = read_head(fd, MAX_WHOLE_READ)
    finally:
        os.close(fd)
    if looks_like_image(path, data[:16]):
        raise ToolError(f"{shown} is an image; use view_image to look at it")
    if looks_binary(data):
        raise ToolError(
            f"{shown} is a binary file ({len(data)} bytes) and cannot be shown as text; "
            "inspect it with the shell tool (e.g. `xxd` or `file`) if needed"
        )
    decoded = decode_bytes(data)
    lines = decoded.text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    total = len(lines)
    notes: list[str] = []
    if decoded.fallback:
        notes.append("[not valid UTF-8: decoded as latin-1; edits keep that encoding]")
    elif decoded.encoding != "utf-8" or decoded.bom:
        notes.append(f"[encoding: {decoded.label}]")
    if total == 0:
        return ok(
            "\n".join([*notes, f"[{shown} is empty]"]),
            {"path": shown, "total_lines": 0, "start": 0, "end": 0, "truncated": False},
        )
    start = args.offset or 1
    if start > total:
        raise ToolError(
            f"offset {start} is past the end of {shown}, which has {total} line(s); "
            f"use an offset between 1 and {total}"
        )
    want = min(args.limit or ctx.limits.read_max_lines, ctx.limits.read_max_lines)
    out: list[str] = []
    used = 0
    end = start - 1
    cut_by_bytes = False
    for number in range(start, min(total, start - 1 + want) + 1):
        text = lines[number - 1].removesuffix("\r")
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + f" [... line cut: {len(text)} characters in all]"
        row = f"{number:>6}\t{text}"
        size = len(row.encode("utf-8", "replace")) + 1
        if out and used + size > ctx.limits.read_max_bytes:
            cut_by_bytes = True
            break
        out.append(row)
        used += size
        end = number
    if end < total:
        why = " (output size limit reached)" if cut_by_bytes else ""
        out.append(
            f"[showing lines {start}-{end} of {total}{why}; use offset={end + 1} to read on]"
        )
    content = "\n".join([*notes, *out])
    return ok(
        content,
        {
            "path": shown,
            "total_lines": total,
            "start": start,
            "end": end,
            "truncated": end < total,
            "encoding": decoded.label,
        },
    )


def _read_large(fd: int, path: Path, size: int, args: ReadFileArgs, ctx: ToolContext) -> ToolResult:
    shown = ctx.display(path)
    start = args.offset or 1
    want = min(args.limit or ctx.limits.read_max_lines, ctx.limits.read_max_lines)
    out: list[str] = []
    used = 0
    number = 0
    end = start - 1
    with os.fdopen(os.dup(fd), "rb") as f:
        head = f.read(8192)
        if looks_like_image(path, head[:16]):
            raise ToolError(f"{shown} is an image; use view_image to look at it")
        if looks_binary(head):
            raise ToolError(
                f"{shown} is a binary file ({size} bytes) and cannot be shown as text; "
                "inspect it with the shell tool (e.g. `xxd` or `file`) if needed"
            )
        f.seek(0)
        while True:
            raw = f.readline(MAX_LINE_CHARS * 4)
            if not raw:
                break
            if not raw.endswith(b"\n"):
                f.readline()  # the rest of an overlong line is dropped, not kept
            number += 1
            if number < start:
                continue
            text = raw.decode("utf-8", "replace").rstrip("\n").removesuffix("\r")
            if len(text) > MAX_LINE_CHARS:
                text = text[:MAX_LINE_CHARS] + " [... line cut]"
            row = f"{number:>6}\t{text}"
            size_row = len(row.encode("utf-8", "replace")) + 1
            if len(out) >= want or (out and used + size_row > ctx.limits.read_max_bytes):
                break
            out.append(row)
            used += size_row
            end = number
    if not out:
        raise ToolError(f"offset {start} is past the end of {shown}")
    out.append(
        f"[{shown} is {size} bytes, too large to count its lines; showing lines {start}-{end}; "
        f"use offset={end + 1} to read on]"
    )
    data = {"path": shown, "total_lines": None, "start": start, "end": end, "truncated": True}
    return ok("\n".join(out), data)
