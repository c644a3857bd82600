"""A handful of real SWE-bench patches replayed through apply_patch and edit_file (bench/edit_fidelity.py
runs all of them)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = (REPO_ROOT / "../shared/data/edit-corpus").resolve()
# Plain cases, hunks at the wrong line numbers, and the one whose hunk text occurs twice in the file.
CASES = [
    "psf__requests-2317",
    "pytest-dev__pytest-5103",
    "sympy__sympy-11870",
    "sympy__sympy-14317",
    "sympy__sympy-16988",
]

pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"edit corpus not found at {CORPUS} (it lives next to the repo)"
)


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "edit_fidelity", REPO_ROOT / "bench/edit_fidelity.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("edit_fidelity", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", CASES)
async def test_corpus_case_reproduces_git_apply(case: str) -> None:
    if not (CORPUS / case).is_dir():
        pytest.skip(f"case {case} is not in {CORPUS}")
    bench = load_bench()
    outcome = await bench.run_case(CORPUS / case, git=None)
    assert outcome["apply_patch"], outcome["apply_patch:detail"]
    assert outcome["edit_file ctx3"], outcome["edit_file ctx3:detail"]
