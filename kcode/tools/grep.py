"""The grep tool: regex search over the workspace (SPEC §5); see search_backend for the engines."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from kcode.messages import ToolResult
from kcode.safety.secrets import could_be_secret_name, may_read
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError, ok
from kcode.tools.confine import open_file
from kcode.tools.search_backend import FileHits, SearchOutcome, SearchQuery, ripgrep_lines, search

MAX_LINE_CHARS = 400


class GrepArgs(ToolArgs):
    pattern: str = Field(description="regex (ripgrep syntax)")
    path: str | None = Field(default=None, description="file or directory; default workspace")
    glob: str | None = Field(default=None, description="file filter, e.g. *.py or src/**/*.ts")
    ignore_case: bool = False
    context: int = Field(default=0, ge=0, le=20, description="lines around each match")
    output: Literal["content", "files", "count"] = "content"
    max_results: int = Field(default=200, ge=1, le=5000)


class GrepTool(Tool[GrepArgs]):
    name = "grep"
    description = (
        "Search file contents with a regex (ripgrep). Honours .gitignore, skips hidden and binary "
        "files. output: content (path:line:text), files, or count. Results sorted by path."
    )
    args_model = GrepArgs
    read_only = True

    async def run(self, args: GrepArgs, ctx: ToolContext) -> ToolResult:
        if not args.pattern:
            raise ToolError("pattern is empty; pass a regex to search for")
        target = ctx.resolve(args.path or ".")
        if not target.exists():
            raise ToolError(f"{args.path} does not exist; check the path with glob")
        if not target.is_dir():
            # ripgrep would block on a FIFO named explicitly; refuse anything but a plain file.
            os.close(open_file(target, ctx.roots, ctx.display(target)))
        query = SearchQuery(
            pattern=args.pattern,
            target=target,
            root=ctx.root,
            glob=args.glob,
            ignore_case=args.ignore_case,
            context=args.context,
            mode=args.output,
        )
        outcome = await search(query)
        skipped = _drop_secret_files(outcome, ctx)
        content, shown = format_outcome(outcome, args.output, args.max_results, args.context)
        if skipped:
            content += (
                f"\n[{skipped} secret file(s) (.env, keys, credentials) skipped; "
                "the user can allow them with allow_secrets]"
            )
        data = {
            "files": len(outcome.files),
            "matches": outcome.total_matches,
            "shown": shown,
            "backend": outcome.backend,
        }
        return ok(content, data)


def _drop_secret_files(outcome: SearchOutcome, ctx: ToolContext) -> int:
    rules = getattr(ctx.approver, "rules", None)
    every_file = rules is not None and rules.has("read")  # a read rule may name any path

    def keep(hits: FileHits) -> bool:
        if not every_file and not could_be_secret_name(hits.path.rsplit("/", 1)[-1]):
            return True
        return may_read(ctx, ctx.root / hits.path)

    kept = [f for f in outcome.files if keep(f)]
    skipped = len(outcome.files) - len(kept)
    outcome.files[:] = kept
    return skipped


def format_outcome(
    outcome: SearchOutcome, mode: str, max_results: int, context: int = 0
) -> tuple[str, int]:
    """The text the model sees and how many results it holds; the same for both engines."""
    if not outcome.files:
        return "no matches", 0
    if mode == "files":
        paths = [f.path for f in outcome.files[:max_results]]
        return _with_more_note(paths, len(outcome.files), "files"), len(paths)
    if mode == "count":
        rows = [f"{f.path}:{f.match_count}" for f in outcome.files[:max_results]]
        note = _with_more_note(rows, len(outcome.files), "files")
        return f"{note}\n({outcome.total_matches} matches in total)", len(rows)
    out: list[str] = []
    shown = 0
    for hits in outcome.files:
        if shown >= max_results:
            break
        shown = _append_file_lines(out, hits, max_results - shown, context, shown)
    return _with_more_note(out, outcome.total_matches, "matching lines", shown), shown


def _append_file_lines(
    out: list[str], hits: FileHits, budget: int, context: int, shown: int
) -> int:
    lines = hits.lines if hits.lines is not None else ripgrep_lines(hits.raw or b"")
    if context and out:
        out.append("--")
    previous = None
    used = 0
    for number, is_match, text in lines:
        if is_match:
            if used >= budget:
                break
            used += 1
        if context and previous is not None and number > previous + 1:
            out.append("--")
        previous = number
        text = text.rstrip("\r")
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + f" [... {len(text) - MAX_LINE_CHARS} more characters]"
        out.append(f"{hits.path}{':' if is_match else '-'}{number}{':' if is_match else '-'}{text}")
    return shown + used


def _with_more_note(rows: list[str], total: int, unit: str, shown: int | None = None) -> str:
    shown = len(rows) if shown is None else shown
    text = "\n".join(rows)
    if total > shown:
        text += (
            f"\n[{total - shown} more {unit} not shown; narrow the search with path or glob, "
            "or raise max_results]"
        )
    return text
