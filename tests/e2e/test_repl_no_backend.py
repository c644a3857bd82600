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
    import importlib.util

    from kcode.backends.llama.models import bundled_model

    # With the bundled SmolLM2 installed (the Makefile does it) a bare `kcode` starts on it
    # (tests/e2e/test_local_real_e2e.py); a bare model name still names no backend.
    starts_bundled = bundled_model() is not None and importlib.util.find_spec("llama_cpp")
    bare = [] if starts_bundled else [[]]
    for args in [*bare, ["--model", "some-model"]]:
        child = pexpect.spawn(
            kcode_exe(), args, env=env, cwd=str(tmp_path), encoding="utf-8", timeout=30
        )
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 2
        assert "no model is configured" in child.before and "MOONSHOT_API_KEY" in child.before
