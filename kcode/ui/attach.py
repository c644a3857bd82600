"""`@path` mentions put the file in the message, as Claude Code and Aider do.

The file is read by the read_file tool itself, with the session's tool context, so an attachment
obeys exactly what the model's own reads obey: workspace confinement, the secret-file refusal, `deny
read(...)` rules, and the size cap (with its "read on from line N" note). A directory becomes a
listing. What could not be read is said in the message instead of silently dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MAX_ATTACH_LINES = 500  # the model can read on with read_file; the note says from where
MAX_LISTED = 200


async def attach_mentions(files: list[str], root: Path, ctx: Any) -> tuple[str, list[str]]:
    """The text to append to the message, and one short line per file for the user."""
    from kcode.messages import ToolCall
    from kcode.tools.base import run_tool
    from kcode.tools.read_file import ReadFileTool

    blocks: list[str] = []
    notes: list[str] = []
    tool = ReadFileTool()
    for index, raw in enumerate(dict.fromkeys(files)):
        path = Path(os.path.realpath(root / os.path.expanduser(raw)))
        if path.is_dir():
            names = sorted(os.listdir(path))
            shown = [n + ("/" if (path / n).is_dir() else "") for n in names[:MAX_LISTED]]
            more = f"\n… and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
            blocks.append(
                f'<directory path="{raw}">\n' + "\n".join(shown) + more + "\n</directory>"
            )
            notes.append(f"attached @{raw} (directory, {len(names)} entries)")
            continue
        call = ToolCall(f"mention-{index}", "read_file", {"path": raw, "limit": MAX_ATTACH_LINES})
        result = await run_tool(tool, call, ctx)
        if result.ok:
            lines = result.content.count("\n") + 1
            blocks.append(f'<file path="{raw}">\n{result.content}\n</file>')
            notes.append(f"attached @{raw} ({lines} lines)")
        else:
            first = (result.content.splitlines() or ["unreadable"])[0]
            blocks.append(f'<file path="{raw}" error="not attached">{first}</file>')
            notes.append(f"@{raw} not attached: {first}")
    return "\n\n".join(blocks), notes
