"""Turn test-runner output into counts and failures: pytest, go test, cargo test, jest/vitest/node.

Best effort beyond pytest: when nothing is recognised the counts stay None and the log tail speaks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class TestSummary:
    passed: int | None = None
    failed: int | None = None
    errors: int | None = None
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "failures": self.failures,
        }


def _count(text: str, pattern: str) -> int | None:
    found = re.findall(pattern, text, re.MULTILINE)
    return sum(int(n) for n in found) if found else None


# "==== 3 failed, 10 passed, 1 error in 0.52s ====" and "1 passed, 2 warnings in 0.1s" (-q),
# "no tests ran in 0.01s", "2 errors in 0.3s", "5 passed, 1 xfailed, 2 subtests passed".
PYTEST_SUMMARY = re.compile(
    r"^(?:=+ )?(?P<body>(?:\d+ [a-z ]+?(?:, )?)+|no tests ran) in [\d.]+\s*s", re.MULTILINE
)


def parse_pytest(output: str) -> TestSummary:
    text = ANSI.sub("", output)
    summaries = PYTEST_SUMMARY.findall(text)
    summary = TestSummary()
    if summaries:
        counts = {
            label.strip(): int(n) for n, label in re.findall(r"(\d+) ([a-z ]+)", summaries[-1])
        }
        summary.passed = counts.get("passed", 0)
        summary.failed = counts.get("failed", 0)
        summary.errors = counts.get("errors", counts.get("error", 0))
    for kind, test, message in re.findall(
        r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", text, re.MULTILINE
    ):
        summary.failures.append({"test": test, "message": (message or kind.lower()).strip()})
    return summary


def parse_go(output: str) -> TestSummary:
    text = ANSI.sub("", output)
    summary = TestSummary(
        passed=len(re.findall(r"^\s*--- PASS: ", text, re.M)),
        failed=len(re.findall(r"^\s*--- FAIL: ", text, re.M)),
        errors=len(re.findall(r"^(?:FAIL\s+\S+\s+\[(?:build|setup) failed\]|# \S+)", text, re.M)),
    )
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s*--- FAIL: (\S+)", line)
        if m:
            detail = next(
                (ln.strip() for ln in lines[i + 1 : i + 4] if ln.strip() and "---" not in ln),
                "failed",
            )
            summary.failures.append({"test": m.group(1), "message": detail})
    if not (summary.passed or summary.failed or summary.errors) and not re.search(
        r"^(ok|FAIL|PASS)\b", text, re.M
    ):
        return TestSummary()
    return summary


def parse_cargo(output: str) -> TestSummary:
    text = ANSI.sub("", output)
    results = re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", text)
    if not results:
        return TestSummary(errors=1 if "error[" in text or "error:" in text else None)
    summary = TestSummary(
        passed=sum(int(p) for p, _ in results), failed=sum(int(f) for _, f in results), errors=0
    )
    for test in re.findall(r"^test (\S+) \.\.\. FAILED", text, re.M):
        panic = re.search(rf"---- {re.escape(test)} stdout ----\n(?:.*\n)?.*panicked at (.*)", text)
        summary.failures.append({"test": test, "message": panic.group(1) if panic else "failed"})
    return summary


def parse_js(output: str) -> TestSummary:
    """jest/vitest ("Tests: 1 failed, 3 passed" / "Tests  1 failed | 3 passed") and node:test."""
    text = ANSI.sub("", output)
    summary = TestSummary()
    line = re.search(r"^\s*Tests:?\s+(.*)$", text, re.M)
    if line:
        summary.passed = _count(line.group(1), r"(\d+) passed") or 0
        summary.failed = _count(line.group(1), r"(\d+) failed") or 0
        summary.errors = 0
    else:
        passed = _count(text, r"^[#ℹ] pass (\d+)")
        failed = _count(text, r"^[#ℹ] fail (\d+)")
        if passed is not None or failed is not None:
            summary.passed, summary.failed, summary.errors = passed or 0, failed or 0, 0
    for test in re.findall(r"^\s*(?:●|FAIL|×|✕)\s+(.+?)\s*$", text, re.M):
        if not re.match(r"^\S+\.(?:[cm]?[jt]sx?)$", test):  # jest's "FAIL path/file.test.js"
            summary.failures.append({"test": test, "message": "failed"})
    for test in re.findall(r"^not ok \d+ - (.+)$", text, re.M):
        summary.failures.append({"test": test, "message": "failed"})
    return summary


PARSERS = {"pytest": parse_pytest, "go": parse_go, "cargo": parse_cargo, "npm": parse_js}


def parse_output(runner: str, output: str) -> TestSummary:
    """Parse with the runner's parser, trying the others when it recognises nothing."""
    order = [runner, *(name for name in PARSERS if name != runner)]
    for name in order:
        parser = PARSERS.get(name)
        if parser is None:
            continue
        summary = parser(output)
        if summary.passed is not None or summary.failed is not None:
            return summary
    return TestSummary()
