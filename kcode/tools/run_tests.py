"""The run_tests tool: run the project's tests and return structured results (SPEC §5).

Under auto-edit the detected runner is allowed without asking (a "trusted test run") only when the
files that runner executes before any test (conftest.py, pytest.ini/pyproject.toml/setup.cfg/
tox.ini addopts and plugins, package.json scripts, Makefile, Cargo build.rs, go.mod, ...) are as
committed in HEAD, or when the sandbox is on. A model that wrote or changed one of them this session
(or any uncommitted change to one) gets asked first: otherwise `run_tests` would run model-written
hooks with no approval. Test files themselves still run: the sandbox is the boundary for those.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from kcode.messages import ToolResult
from kcode.safety.approval import ApprovalRequest
from kcode.safety.json_input import loads_json
from kcode.safety.workspace_files import UnsafeFile, read_workspace_file
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError
from kcode.tools.process import run_process, scrubbed_env, wrap_command
from kcode.tools.test_parsers import TestSummary, parse_output
from kcode.vcs.gitcmd import ALL_CODES, GitError, run_git

LOG_TAIL_LINES = 40
MAX_LISTED_FAILURES = 20
MIN_TEST_TIMEOUT_S = 600.0  # test suites often outlast the shell default


class RunTestsArgs(ToolArgs):
    command: str | None = Field(default=None, description="test command; default: detected")
    paths: list[str] | None = Field(default=None, description="test files/dirs/ids to run")


@dataclass(frozen=True)
class TestCommand:
    runner: str  # pytest | npm | go | cargo | custom
    command: str


def python_for(root: Path) -> str:
    """The project's virtualenv interpreter when it has one, else the python on PATH."""
    for venv in (".venv", "venv"):
        candidate = root / venv / "bin" / "python"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("python") or shutil.which("python3") or "python3"


# Project files read to guess the test runner: a FIFO named pyproject.toml blocked the event loop
# for ever (deaf to Ctrl-C), and setup.cfg -> /dev/zero read until memory ran out.
MAX_PROJECT_FILE = 1024 * 1024


def _project_text(root: Path, name: str) -> str:
    """A regular file of the workspace, at most MAX_PROJECT_FILE bytes; "" for anything else."""
    try:
        data = read_workspace_file(root, name, MAX_PROJECT_FILE)
    except UnsafeFile:
        return ""
    return data.decode("utf-8", "replace") if data is not None else ""


def _has_npm_test_script(root: Path) -> bool:
    try:
        scripts = loads_json(_project_text(root, "package.json")).get("scripts") or {}
    except (ValueError, AttributeError):
        return False
    test = scripts.get("test") if isinstance(scripts, dict) else None
    return isinstance(test, str) and "no test specified" not in test


