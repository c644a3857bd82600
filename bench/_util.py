"""Small helpers shared by the benchmark scripts (timing subprocesses, medians)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def kcode_exe() -> str:
    exe = VENV_BIN / "kcode"
    return str(exe) if exe.exists() else "kcode"


def time_command(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of `runs` executions (after one warm-up run)."""
    samples = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
        )
        if i:
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KCODE_", "OPENAI_", "MOONSHOT_"))
    }
    env.update(extra)
    return env
