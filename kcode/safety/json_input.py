"""Parsing JSON and TOML that kcode did not write: model output, a repository's files, a server's or
a hook's answer.

Python's parsers recurse once per nesting level, so `[[[[…` 200,000 deep raises RecursionError,
which is not the ValueError every caller handles: one line of model output or one file in a
hostile repository ended the run with "internal error". These wrappers turn it into the parser's own
error (json.JSONDecodeError, tomllib.TOMLDecodeError; both are ValueErrors), which callers report.
"""

from __future__ import annotations

import json
from typing import Any

TOO_DEEP = "nested too deeply to parse"
# Tool-call arguments nested deeper are refused (events and the session log walk them recursively);
# real schemas, MCP ones included, stay far below.
MAX_ARGUMENT_DEPTH = 100


def loads_json(text: str | bytes, max_depth: int | None = None) -> Any:
    """json.loads; with `max_depth`, a value nested deeper is refused too. Use it for data that
    kcode walks recursively afterwards (events, the session log): a tool call's arguments 900
    levels deep parse, then crash the first recursive walk."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(TOO_DEEP, text if isinstance(text, str) else "", 0) from None
    if max_depth is not None and _deeper_than(value, max_depth):
        raise json.JSONDecodeError(f"nested more than {max_depth} levels deep", "", 0)
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]  # iterative: the point is not to recurse
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_toml(text: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(TOO_DEEP) from None