def _looks_like_pytest(root: Path) -> bool:
    if (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        return True
    for config, marker in (("pyproject.toml", "[tool.pytest"), ("setup.cfg", "[tool:pytest]")):
        if marker in _project_text(root, config):
            return True
    if (root / "tests").is_dir() and any((root / "tests").glob("*.py")):
        return True
    return any(root.glob("test_*.py")) or any(root.glob("*_test.py"))


def detect_test_command(root: Path, paths: list[str]) -> TestCommand:
    quoted = " ".join(shlex.quote(p) for p in paths)
    pytest = TestCommand(
        "pytest", f"{shlex.quote(python_for(root))} -m pytest -q -rfE {quoted}".strip()
    )
    if _looks_like_pytest(root):
        return pytest
    if _has_npm_test_script(root):
        return TestCommand("npm", f"npm test -- {quoted}".strip().removesuffix(" --"))
    if (root / "go.mod").is_file():
        return TestCommand("go", f"go test {quoted or './...'}")
    if (root / "Cargo.toml").is_file():
        return TestCommand("cargo", f"cargo test {quoted}".strip())
    if (root / "pyproject.toml").is_file() or (root / "setup.cfg").is_file():
        return pytest
    raise ToolError(
        "no test runner detected (looked for pytest config/tests, package.json with a test "
        "script, go.mod, Cargo.toml); pass command, e.g. command='make test'"
    )


RUNNER_CONFIG_NAMES = {
    "conftest.py", "pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", "setup.py",
    "sitecustomize.py", "usercustomize.py", "package.json", ".npmrc", ".yarnrc", ".yarnrc.yml",
    "Makefile", "GNUmakefile", "build.rs", "Cargo.toml", "go.mod", "go.work", ".cargo",
}  # fmt: skip
RUNNER_CONFIG_PREFIXES = ("jest.config", "vitest.config", "babel.config", ".babelrc", "vite.config")


def changed_runner_configs(root: Path) -> list[str] | None:
    """Runner-executed config files that differ from HEAD (None: not a git repo, cannot tell)."""
    # Through the hardened runner: a plain `git status` would run the repository's core.fsmonitor.
    try:
        proc = run_git(root, "status", "--porcelain", "-uall", "-z", ok_codes=ALL_CODES, timeout=30)
    except GitError:
        return None
    if proc.returncode != 0:
        return None
    changed = []
    for entry in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        path = entry[3:]
        parts = path.split("/")
        name = parts[-1]
        if (
            name in RUNNER_CONFIG_NAMES
            or name.startswith(RUNNER_CONFIG_PREFIXES)
            or name.endswith(".pth")
            or ".cargo" in parts
        ):
            changed.append(path)
    return changed


def runner_of(command: str) -> str:
    for needle, runner in (("pytest", "pytest"), ("go test", "go"), ("cargo", "cargo")):
        if needle in command:
            return runner
    if any(word in command for word in ("npm", "yarn", "pnpm", "jest", "vitest", "node")):
        return "npm"
    return "custom"


def describe_run(summary: TestSummary, exit_code: int | None, log: str, timed_out: bool) -> str:
    if summary.passed is None and summary.failed is None:
        head = "could not read test counts from the output"
    else:
        head = f"{summary.passed} passed, {summary.failed} failed, {summary.errors} errors"
    status = "timed out; the test run was killed" if timed_out else f"exit code {exit_code}"
    parts = [f"{head} ({status})"]
    if summary.failures:
        listed = summary.failures[:MAX_LISTED_FAILURES]
        parts.append("failures:\n" + "\n".join(f"- {f['test']}: {f['message']}" for f in listed))
        if len(summary.failures) > len(listed):
            parts.append(f"... and {len(summary.failures) - len(listed)} more")
    tail = "\n".join(log.rstrip("\n").splitlines()[-LOG_TAIL_LINES:])
    parts.append(f"log tail:\n{tail}" if tail else "(no output)")
    return "\n".join(parts)


class RunTestsTool(Tool[RunTestsArgs]):
    name = "run_tests"
    description = (
        "Run the project's tests (pytest/npm/go/cargo detected, or your command) and get passed/"
        "failed/errors counts, the failing tests with messages, and a log tail."
    )
    args_model = RunTestsArgs
    exclusive: ClassVar[bool] = True

    async def run(self, args: RunTestsArgs, ctx: ToolContext) -> ToolResult:
        paths = args.paths or []
        for path in paths:
            ctx.resolve(path.split("::", 1)[0])  # refuses paths outside the workspace
        if args.command is not None and args.command.strip():
            extra = " ".join(shlex.quote(p) for p in paths)
            command = f"{args.command.strip()} {extra}".strip()
            test = TestCommand(runner_of(command), command)
        else:
            test = detect_test_command(ctx.root, paths)
        trusted = args.command is None
        if trusted and ctx.sandbox == "off":
            changed = await asyncio.to_thread(changed_runner_configs, ctx.root)
            trusted = changed == []
        await ctx.approve(
            ApprovalRequest(
                action="shell",
                tool="run_tests",
                summary=test.command,
                trusted_test_run=trusted,
            )
        )
        timeout_s = max(ctx.limits.shell_timeout_s, MIN_TEST_TIMEOUT_S)
        budget = max(ctx.limits.max_output_chars * 4, 100_000)  # parsed, then only a tail shown
        # A wide "terminal" so runners (pytest's summary lines) do not cut failure messages.
        env = {**scrubbed_env(), "COLUMNS": "250"}
        argv = wrap_command(["bash", "-c", test.command], ctx)
        result = await run_process(argv, ctx.root, timeout_s, budget, env=env)
        summary = parse_output(test.runner, result.output)
        data = {
            **summary.as_data(),
            "exit_code": result.exit_code,
            "command": test.command,
            "timed_out": result.timed_out,
        }
        ctx.last_tests = data
        content = describe_run(summary, result.exit_code, result.output, result.timed_out)
        return ToolResult(call_id="", ok=not result.timed_out, content=content, data=data)
