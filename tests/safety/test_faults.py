"""Randomised API faults over many turns: every turn completes or ends with the documented error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.safety.faults import run_fault_injection


@pytest.mark.slow  # chaos: many turns of randomised faults (~20 s)
async def test_randomised_faults_lose_no_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    workdir = tmp_path / "ws"
    workdir.mkdir()
    report = await run_fault_injection(workdir, turns=120, seed=11)
    assert report.faults >= 200, report
    assert report.lost == 0, report
    assert report.bad_log_lines == 0, report
    assert report.completed > report.turns * 0.9, report
