"""Cached tool schemas: identical to the live ones, and used without importing the tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kcode.tools.registry import ROLE_TOOLS, TOOL_CLASSES, LazyTools, build_tools, tool_specs
from kcode.tools.spec_cache import cached_tool_specs


def test_cached_specs_equal_the_live_specs(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    names = ROLE_TOOLS["main"]
    live = tool_specs(build_tools(names))
    assert cached_tool_specs(names) == live  # miss: built and written
    [cache_file] = list((tmp_path / "kcode").glob("tool-specs-*.json"))
    assert set(json.loads(cache_file.read_text())) == set(TOOL_CLASSES)
    assert cached_tool_specs(names) == live  # hit
    assert cached_tool_specs(ROLE_TOOLS["search"]) == [
        s for s in live if s.name in ROLE_TOOLS["search"]
    ]


def test_a_warm_cache_sends_schemas_without_importing_tools_or_pydantic(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    probe = (
        "import sys\n"
        "from kcode.tools.spec_cache import cached_tool_specs\n"
        "from kcode.tools.registry import ROLE_TOOLS, LazyTools\n"
        "specs = cached_tool_specs(ROLE_TOOLS['main'])\n"
        "tools = LazyTools(ROLE_TOOLS['main'])\n"
        "print(len(specs), sorted(tools) == sorted(ROLE_TOOLS['main']),"
        " 'pydantic' in sys.modules, 'kcode.tools.grep' in sys.modules)\n"
    )
    run = [sys.executable, "-c", probe]
    subprocess.run(run, env=env, check=True, capture_output=True)  # fills the cache
    out = subprocess.run(run, env=env, check=True, capture_output=True, text=True).stdout
    assert out.split() == ["11", "True", "False", "False"]


def test_lazy_tools_build_on_first_use() -> None:
    tools = LazyTools(ROLE_TOOLS["search"])
    assert list(tools) == list(ROLE_TOOLS["search"]) and len(tools) == 3
    assert tools["grep"].name == "grep"
    assert tools.get("shell") is None
