"""kill -9 and Ctrl-C runs of the real `kcode -p`: resumable sessions, whole files, no orphans."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.safety.interrupts import interrupt_once


@pytest.mark.slow  # chaos: real kcode runs killed at random moments (~50 s each)
@pytest.mark.parametrize("how", ["kill", "int"])
def test_interrupted_runs_leave_a_resumable_session_whole_files_and_no_orphans(
    tmp_path: Path, how: str
) -> None:
    rng = random.Random(f"{how}-5")
    runs = corrupt = orphans = unrecoverable = 0
    details: list[str] = []
    for i in range(12):
        report = interrupt_once(tmp_path / str(i), how, rng, resume=i % 4 == 0)
        runs += report.runs
        corrupt += report.corrupt_files
        orphans += report.orphans if how == "int" else 0
        unrecoverable += report.unrecoverable
        details += report.details
    assert runs == 12
    assert (corrupt, orphans, unrecoverable) == (0, 0, 0), details
