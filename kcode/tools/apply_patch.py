"""apply_patch: a unified diff over one or more files, all files or none (SPEC §5)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from kcode.messages import ToolResult
from kcode.safety.approval import ApprovalRequest
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError, ok
from kcode.tools.confine import patch_mode, read_file_bytes, unlink_file
from kcode.tools.fileio import (
    DecodedText,
    _process_umask,
    atomic_write,
    decode_bytes,
    split_lines,
    unified_diff,
)
from kcode.tools.patch_apply import HunkPlacement, apply_hunks
from kcode.tools.patch_parse import FilePatch, PatchParseError, parse_patch


class ApplyPatchArgs(ToolArgs):
    patch: str = Field(description="Unified diff text (--- a/path, +++ b/path, @@ hunks).")


@dataclass
class _FileState:
    """What one path will hold once the whole patch is applied (None: deleted)."""

    decoded: DecodedText | None  # as the file is on disk now (None: absent)
    text: str | None
    mode: int | None = None
    # How to encode the result: the file's own encoding; a renamed file keeps its source's.
    codec: DecodedText = field(default_factory=lambda: DecodedText("", "utf-8"))
    data: bytes | None = None


class ApplyPatchTool(Tool[ApplyPatchArgs]):
    name = "apply_patch"
    description = (
        "Apply a unified diff (as from git diff) to one or more files: edits, new files "
        "(--- /dev/null), deletions (+++ /dev/null), renames. All files change or none. Hunks "
        "are found by their context even if @@ line numbers are off; text around the diff is "
        "ignored."
    )
    args_model = ApplyPatchArgs

    def written_paths(self, args: ApplyPatchArgs) -> list[str]:
        try:
            patches = parse_patch(args.patch)
        except PatchParseError:
            return []
        paths = []
        for fp in patches:
            for name in (fp.old_path, fp.new_path):
                if name is not None and name not in paths:
                    paths.append(name)
        return paths

    async def run(self, args: ApplyPatchArgs, ctx: ToolContext) -> ToolResult:
        try:
            patches = parse_patch(args.patch)
        except PatchParseError as err:
            raise ToolError(f"could not read the patch: {err}") from None
        if not patches:
            raise ToolError(
                "no diff found in patch: expected file headers ('--- a/path' then '+++ b/path') "
                "followed by '@@ -l,n +l,n @@' hunks with ' ', '-' and '+' lines"
            )
        states, summary, errors = await asyncio.to_thread(_plan, patches, ctx)
        if errors:
            raise ToolError("patch not applied; no file was changed:\n" + "\n".join(errors))
        changed = {p: s for p, s in states.items() if _changes(s)}
        diffs = []
        for path, state in changed.items():
            before = state.decoded.text if state.decoded else ""
            diffs.append(unified_diff(before, state.text or "", ctx.display(path)))
        shown = [ctx.display(p) for p in changed]
        if changed:
            what = f"edit {', '.join(shown)}" if len(shown) <= 3 else f"patch {len(shown)} files"
            await ctx.approve(
                ApprovalRequest(
                    action="edit", tool=self.name, summary=what, detail="\n".join(diffs)
                )
            )
            await asyncio.to_thread(_write_all, changed, ctx)
        return ok(
            f"Applied the patch to {len(patches)} file section(s):\n" + "\n".join(summary),
            {"files": shown},
        )


def _changes(state: _FileState) -> bool:
    if state.decoded is None:
        return state.text is not None
    if state.text is None:
        return True
    return state.text != state.decoded.text or state.mode is not None


def _load(path: Path, states: dict[Path, _FileState], ctx: ToolContext) -> _FileState:
    if path not in states:
        try:
            decoded: DecodedText | None = decode_bytes(
                read_file_bytes(path, ctx.roots, ctx.display(path))
            )
        except FileNotFoundError:
            decoded = None
        except IsADirectoryError:
            raise ToolError("is a directory") from None
        state = _FileState(decoded, decoded.text if decoded else None)
        if decoded is not None:
            state.codec = decoded
        states[path] = state
    return states[path]


def _plan(
    patches: list[FilePatch], ctx: ToolContext
) -> tuple[dict[Path, _FileState], list[str], list[str]]:
    """Apply everything in memory; collect an error per failing file instead of stopping."""
    states: dict[Path, _FileState] = {}
    summary: list[str] = []
    errors: list[str] = []
    for fp in patches:
        label = fp.target
        try:
            summary.append(_plan_one(fp, ctx, states))
        except ToolError as err:
            errors.append(f"  {label}: {err}")
    for path, state in states.items():
        if state.text is not None and _changes(state):
            try:
                state.data = state.codec.encode(state.text)
            except ToolError as err:
                errors.append(f"  {ctx.display(path)}: {err}")
    return states, summary, errors


def _plan_one(fp: FilePatch, ctx: ToolContext, states: dict[Path, _FileState]) -> str:
    if fp.binary:
        raise ToolError("binary patches are not supported; use write_file or the shell")
    source_name = fp.old_path if fp.old_path is not None else fp.new_path
    assert source_name is not None
    source = ctx.resolve_for_write(source_name)
    target = ctx.resolve_for_write(fp.new_path) if fp.new_path is not None else None
    shown = ctx.display(target or source)
    if fp.old_path is None:
        state = _load(source, states, ctx)
        if state.text is not None:
            raise ToolError(
                "the patch creates this file but it already exists; patch it as a modification "
                "(--- a/path) or use write_file"
            )
        base_lines: list[str] = []
        encoding_from = DecodedText("", "utf-8")
    else:
        state = _load(source, states, ctx)
        if state.text is None:
            raise ToolError(
                "the file does not exist; check the path (glob), or use --- /dev/null to create it"
            )
        base_lines = split_lines(state.text)
        encoding_from = state.decoded or DecodedText("", "utf-8")
    new_lines, placements = apply_hunks(base_lines, fp.hunks, strip_bom=bool(encoding_from.bom))
    new_text = "".join(new_lines)
    if fp.new_path is None:
        if new_text:
            raise ToolError(
                "the patch deletes this file but its hunks do not remove all of its content"
            )
        state.text = None
        return f"  D {shown}: deleted"
    assert target is not None
    if target != source:
        target_state = _load(target, states, ctx)
        if target_state.text is not None:
            raise ToolError(f"cannot rename or copy onto {shown}: it already exists")
        if fp.is_rename:
            state.text = None
        target_state.text = new_text
        target_state.mode = fp.new_mode
        target_state.codec = encoding_from
        verb = "renamed" if fp.is_rename else "copied"
        return f"  R {ctx.display(source)} -> {shown}: {verb}{_describe(placements)}"
    state.text = new_text
    if fp.new_mode is not None:
        state.mode = fp.new_mode
    if fp.old_path is None:
        return f"  A {shown}: created, {len(new_lines)} line(s)"
    return f"  M {shown}{_describe(placements)}"


def _describe(placements: list[HunkPlacement]) -> str:
    if not placements:
        return ""
    notes = []
    for p in placements:
        if p.offset or p.how != "exact":
            bits = [f"hunk {p.number} at line {p.line}"]
            if p.offset:
                bits.append(f"{p.offset:+d} lines from its header")
            if p.how != "exact":
                bits.append(p.how)
            notes.append(" ".join(bits[:1]) + (f" ({', '.join(bits[1:])})" if bits[1:] else ""))
    count = f": {len(placements)} hunk(s) applied"
    return count + (f"; {'; '.join(notes)}" if notes else "")


def _write_all(changed: dict[Path, _FileState], ctx: ToolContext) -> None:
    """Write every file; if the OS fails half way, put back the ones already written."""
    done: list[tuple[Path, bytes | None, int | None]] = []
    try:
        for path, state in changed.items():
            ctx.changes.record_before_write(path)
            try:
                old_bytes: bytes | None = read_file_bytes(path, ctx.roots)
            except FileNotFoundError:
                old_bytes = None
            old_mode = path.stat().st_mode & 0o7777 if old_bytes is not None else None
            if state.text is None:
                unlink_file(path, ctx.roots)
            else:
                assert state.data is not None
                mode = state.mode
                if mode is not None:
                    mode = patch_mode(mode, old_mode, _process_umask())
                atomic_write(path, state.data, mode, ctx.roots)
            done.append((path, old_bytes, old_mode))
    except OSError:
        for path, old_bytes, old_mode in reversed(done):
            if old_bytes is None:
                try:
                    unlink_file(path, ctx.roots)
                except FileNotFoundError:
                    pass
            else:
                atomic_write(path, old_bytes, old_mode, ctx.roots)
        raise
