"""After a fan-out is merged: run the project's checks once and say which agents' changes broke them.

Opt-in (`spawn_agents(..., check=true)`): a test suite can take minutes and needs an approval, and
most fan-outs (searches) change nothing. Skipped, with a note, when no agent changed a file.

Checks: the tests, with the command run_tests detects (pytest/npm/go/cargo), and a type check where
the project has one: mypy (mypy.ini, .mypy.ini, [tool.mypy] in pyproject.toml, [mypy] in setup.cfg),
pyright (pyrightconfig.json, [tool.pyright]) when pyright is installed, tsc (tsconfig.json) when
node_modules/.bin/tsc or tsc is there. Each goes through the parent's approval and sandbox exactly
like run_tests: a shell approval that auto-edit grants only when the runner's own config files are
as committed (or the sandbox is on).

Attribution (cheap: one run, no reverts; re-running the suite once per agent with its merge
reverted would multiply the cost by the number of agents). Each failure names files: a failing test
its test file and the files in its traceback section, a type error its file; and modules its message
quotes ("module 'shapes' has no attribute 'area'"). A failure is charged to every agent whose merged
changes touched one of those files or modules, so two agents that drifted apart (one renamed, one
still calls the old name) are both named; failing that, to the agents that changed the module the
failing test file is named after (tests/test_shapes.py -> shapes.py). Anything else is listed as not
attributed (it may have been failing before the fan-out). This is a pointer for the model, not a
verdict.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kcode.agents.subtasks import SubAgentResult
from kcode.messages import ToolResult
from kcode.safety.approval import ApprovalRequest
from kcode.tools.base import ToolContext, ToolError
from kcode.tools.process import run_process, scrubbed_env, wrap_command
from kcode.tools.run_tests import (
    MIN_TEST_TIMEOUT_S,
    changed_runner_configs,
    detect_test_command,
    python_for,
)
from kcode.tools.test_parsers import parse_output
from kcode.vcs.gitcmd import ALL_CODES, GitError, run_git_async

TYPE_CONFIGS = ("mypy.ini", ".mypy.ini", "pyrightconfig.json", "tsconfig.json")
MAX_LISTED = 12
_MYPY = re.compile(r"^([^\s:][^:\n]*?\.pyi?):(\d+):(?:\d+:)? error: (.*)$", re.MULTILINE)
_PYRIGHT = re.compile(r"^\s+(\S[^\n]*?\.pyi?):(\d+):\d+ - error: (.*)$", re.MULTILINE)
_TSC = re.compile(r"^([^\s(][^(\n]*?\.[cm]?tsx?)\((\d+),\d+\): error (.*)$", re.MULTILINE)
_SECTION = re.compile(r"^_{3,} (.+?) _{3,}$", re.MULTILINE)
_PATH_IN_TRACE = re.compile(r"^([\w./-]+\.\w+):\d+:", re.MULTILINE)


@dataclass
class Failure:
    where: str  # test id, or path:line for a type error
    message: str
    files: list[str]  # files the failure names (workspace-relative)
    agents: list[str] = field(default_factory=list)


@dataclass
class CheckRun:
    name: str  # tests | types
    command: str
    ok: bool
    summary: str
    failures: list[Failure] = field(default_factory=list)


@dataclass
class ChecksReport:
    runs: list[CheckRun] = field(default_factory=list)
    note: str = ""  # why nothing (or not everything) ran

    def broken_by(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for run in self.runs:
            for failure in run.failures:
                for agent in failure.agents:
                    out.setdefault(agent, []).append(failure.where)
        return out

    def unattributed(self) -> list[str]:
        return [f.where for r in self.runs for f in r.failures if not f.agents]

    def as_data(self) -> dict[str, Any]:
        return {
            "ok": all(r.ok for r in self.runs),
            "note": self.note,
            "runs": [
                {
                    "name": r.name,
                    "command": r.command,
                    "ok": r.ok,
                    "summary": r.summary,
                    "failures": [
                        {
                            "where": f.where,
                            "message": f.message,
                            "files": f.files,
                            "agents": f.agents,
                        }
                        for f in r.failures
                    ],
                }
                for r in self.runs
            ],
            "broken_by": self.broken_by(),
            "unattributed": self.unattributed(),
        }

    def lines(self) -> list[str]:
        if not self.runs:
            return [f"Checks after the merge: not run ({self.note or 'nothing to check'})."]
        head = "; ".join(f"{r.name}: {r.summary} (`{r.command}`)" for r in self.runs)
        out = [f"Checks after the merge: {head}" + (f"; {self.note}" if self.note else "")]
        for agent, wheres in self.broken_by().items():
            out.append(f"Broken by {agent}'s changes: {_listing(wheres)}")
        if self.unattributed():
            out.append(
                f"Failing, not attributed to an agent (maybe failing before): "
                f"{_listing(self.unattributed())}"
            )
        return out


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def attach_checks(result: ToolResult, report: ChecksReport) -> ToolResult:
    data = dict(result.data or {})
    data["checks"] = report.as_data()
    content = "\n".join([result.content, *report.lines()])
    ok = result.ok and all(r.ok for r in report.runs)
    return ToolResult(result.call_id, ok, content, data, result.images)


# --- detection ---------------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def detect_type_check(root: Path) -> tuple[str, str] | None:
    """(tool, command) of the project's type check, or None when it has none kcode can run."""
    pyproject, setup_cfg = _read(root / "pyproject.toml"), _read(root / "setup.cfg")
    mypy_ini = next((root / n for n in ("mypy.ini", ".mypy.ini") if (root / n).is_file()), None)
    if mypy_ini or "[tool.mypy]" in pyproject or "[mypy]" in setup_cfg:
        config = _read(mypy_ini) if mypy_ini else pyproject + setup_cfg
        # Without `files` in its config mypy needs a target; the workspace it is.
        target = "" if re.search(r"^\s*files\s*=", config, re.MULTILINE) else " ."
        return "mypy", f"{shlex.quote(python_for(root))} -m mypy{target}"
    if (root / "pyrightconfig.json").is_file() or "[tool.pyright]" in pyproject:
        local = root / "node_modules" / ".bin" / "pyright"
        if local.is_file():
            return "pyright", "node_modules/.bin/pyright"
        if shutil.which("pyright"):
            return "pyright", "pyright"
    if (root / "tsconfig.json").is_file():
        if (root / "node_modules" / ".bin" / "tsc").is_file():
            return "tsc", "node_modules/.bin/tsc --noEmit -p ."
        if shutil.which("tsc"):
            return "tsc", "tsc --noEmit -p ."
    return None


