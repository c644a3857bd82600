from __future__ import annotations

import os
from pathlib import Path

from kcode.tools.base import ToolContext
from tests.tools.conftest import CallTool, DenyAll, RecordingApprover, call_tool


async def test_creates_file_and_parent_dirs(workspace: Path, tool: CallTool) -> None:
    result = await tool("write_file", path="pkg/sub/mod.py", content="x = 1\ny = 2\n")
    assert result.ok and "Created" in result.content and "2 line" in result.content
    assert (workspace / "pkg/sub/mod.py").read_bytes() == b"x = 1\ny = 2\n"
    assert not [p for p in (workspace / "pkg/sub").iterdir() if p.name.startswith(".")]


async def test_overwrite_keeps_mode(workspace: Path, tool: CallTool) -> None:
    script = workspace / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o755)
    result = await tool("write_file", path="run.sh", content="echo new\n")
    assert result.ok and "Overwrote" in result.content
    assert script.read_text() == "echo new\n"
    assert os.stat(script).st_mode & 0o777 == 0o755


async def test_overwrite_keeps_crlf_and_bom(workspace: Path, tool: CallTool) -> None:
    target = workspace / "win.txt"
    target.write_bytes(b"\xef\xbb\xbfold\r\n")
    await tool("write_file", path="win.txt", content="new\nlines\n")
    assert target.read_bytes() == b"\xef\xbb\xbfnew\r\nlines\r\n"


async def test_asks_for_approval_with_a_diff(
    workspace: Path, tool: CallTool, approver: RecordingApprover
) -> None:
    (workspace / "a.txt").write_text("old\n")
    await tool("write_file", path="a.txt", content="new\n")
    (request,) = approver.requests
    assert request.action == "edit" and request.summary == "edit a.txt"
    assert "-old" in request.detail and "+new" in request.detail


async def test_denied_approval_changes_nothing(workspace: Path) -> None:
    (workspace / "a.txt").write_text("old\n")
    ctx = ToolContext(root=workspace, approver=DenyAll())
    result = await call_tool(ctx, "write_file", path="a.txt", content="new\n")
    assert not result.ok and "declined" in result.content
    assert (workspace / "a.txt").read_text() == "old\n"
    created = await call_tool(ctx, "write_file", path="b.txt", content="new\n")
    assert not created.ok and not (workspace / "b.txt").exists()


async def test_outside_workspace_refused(workspace: Path, tool: CallTool) -> None:
    result = await tool("write_file", path="../escape.txt", content="x")
    assert not result.ok and "outside the workspace" in result.content
    assert not (workspace.parent / "escape.txt").exists()


async def test_records_original_for_undo(workspace: Path) -> None:
    (workspace / "a.txt").write_text("old\n")
    ctx = ToolContext(root=workspace)
    await call_tool(ctx, "write_file", path="a.txt", content="new\n")
    assert ctx.changes.originals[workspace / "a.txt"] == b"old\n"
    assert ctx.changes.changed_paths(ctx.root) == ["a.txt"]
