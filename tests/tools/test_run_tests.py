"""run_tests against a real temporary pytest project, plus the output parsers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kcode.messages import ToolCall, ToolResult
from kcode.safety.approval import ApprovalDecision, ApprovalRequest
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.run_tests import RunTestsTool, detect_test_command
from kcode.tools.test_parsers import parse_cargo, parse_go, parse_js, parse_pytest


class Approver:
    def __init__(self, allow: bool = True) -> None:
        self.allow = allow
        self.requests: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(self.allow, "test")


def make_pytest_project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\nversion = '0'\n")
    (root / "tests/test_math.py").write_text(
        "def test_adds():\n    assert 1 + 1 == 2\n\n"
        "def test_subtracts():\n    assert 3 - 1 == 1, 'subtraction is broken'\n\n"
        "def test_multiplies():\n    assert 2 * 2 == 4\n"
    )
    # The project's own interpreter: run_tests must prefer .venv/bin/python over PATH.
    venv_python = root / ".venv/bin/python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f'#!/bin/sh\ntouch "$0.used"\nexec {sys.executable} "$@"\n')
    venv_python.chmod(0o755)
    return root


async def run_tests(ctx: ToolContext, **arguments: object) -> ToolResult:
    return await run_tool(RunTestsTool(), ToolCall("t", "run_tests", dict(arguments)), ctx)


async def test_detects_pytest_and_reports_structured_failures(tmp_path: Path) -> None:
    root = make_pytest_project(tmp_path / "proj")
    approver = Approver()
    ctx = ToolContext(root=root, approver=approver)
    result = await run_tests(ctx)
    assert result.ok, result.content
    data = result.data
    assert data is not None
    assert (data["passed"], data["failed"], data["errors"]) == (2, 1, 0)
    assert data["exit_code"] == 1
    assert data["failures"] == [
        {
            "test": "tests/test_math.py::test_subtracts",
            "message": "AssertionError: subtraction is broken",
        }
    ]
    assert "-m pytest -q -rfE" in data["command"] and ".venv/bin/python" in data["command"]
    assert (root / ".venv/bin/python.used").exists()
    assert result.content.startswith("2 passed, 1 failed, 0 errors (exit code 1)")
    assert ctx.last_tests == data
    (request,) = approver.requests
    # Outside git kcode cannot tell whether the model wrote conftest.py: not a trusted run.
    assert request.tool == "run_tests" and request.trusted_test_run is False


async def test_paths_narrow_the_run(tmp_path: Path) -> None:
    root = make_pytest_project(tmp_path / "proj")
    ctx = ToolContext(root=root)
    result = await run_tests(ctx, paths=["tests/test_math.py::test_adds"])
    assert result.data is not None
    assert (result.data["passed"], result.data["failed"]) == (1, 0)
    outside = await run_tests(ctx, paths=["../elsewhere"])
    assert not outside.ok and "outside the workspace" in outside.content


async def test_explicit_command_is_not_a_trusted_run(tmp_path: Path) -> None:
    approver = Approver()
    ctx = ToolContext(root=tmp_path, approver=approver)
    result = await run_tests(ctx, command="echo '3 passed in 0.01s'; echo pytest")
    assert result.data is not None and result.data["passed"] == 3
    assert approver.requests[0].trusted_test_run is False


async def test_denied_run_does_nothing(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path, approver=Approver(allow=False))
    result = await run_tests(ctx, command="touch ran.txt")
    assert not result.ok and "declined" in result.content
    assert not (tmp_path / "ran.txt").exists()
    assert ctx.last_tests is None


async def test_no_runner_detected_says_what_to_do(tmp_path: Path) -> None:
    result = await run_tests(ToolContext(root=tmp_path))
    assert not result.ok and "pass command" in result.content


def test_detection_of_other_runners(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"test": "vitest run"}}))
    assert detect_test_command(tmp_path, []).command == "npm test"
    (tmp_path / "package.json").unlink()
    (tmp_path / "go.mod").write_text("module x\n")
    assert detect_test_command(tmp_path, []).command == "go test ./..."
    (tmp_path / "go.mod").unlink()
    (tmp_path / "Cargo.toml").write_text("[package]\n")
    assert detect_test_command(tmp_path, []).command == "cargo test"


def test_pytest_summary_variants() -> None:
    assert parse_pytest("==== 3 failed, 10 passed, 1 error in 0.52s ====").as_data()["errors"] == 1
    s = parse_pytest("5 passed, 1 skipped, 2 warnings in 1.20s")
    assert (s.passed, s.failed, s.errors) == (5, 0, 0)
    s = parse_pytest("ERROR tests/test_x.py - ImportError: no module y\n1 error in 0.10s")
    assert (s.passed, s.failed, s.errors) == (0, 0, 1)
    assert s.failures == [{"test": "tests/test_x.py", "message": "ImportError: no module y"}]
    s = parse_pytest("no tests ran in 0.01s")
    assert (s.passed, s.failed) == (0, 0)


def test_go_cargo_and_js_summaries() -> None:
    go = "=== RUN TestA\n--- PASS: TestA (0.00s)\n--- FAIL: TestB (0.00s)\n    b_test.go:9: want 2\nFAIL\n"
    s = parse_go(go)
    assert (s.passed, s.failed) == (1, 1)
    assert s.failures == [{"test": "TestB", "message": "b_test.go:9: want 2"}]
    cargo = (
        "test tests::ok ... ok\ntest tests::bad ... FAILED\n\n---- tests::bad stdout ----\n"
        "thread 'tests::bad' panicked at src/lib.rs:9:5:\n"
        "test result: FAILED. 1 passed; 1 failed; 0 ignored\n"
    )
    s = parse_cargo(cargo)
    assert (s.passed, s.failed) == (1, 1) and s.failures[0]["test"] == "tests::bad"
    jest = "FAIL src/a.test.js\n  ● adds numbers\n\nTests:       1 failed, 4 passed, 5 total\n"
    s = parse_js(jest)
    assert (s.passed, s.failed) == (4, 1)
    assert s.failures == [{"test": "adds numbers", "message": "failed"}]
    node = "not ok 2 - subtracts\n# pass 3\n# fail 1\n"
    s = parse_js(node)
    assert (s.passed, s.failed) == (3, 1) and s.failures[0]["test"] == "subtracts"