# --- running -----------------------------------------------------------------------------------


async def _trusted(ctx: ToolContext) -> bool:
    """Like run_tests: a detected runner is a trusted test run only if the files it executes first
    (and the type checkers' configs, which name plugins) are as committed, or the sandbox is on."""
    if ctx.sandbox != "off":
        return True
    changed = await asyncio.to_thread(changed_runner_configs, ctx.root)
    if changed != []:
        return False
    # The hardened runner: a plain `git status` would run the repository's core.fsmonitor.
    try:
        proc = await run_git_async(
            ctx.root, "status", "--porcelain", "--", *TYPE_CONFIGS, ok_codes=ALL_CODES
        )
    except GitError:
        return False
    return proc.returncode == 0 and not proc.stdout.strip()


async def _run(ctx: ToolContext, command: str, trusted: bool) -> tuple[str, int | None, bool]:
    await ctx.approve(
        ApprovalRequest(
            action="shell", tool="spawn_agents", summary=command, trusted_test_run=trusted
        )
    )
    timeout_s = max(ctx.limits.shell_timeout_s, MIN_TEST_TIMEOUT_S)
    budget = max(ctx.limits.max_output_chars * 4, 100_000)
    env = {**scrubbed_env(), "COLUMNS": "250"}
    argv = wrap_command(["bash", "-c", command], ctx)
    result = await run_process(argv, ctx.root, timeout_s, budget, env=env)
    return result.output, result.exit_code, result.timed_out


