"""The glob tool: find files by name pattern, newest first (SPEC §5)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import Field

from kcode.messages import ToolResult
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError, ok
from kcode.tools.ignore import GlobFilter, walk_file_stats


class GlobArgs(ToolArgs):
    pattern: str = Field(description="e.g. **/*.py, src/**/test_*.ts, *.{js,css}")
    path: str | None = Field(default=None, description="directory to search; default workspace")


def find_files(
    top: Path, root: Path, pattern: str, roots: tuple[Path, ...] | None = None
) -> list[tuple[float, str]]:
    """(mtime, display path) of files under `top` matching `pattern`, .gitignore honoured.

    The walk is descriptor-relative with O_NOFOLLOW from the allowed `roots` (default: `root`), so
    a directory swapped for a symlink mid-walk is not followed (kcode.tools.confine)."""
    matcher = GlobFilter(pattern)
    found = []
    for path, st in walk_file_stats(top, roots or (root,)):
        relative = path.relative_to(top).as_posix() if path != top else path.name
        if not matcher.accepts(relative):
            continue
        try:
            display = path.relative_to(root).as_posix()
        except ValueError:
            display = str(path)
        found.append((st.st_mtime, display))
    # Newest first; ties by path so the order is stable.
    found.sort(key=lambda item: (-item[0], item[1]))
    return found


class GlobTool(Tool[GlobArgs]):
    name = "glob"
    description = (
        "Find files by glob (*.py matches at any depth; src/**/*.ts; {a,b}). Honours .gitignore, "
        "skips hidden files. Newest first."
    )
    args_model = GlobArgs
    read_only = True

    async def run(self, args: GlobArgs, ctx: ToolContext) -> ToolResult:
        if not args.pattern.strip():
            raise ToolError("pattern is empty; pass a glob such as **/*.py")
        top = ctx.resolve(args.path or ".")
        if not top.is_dir():
            raise ToolError(f"{args.path} is not a directory; pass a directory as path")
        found = await asyncio.to_thread(find_files, top, ctx.root, args.pattern, ctx.roots)
        if not found:
            return ok(f"no files match {args.pattern}", {"count": 0, "shown": 0})
        cap = ctx.limits.glob_max_results
        lines = [display for _, display in found[:cap]]
        if len(found) > cap:
            lines.append(
                f"[{len(found) - cap} more files not shown; use a narrower pattern or path]"
            )
        return ok("\n".join(lines), {"count": len(found), "shown": min(cap, len(found))})
