"""write_file: create or replace a whole file, atomically (SPEC §5)."""

from __future__ import annotations

import asyncio

from pydantic import Field

from kcode.messages import ToolResult
from kcode.safety.approval import ApprovalRequest
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError, ok
from kcode.tools.confine import read_file_bytes
from kcode.tools.fileio import (
    DecodedText,
    atomic_write,
    count_lines,
    decode_bytes,
    diff_stats,
    to_newline,
    unified_diff,
)


class WriteFileArgs(ToolArgs):
    path: str = Field(description="File path, relative to the workspace root.")
    content: str = Field(description="The complete new content of the file.")


class WriteFileTool(Tool[WriteFileArgs]):
    name = "write_file"
    description = (
        "Create a file or replace its whole content (parent directories are created). An existing "
        "file keeps its mode, encoding and line endings. To change part of a file, prefer "
        "edit_file."
    )
    args_model = WriteFileArgs

    def written_paths(self, args: WriteFileArgs) -> list[str]:
        return [args.path]

    async def run(self, args: WriteFileArgs, ctx: ToolContext) -> ToolResult:
        path = ctx.resolve_for_write(args.path)
        shown = ctx.display(path)
        if path.is_dir():
            raise ToolError(f"{shown} is a directory; give the path of a file inside it")
        try:
            before_bytes: bytes | None = await asyncio.to_thread(
                read_file_bytes, path, ctx.roots, shown
            )
        except FileNotFoundError:
            before_bytes = None
        if before_bytes is None:
            before = DecodedText("", "utf-8")
            new_text = args.content
        else:
            # Keep what the file already is: its encoding, BOM and (for CRLF files) line endings.
            before = decode_bytes(before_bytes)
            new_text = to_newline(args.content, before.newline) if before.text else args.content
        data = before.encode(new_text)
        diff = unified_diff(before.text, new_text, shown)
        await ctx.approve(
            ApprovalRequest(action="edit", tool=self.name, summary=f"edit {shown}", detail=diff)
        )
        ctx.changes.record_before_write(path)
        await asyncio.to_thread(atomic_write, path, data, None, ctx.roots)
        lines = count_lines(new_text)
        added, removed = diff_stats(diff)
        if before_bytes is None:
            verb = "Created"
        elif before_bytes == data:
            verb = "Rewrote (unchanged)"
        else:
            verb = "Overwrote"
        return ok(
            f"{verb} {shown}: {lines} line(s), {len(data)} bytes (+{added} -{removed}).",
            {"path": shown, "created": before_bytes is None, "lines": lines, "bytes": len(data)},
        )
