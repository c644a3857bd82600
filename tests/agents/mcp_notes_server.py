"""A real MCP server (the SDK's `MCPServer`) for the sub-agent tool tests, over stdio.

    python mcp_notes_server.py NOTES_FILE

`lookup` is marked read-only (readOnlyHint); `write_note` appends to NOTES_FILE and is not.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    notes = Path(sys.argv[1])
    server = MCPServer("notes", log_level="ERROR")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def lookup(key: str) -> str:
        """Look a key up (reads only)."""
        return f"value of {key}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False))
    def write_note(text: str) -> str:
        """Append a note to the notes file."""
        with notes.open("a", encoding="utf-8") as f:
            f.write(text + "\n")
        return "noted"

    server.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
