"""The todo_write tool: the plan the user sees (SPEC §5). The whole list is replaced each call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kcode.messages import ToolResult
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError, ok

STATUS_MARKS = {"pending": "[ ]", "in_progress": "[~]", "done": "[x]"}


class TodoItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    status: Literal["pending", "in_progress", "done"] = "pending"


class TodoWriteArgs(ToolArgs):
    items: list[TodoItem] = Field(description="the full plan; replaces the previous list")


def render_todos(items: list[dict[str, str]]) -> str:
    if not items:
        return "(todo list is empty)"
    return "\n".join(f"{STATUS_MARKS[i['status']]} {i['text']}" for i in items)


class TodoWriteTool(Tool[TodoWriteArgs]):
    name = "todo_write"
    description = (
        "Write the task plan shown to the user (replaces the whole list). Keep one item "
        "in_progress; mark items done as you finish them."
    )
    args_model = TodoWriteArgs
    read_only = True

    async def run(self, args: TodoWriteArgs, ctx: ToolContext) -> ToolResult:
        items = [{"text": i.text.strip(), "status": i.status} for i in args.items]
        if any(not i["text"] for i in items):
            raise ToolError("every todo item needs non-blank text")
        ctx.todos = items
        done = sum(i["status"] == "done" for i in items)
        return ok(f"{render_todos(items)}\n({done}/{len(items)} done)", {"items": items})
