"""The REPL's words for tools: a call as one line (`grep "def main" src`), its outcome in a few
words (`12 passed, 1 failed`), a coloured diff and a todo list. Every string is untrusted (model
arguments, tool output): controls are made visible and nothing is read as rich markup."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from kcode.ui.redacted_text import visible

EDIT_TOOLS = ("write_file", "edit_file", "apply_patch")


def shorten(text: str, limit: int = 60) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


# The arguments are the model's, as it sent them: shown before (or without) any validation, so a
# `paths` of numbers or a `tasks` that is 5 must give a plainer line, not a TypeError that ends the
# turn or, replayed from the session log, every resume of it.
_SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, OverflowError)


def tool_label(name: str, args: dict[str, Any]) -> str:
    """`grep "def main" src` — the call as a user would type it, on one line, controls visible."""
    try:
        label = _tool_label(name, args if isinstance(args, dict) else {})
    except _SHAPE_ERRORS:
        label = str(name)
    return visible(label, one_line=True)


def _tool_label(name: str, args: dict[str, Any]) -> str:
    if name == "grep":
        where = f" {args['path']}" if args.get("path") else ""
        return f'grep "{shorten(args.get("pattern", ""), 40)}"{where}'
    if name == "glob":
        return f"glob {args.get('pattern', '')}"
    if name == "shell":
        return f"shell {shorten(args.get('command', ''), 70)}"
    if name == "run_tests":
        return (
            f"run_tests {shorten(args.get('command') or ' '.join(args.get('paths') or []))}".strip()
        )
    if name == "spawn_agents":
        return f"spawn_agents ({len(args.get('tasks') or [])} tasks)"
    if name == "todo_write":
        return f"todo_write ({len(args.get('items') or [])} items)"
    if name == "apply_patch":
        files = [
            line[6:].strip()
            for line in str(args.get("patch", "")).splitlines()
            if line.startswith("+++ b/")
        ]
        return f"apply_patch {', '.join(files) or ''}".strip()
    if "path" in args:
        return f"{name} {args['path']}"
    return name


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def tool_outcome(name: str, ok: bool, content: str, data: dict[str, Any] | None) -> str:
    """What came back, in a few words: `3 files`, `12 passed, 1 failed`, or the error's first line."""
    try:
        outcome = _tool_outcome(name, ok, content, data if isinstance(data, dict) else None)
    except _SHAPE_ERRORS:  # an MCP server's or a hook's `data` can be any shape
        outcome = "done" if ok else "failed"
    return visible(outcome, one_line=True)


def _tool_outcome(name: str, ok: bool, content: str, data: dict[str, Any] | None) -> str:
    data = data or {}
    lines = [line for line in content.splitlines() if line.strip()]
    if not ok:
        return shorten(lines[0] if lines else "failed", 80)
    if name == "run_tests" and "passed" in data:
        parts = [f"{data.get('passed', 0)} passed", f"{data.get('failed', 0)} failed"]
        if data.get("errors"):
            parts.append(f"{data['errors']} errors")
        return ", ".join(parts)
    if name in ("grep", "glob"):
        count = data.get("count", data.get("matches"))
        if isinstance(count, int):
            return _plural(count, "match" if name == "grep" else "file").replace(
                "matchs", "matches"
            )
        if lines and lines[0].lower().startswith("no "):
            return shorten(lines[0])
        files = {line.split(":", 1)[0] for line in lines if not line.startswith("[")}
        return _plural(len(files), "file")
    if name == "read_file":
        return _plural(int(data.get("lines", len(lines))), "line")
    if name == "shell":
        code = data.get("exit_code")
        return f"exit {code}, {_plural(max(len(lines) - 1, 0), 'line')}"
    if name == "spawn_agents":
        return shorten(lines[0] if lines else "done")
    return shorten(lines[0] if lines else "done", 80)


def diff_text(diff: str) -> Text:
    """A unified diff coloured the usual way: additions green, removals red, hunks cyan."""
    out = Text()
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = "dim"
        out.append(visible(line) + "\n", style=style)
    return out


TODO_MARKS = {"done": "✓", "in_progress": "▶", "pending": "○"}


def todo_text(items: list[dict[str, Any]]) -> Text:
    out = Text()
    for item in items:
        if not isinstance(item, dict):
            continue
        status = str(item.get("status", "pending"))
        style = {"done": "dim strike", "in_progress": "bold yellow"}.get(status, "")
        text = visible(str(item.get("text", "")), one_line=True)
        out.append(f"  {TODO_MARKS.get(status, '○')} {text}\n", style=style)
    return out
