"""The SPEC §4 JSON result object, built in one place for every command that prints one.

`kcode -p` (kcode.headless) and `kcode fix` (kcode.cli.commands.visual) both end with this object, so
`--output-format json` has the same fields whichever command ran.
"""

from __future__ import annotations

import time
from typing import Any

NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0}


def result_object(
    session_id: str | None, code: int, text: str | None, started: float, stats: dict[str, Any]
) -> dict[str, Any]:
    """`stats` is a TurnFinished's stats (the agent's totals so far); `started` a monotonic time."""
    return {
        "result": text,
        "exit_code": code,
        "session_id": session_id,
        "files_changed": stats.get("files_changed", []),
        "tests": stats.get("tests"),
        "usage": stats.get("usage", dict(NO_USAGE)),
        "duration_s": round(time.monotonic() - started, 3),
        "steps": stats.get("steps", 0),
        "critical_steps": stats.get("critical_steps", 0),
        "agents": stats.get("agents", []),
    }
