"""`kcode undo [N]`: put back the files the last N turns of the latest session changed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kcode.vcs.checkpoints import CheckpointError, latest_session_checkpoints


def undo_command(
    n: Annotated[int, typer.Argument(help="how many turns to undo")] = 1,
    cwd: Annotated[Path | None, typer.Option("-C", "--cwd", help="workspace directory")] = None,
) -> None:
    """Undo the last N turns of the latest session here, including changes made by shell commands."""
    root = (cwd or Path.cwd()).resolve()
    try:
        checkpoints = latest_session_checkpoints(root)
        report = checkpoints.undo(n)
    except CheckpointError as err:
        sys.stderr.write(f"kcode: {err}\n")
        raise typer.Exit(2) from None
    for line in report.lines():
        sys.stdout.write(line + "\n")
    if report.restored or report.removed:  # else lines() already said there was nothing to undo
        sys.stdout.write(
            f"undid {n} turn(s) of session {checkpoints.session_id}: "
            f"{len(report.restored)} restored, {len(report.removed)} removed\n"
        )
