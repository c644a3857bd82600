"""spawn_agents(check=true): after the merge the project's tests and type check run once (real pytest
and mypy on a real git repo, through the parent's approver) and name the agent that broke them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from kcode.agents.checks import _attribute, _test_files, _type_errors, detect_type_check
from kcode.events import ApprovalRequested
from kcode.safety.approval import ApprovalDecision, ApprovalRequest
from tests.agents.helpers import finished, main_agent, make_repo, run
from tests.agents.test_orchestrator import MAIN, backend_for, spawn_result
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply

SHAPES = "def area(w: float, h: float) -> float:\n    return w * h\n"
OTHER = "def greet(name: str) -> str:\n    return 'hi ' + name\n"
TEST_SHAPES = "from shapes import area\n\n\ndef test_area() -> None:\n    assert area(2, 3) == 6\n"
TEST_OTHER = (
    "from other import greet\n\n\ndef test_greet() -> None:\n    assert greet('x') == 'hi x'\n"
)
PYPROJECT = '[tool.mypy]\nfiles = ["shapes.py", "other.py"]\n\n[tool.pytest.ini_options]\n'

needs_mypy = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy is not installed in this environment"
)


def edit(path: str, old: str, new: str) -> Reply:
    return Reply.tool_call(
        "edit_file", {"path": path, "edits": [{"old_string": old, "new_string": new}]}
    )


class Recorder:
    def __init__(self) -> None:
        self.requests: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(True, "test")


def project(root: Path) -> Path:
    repo = make_repo(
        root,
        {
            "shapes.py": SHAPES,
            "other.py": OTHER,
            "tests/test_shapes.py": TEST_SHAPES,
            "tests/test_other.py": TEST_OTHER,
            "pyproject.toml": PYPROJECT,
            ".gitignore": ".venv/\n.mypy_cache/\n__pycache__/\n.pytest_cache/\n",
        },
    )
    # The checks use the project's own interpreter (.venv/bin/python), here the one running pytest.
    venv = repo / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "python").chmod(0o755)
    return repo


def fan_out(check: bool, edits: dict[str, Reply]) -> dict[str, list[Reply]]:
    tasks = [{"role": "edit", "prompt": prompt} for prompt in edits]
    scripts: dict[str, list[Reply]] = {
        MAIN: [Reply.tool_call("spawn_agents", {"tasks": tasks, "check": check}), Reply.text("ok")]
    }
    for prompt, reply in edits.items():
        scripts[prompt] = [reply, Reply.text("RESULT: ok\nCHANGES: done\nNOTES: none")]
    return scripts


@needs_mypy
async def test_checks_after_the_merge_name_the_agent_that_broke_tests_and_types(
    tmp_path: Path,
) -> None:
    root = project(tmp_path / "repo")
    scripts = fan_out(
        True,
        {
            "break the area": edit("shapes.py", "return w * h", "return w + h"),
            "retype greet": edit("other.py", "-> str:\n    return", "-> int:\n    return"),
            "add a doc": edit("tests/test_other.py", "from other", "# greet tests\nfrom other"),
        },
    )
    approver = Recorder()
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, root, approver=approver), MAIN)
        await backend.aclose()

    result = spawn_result(events)
    assert result.data is not None, result.content
    checks: dict[str, Any] = result.data["checks"]
    assert not result.ok and not checks["ok"]
    tests, types = checks["runs"]
    assert tests["name"] == "tests" and not tests["ok"]
    assert [f["where"] for f in tests["failures"]] == ["tests/test_shapes.py::test_area"]
    assert types["name"] == "types (mypy)" and not types["ok"]
    assert checks["broken_by"] == {
        "edit-1": ["tests/test_shapes.py::test_area"],
        "edit-2": ["other.py:2"],
    }
    assert "Broken by edit-1's changes: tests/test_shapes.py::test_area" in result.content
    assert "edit-3" not in checks["broken_by"]
    # both checks went through the approver, like run_tests, in the parent's workspace
    asked = [r.summary for r in approver.requests if r.tool == "spawn_agents"]
    assert len(asked) == 2 and "-m pytest" in asked[0] and "-m mypy" in asked[1]
    assert [e for e in events if isinstance(e, ApprovalRequested) and e.tool == "spawn_agents"]
    # the main agent's verdict follows the red tests
    assert finished(events).reason == "failed"


async def test_checks_are_opt_in_and_skipped_when_nothing_changed(tmp_path: Path) -> None:
    root = project(tmp_path / "repo")
    approver = Recorder()
    scripts = fan_out(False, {"break the area": edit("shapes.py", "w * h", "w + h")})
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, root, approver=approver), MAIN)
        await backend.aclose()
    assert "checks" not in (spawn_result(events).data or {})
    assert not [r for r in approver.requests if r.tool == "spawn_agents"]

    scripts = {
        MAIN: [
            Reply.tool_call(
                "spawn_agents", {"tasks": [{"role": "search", "prompt": "look"}], "check": True}
            ),
            Reply.text("ok"),
        ],
        "look": [Reply.text("RESULT: ok\nNOTES: none")],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, root, approver=approver), MAIN)
        await backend.aclose()
    result = spawn_result(events)
    assert result.ok and "not run (no agent changed a file)" in result.content
    assert not [r for r in approver.requests if r.tool == "spawn_agents"]


def test_type_check_detection(tmp_path: Path) -> None:
    assert detect_type_check(tmp_path) is None
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    tool, command = detect_type_check(tmp_path) or ("", "")
    assert tool == "mypy" and command.endswith("-m mypy .")
    (tmp_path / "mypy.ini").unlink()
    (tmp_path / "tsconfig.json").write_text("{}")
    bin_dir = tmp_path / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "tsc").write_text("")
    assert detect_type_check(tmp_path) == ("tsc", "node_modules/.bin/tsc --noEmit -p .")


def test_failures_name_files_and_are_charged_to_the_agents_that_touched_them(
    tmp_path: Path,
) -> None:
    pytest_out = (
        "___________________ test_area ___________________\n"
        "    def test_area():\n>       assert area(2, 3) == 6\n"
        "src/geo/shapes.py:4: in area\n    return helper(w)\n"
        "tests/test_area.py:5: AssertionError\n"
        "FAILED tests/test_area.py::test_area - assert 5 == 6\n"
    )
    files = _test_files("tests/test_area.py::test_area", pytest_out, tmp_path)
    assert files == ["tests/test_area.py", "src/geo/shapes.py"]
    changed = {"edit-1": {"src/geo/shapes.py"}, "edit-2": {"README.md"}}
    assert _attribute(files, changed) == ["edit-1"]
    # no direct hit: the test file is named after the module an agent changed
    assert _attribute(["tests/test_units.py"], {"edit-3": {"lib/units.py"}}) == ["edit-3"]
    assert _attribute(["tests/test_units.py"], {"edit-3": {"lib/other.py"}}) == []
    # drift: one agent renamed area() in shapes.py, the other still calls it from report.py
    drift = "AttributeError: module 'geo.shapes' has no attribute 'area'"
    both = {"edit-1": {"geo/shapes.py"}, "edit-2": {"report.py"}, "edit-3": {"docs.md"}}
    assert _attribute(["tests/test_report.py", "report.py"], both, drift) == ["edit-1", "edit-2"]
    mypy_out = f"{tmp_path}/a.py:3: error: Incompatible return value  [return-value]\n"
    tsc_out = "src/x.ts(4,2): error TS2322: Type 'string' is not assignable to type 'number'.\n"
    errors = _type_errors(mypy_out + tsc_out, tmp_path)
    assert [(e.where, e.files) for e in errors] == [
        ("a.py:3", ["a.py"]),
        ("src/x.ts:4", ["src/x.ts"]),
    ]
