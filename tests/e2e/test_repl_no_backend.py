"""`kcode` (what `make run` starts) with no model configured exits 2 and says how to set one."""

from __future__ import annotations

from pathlib import Path

import pexpect
import pytest

from tests.e2e.conftest import kcode_exe

pytestmark = pytest.mark.slow


def test_no_model_configured_exits_2_with_how_to(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    env = {k: v for k, v in kcode_env.items() if k not in ("KCODE_API_KEY", "KCODE_MODEL")}
    env["HF_HOME"] = str(tmp_path / "empty-hf-cache")
    for args in ([], ["--model", "some-model"]):  # a bare model name names no backend either
        child = pexpect.spawn(
            kcode_exe(), args, env=env, cwd=str(tmp_path), encoding="utf-8", timeout=30
        )
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 2
        assert "no model is configured" in child.before and "MOONSHOT_API_KEY" in child.before
