"""The one table from why a turn ended to the process exit code (SPEC §3), for every front end.

`kcode -p`, `kcode fix` and the REPL all map a `TurnFinished.reason` through here, so a new reason
gets its code in one place (tests/seam/test_protocol.py checks the table covers every TurnReason).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from kcode.events import TurnReason

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2  # bad flag, no model configured, unreadable image
BACKEND: Final = 3
APPROVAL: Final = 4
LIMIT: Final = 5  # --max-steps, token/cost budget, --timeout
INTERRUPTED: Final = 130

_TABLE: dict[TurnReason, int] = {
    "completed": OK,
    "failed": FAILED,
    "max_steps": LIMIT,
    "repeated_calls": LIMIT,
    "approval_required": APPROVAL,
    "backend_error": BACKEND,
    "budget_exceeded": LIMIT,
    "timeout": LIMIT,
    "cancelled": INTERRUPTED,
    "error": FAILED,
    "stopped_by_hook": FAILED,  # a hook stopped the run: finished, not successfully
}
EXIT_CODES: Final = MappingProxyType(_TABLE)

# Reasons after which a multi-turn front end (the fix loop) must stop instead of starting another
# turn: nothing the next turn does can succeed (no backend, no approval, no budget, user said stop).
ENDS_RUN: Final[frozenset[TurnReason]] = frozenset(
    {
        "backend_error",
        "approval_required",
        "budget_exceeded",
        "timeout",
        "cancelled",
        "stopped_by_hook",
    }
)


def exit_code(reason: TurnReason) -> int:
    """The exit code for a turn that ended with `reason`."""
    return _TABLE[reason]