async def run_checks(ctx: ToolContext, results: list[SubAgentResult]) -> ChecksReport:
    report = ChecksReport()
    changed = {a.id: set(a.files_changed) for a in results if a.files_changed}
    if not changed:
        report.note = "no agent changed a file"
        return report
    trusted = await _trusted(ctx)
    notes = []
    try:
        test = detect_test_command(ctx.root, [])
    except ToolError:
        test = None
        notes.append("no test runner detected")
    if test is not None:
        output, code, timed_out = await _run(ctx, test.command, trusted)
        summary = parse_output(test.runner, output)
        data = {**summary.as_data(), "exit_code": code, "command": test.command}
        ctx.last_tests = data  # the main agent's verdict follows the latest test run
        failures = [
            Failure(f["test"], f["message"], _test_files(f["test"], output, ctx.root))
            for f in summary.failures
        ]
        red = bool(summary.failed or summary.errors or timed_out or (code not in (0, None)))
        if red and not failures:
            failures = [Failure(test.command, _tail(output), [])]
        counts = f"{summary.passed} passed, {summary.failed} failed, {summary.errors} errors"
        if timed_out:
            counts += ", timed out"
        report.runs.append(CheckRun("tests", test.command, not red, counts, failures))
    typing = detect_type_check(ctx.root)
    if typing is None:
        notes.append("no type check configured")
    else:
        tool, command = typing
        output, code, timed_out = await _run(ctx, command, trusted)
        failures = _type_errors(output, ctx.root)
        red = code != 0 or timed_out
        if red and not failures:
            failures = [Failure(command, _tail(output), [])]
        summary_text = f"{len(failures)} error(s)" if red else "clean"
        report.runs.append(CheckRun(f"types ({tool})", command, not red, summary_text, failures))
    report.note = "; ".join(notes)
    for run in report.runs:
        for failure in run.failures:
            failure.agents = _attribute(failure.files, changed, failure.message)
    return report


def _tail(output: str, lines: int = 5) -> str:
    return "\n".join(output.rstrip("\n").splitlines()[-lines:])


# --- attribution -------------------------------------------------------------------------------


def _rel(path: str, root: Path) -> str:
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute():
        try:
            p = p.relative_to(PurePosixPath(root.as_posix()))
        except ValueError:
            return p.as_posix()
    parts = [x for x in p.parts if x != "."]
    return "/".join(parts)


def _test_files(test_id: str, output: str, root: Path) -> list[str]:
    files = [_rel(test_id.split("::", 1)[0], root)]
    name = test_id.split("::")[-1].split("[", 1)[0]
    sections = list(_SECTION.finditer(output))
    for i, section in enumerate(sections):
        title = section.group(1).split(".")[-1].split("[", 1)[0]
        if title != name:
            continue
        end = sections[i + 1].start() if i + 1 < len(sections) else len(output)
        for match in _PATH_IN_TRACE.finditer(output, section.end(), end):
            files.append(_rel(match.group(1), root))
    return list(dict.fromkeys(files))


def _type_errors(output: str, root: Path) -> list[Failure]:
    out = []
    for pattern in (_MYPY, _PYRIGHT, _TSC):
        for path, line, message in pattern.findall(output):
            rel = _rel(path.strip(), root)
            out.append(Failure(f"{rel}:{line}", message.strip(), [rel]))
    return out


def _attribute(files: list[str], changed: dict[str, set[str]], message: str = "") -> list[str]:
    modules = _named_modules(message)
    direct = [
        agent
        for agent, paths in changed.items()
        if paths & set(files) or any(_module_of(p) in modules for p in paths)
    ]
    if direct:
        return direct
    stems = {_tested_stem(f) for f in files} - {""}
    return [
        agent
        for agent, paths in changed.items()
        if any(PurePosixPath(p).stem in stems for p in paths)
    ]


def _tested_stem(path: str) -> str:
    stem = PurePosixPath(path).stem
    for prefix, suffix in (("test_", ""), ("", "_test"), ("", ".test"), ("", ".spec")):
        if prefix and stem.startswith(prefix):
            return stem[len(prefix) :]
        if suffix and stem.endswith(suffix):
            return stem[: -len(suffix)]
    return ""


_QUOTED = re.compile(r"""["'`]([A-Za-z_][\w.]*)["'`]""")


def _named_modules(message: str) -> set[str]:
    """Module names a failure quotes ("module 'shapes' has no attribute 'area'", mypy's
    'Module "pkg.shapes" has no attribute'): two agents that drifted apart both get named, the
    one whose file fails and the one whose module no longer has what the other expects."""
    names: set[str] = set()
    for quoted in _QUOTED.findall(message):
        names.add(quoted)
        names.add(quoted.rsplit(".", 1)[-1])
    return names


def _module_of(path: str) -> str:
    p = PurePosixPath(path)
    if p.suffix not in (".py", ".pyi", ".ts", ".tsx", ".js", ".mjs", ".cjs"):
        return ""
    return p.parent.name if p.stem in ("__init__", "index") else p.stem
