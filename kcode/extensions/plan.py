"""Plan mode (`--approval plan`, `/plan`, Shift-Tab): only read tools run; the turn ends with a plan.

Two guards: the approval policy refuses every edit and command in `plan` (kcode.safety.approval), and
`gate` refuses any tool that is not known to be read-only before it starts (MCP tools included,
since kcode cannot know what they change). The front end asks the user to approve the plan; on
approval the same session carries it out in the mode it had before.
"""

from __future__ import annotations

from typing import Any

from kcode.messages import ToolCall

PLAN_MODE = "plan"
READ_TOOLS = frozenset({"read_file", "grep", "glob", "view_image", "todo_write", "skill"})
PLAN_REMINDER = (
    "\n\n[kcode plan mode] Only read tools run now (read_file, grep, glob, view_image, "
    "todo_write, search sub-agents); edits and commands are refused. Investigate what you need, then "
    "answer with a concrete numbered plan: which files change and how, and how to verify it. Do "
    "not make the changes: the user reviews the plan first."
)
APPROVED_MESSAGE = "The plan above is approved. Carry it out now, then verify it."


def approval_mode(approver: Any) -> str:
    """The mode of an approver, looking through wrappers (a sub-agent's approver wraps the parent's)."""
    for _ in range(4):
        mode = getattr(approver, "mode", None)
        if isinstance(mode, str):
            return mode
        approver = getattr(approver, "inner", None)
        if approver is None:
            break
    return ""


def gate(call: ToolCall) -> str | None:
    """Why `call` may not run in plan mode, or None when it may."""
    if call.name in READ_TOOLS:
        return None
    if call.name == "spawn_agents":
        tasks = call.arguments.get("tasks")
        if isinstance(tasks, list) and all(
            isinstance(t, dict) and t.get("role") == "search" for t in tasks
        ):
            return None
    return (
        f"plan mode: `{call.name}` does not run while planning (only read tools and search "
        "sub-agents do). Finish investigating and answer with your plan; the user approves it "
        "before anything changes."
    )
