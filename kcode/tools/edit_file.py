"""edit_file: exact string replacements in one file, all or none (SPEC §5)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from kcode.messages import ToolResult
from kcode.safety.approval import ApprovalRequest
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError, ok
from kcode.tools.confine import read_file_bytes
from kcode.tools.edit_match import apply_edit
from kcode.tools.fileio import atomic_write, cap_lines, decode_bytes, diff_stats, unified_diff

RESULT_DIFF_LINES = 60


class Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_string: str = Field(description="Exact text to replace, copied from the file.")
    new_string: str = Field(description="Replacement text.")
    replace_all: bool = Field(default=False, description="Replace every occurrence.")


class EditFileArgs(ToolArgs):
    path: str = Field(description="File path, relative to the workspace root.")
    edits: list[Edit] = Field(min_length=1, description="Applied in order; all or none.")


class EditFileTool(Tool[EditFileArgs]):
    name = "edit_file"
    description = (
        "Replace text in an existing file. Each old_string must occur exactly once (add "
        "surrounding lines to make it unique) unless replace_all. Edits apply in order, all or "
        "none. Encoding, line endings and mode are kept. Use write_file for new files."
    )
    args_model = EditFileArgs

    def written_paths(self, args: EditFileArgs) -> list[str]:
        return [args.path]

    async def run(self, args: EditFileArgs, ctx: ToolContext) -> ToolResult:
        path = ctx.resolve_for_write(args.path)
        shown = ctx.display(path)
        if path.is_dir():
            raise ToolError(f"{shown} is a directory; give the path of a file inside it")
        try:
            data = await asyncio.to_thread(read_file_bytes, path, ctx.roots, shown)
        except FileNotFoundError:
            raise ToolError(
                f"{shown} does not exist; create it with write_file, or find the right path "
                "with glob"
            ) from None
        decoded = decode_bytes(data)
        newline = decoded.newline
        text = decoded.text
        notes: list[str] = []
        for index, edit in enumerate(args.edits, start=1):
            label = f"edit {index} of {len(args.edits)}" if len(args.edits) > 1 else "edit"
            outcome = apply_edit(
                text, edit.old_string, edit.new_string, edit.replace_all, newline, label
            )
            text = outcome.text
            if outcome.how != "exact":
                notes.append(
                    f"{label}: no exact match; used the only match {outcome.how} at line "
                    f"{outcome.first_line} (new_string re-indented to fit)"
                )
            elif outcome.count > 1:
                notes.append(f"{label}: replaced {outcome.count} occurrences")
        if text == decoded.text:
            raise ToolError("the edits leave the file unchanged; nothing was written")
        new_bytes = decoded.encode(text)
        diff = unified_diff(decoded.text, text, shown)
        await ctx.approve(
            ApprovalRequest(action="edit", tool=self.name, summary=f"edit {shown}", detail=diff)
        )
        ctx.changes.record_before_write(path)
        await asyncio.to_thread(atomic_write, path, new_bytes, None, ctx.roots)
        added, removed = diff_stats(diff)
        count = len(args.edits)
        head = (
            f"Edited {shown}: {count} edit{'s' if count > 1 else ''} applied (+{added} -{removed})."
        )
        compact = cap_lines(unified_diff(decoded.text, text, shown, context=1), RESULT_DIFF_LINES)
        return ok(
            "\n".join([head, *notes, compact]),
            {
                "path": shown,
                "edits": count,
                "added": added,
                "removed": removed,
                "tolerant_matches": sum(1 for n in notes if "no exact match" in n),
            },
        )
