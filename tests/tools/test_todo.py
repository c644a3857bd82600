"""The todo_write tool."""

from __future__ import annotations

from pathlib import Path

from kcode.messages import ToolCall
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.todo import TodoWriteTool


async def test_stores_and_renders_the_plan(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path)
    items = [
        {"text": "read the code", "status": "done"},
        {"text": "fix the bug", "status": "in_progress"},
        {"text": "run the tests", "status": "pending"},
    ]
    result = await run_tool(TodoWriteTool(), ToolCall("t", "todo_write", {"items": items}), ctx)
    assert result.ok
    assert result.content.splitlines() == [
        "[x] read the code",
        "[~] fix the bug",
        "[ ] run the tests",
        "(1/3 done)",
    ]
    assert ctx.todos == items


async def test_bad_status_is_rejected_and_plan_kept(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path, todos=[{"text": "keep me", "status": "pending"}])
    bad = {"items": [{"text": "x", "status": "finished"}]}
    result = await run_tool(TodoWriteTool(), ToolCall("t", "todo_write", bad), ctx)
    assert not result.ok and "items.0.status" in result.content
    blank = {"items": [{"text": "   ", "status": "done"}]}
    result = await run_tool(TodoWriteTool(), ToolCall("t", "todo_write", blank), ctx)
    assert not result.ok
    assert ctx.todos == [{"text": "keep me", "status": "pending"}]
