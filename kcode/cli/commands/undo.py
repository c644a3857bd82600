"""`kcode undo [N]`: put back the files the last N turns of the latest session changed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from kcode.vcs.checkpoints import CheckpointError, latest_session_checkpoints

if TYPE_CHECKING:
    from kcode.cli.parse import Invocation


def undo_command(inv: Invocation) -> int:
    """Undo the last N turns of the latest session here, including changes made by shell commands."""
    from kcode.cli.main import CommandFailed
    from kcode.cli.parse import root_of

    n: int = inv["n"]
    try:
        checkpoints = latest_session_checkpoints(root_of(inv))
        report = checkpoints.undo(n)
    except CheckpointError as err:
        raise CommandFailed(str(err)) from None
    from kcode.safety.terminal_text import visible

    for line in report.lines():  # file names the repository chose: escapes shown, not sent
        sys.stdout.write(visible(line, one_line=True) + "\n")
    if report.failed:
        return 1
    if report.restored or report.removed:  # else lines() already said there was nothing to undo
        sys.stdout.write(
            f"undid {n} turn(s) of session {checkpoints.session_id}: "
            f"{len(report.restored)} restored, {len(report.removed)} removed\n"
        )
    return 0
