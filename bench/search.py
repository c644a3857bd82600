"""Benchmark: the grep tool against plain ripgrep on the same queries over a large tree.

    .venv/bin/python bench/search.py [DIR] [--queries Q ...] [--runs N] [--fallback-runs N]

DIR defaults to the Python standard library. For each query the tool (through run_tool, default
content output) and plain `rg -n` with the same ignore flags run alternately; the figure is the median
over queries of (median tool time / median rg time). The pure-Python fallback is timed the same way,
and all three must find the same (path, line) matches. The LAST line is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kcode.messages import ToolCall
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.grep import GrepTool
from kcode.tools.search_backend import (
    RG_BASE_ARGS,
    SearchQuery,
    ripgrep_lines,
    search,
)

DEFAULT_QUERIES = ["import", r"\bself\b", r"def \w+_(test|check)", r"\w+\s*\(\s*\)"]


def plain_rg(rg: str, root: Path, pattern: str) -> bytes:
    argv = [rg, *RG_BASE_ARGS, "--line-number", "--no-heading", "--regexp", pattern, "--", "."]
    return subprocess.run(argv, cwd=root, capture_output=True, check=False).stdout


def rg_match_set(out: bytes) -> set[tuple[str, int]]:
    found = set()
    for row in out.splitlines():
        raw_path, _, rest = row.partition(b"\0")
        path = raw_path.decode("utf-8", "surrogateescape").removeprefix("./")
        found.add((path, int(rest.split(b":", 1)[0])))
    return found


async def tool_match_set(root: Path, pattern: str, fallback: bool) -> set[tuple[str, int]]:
    outcome = await search(SearchQuery(pattern, root, root), force_fallback=fallback)
    found = set()
    for hits in outcome.files:
        lines = hits.lines if hits.lines is not None else ripgrep_lines(hits.raw or b"")
        found.update((hits.path, number) for number, is_match, _ in lines if is_match)
    return found


async def time_tool(ctx: ToolContext, pattern: str) -> float:
    start = time.perf_counter()
    result = await run_tool(GrepTool(), ToolCall("b", "grep", {"pattern": pattern}), ctx)
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise SystemExit(f"grep tool failed on {pattern!r}: {result.content}")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--queries", nargs="+", default=DEFAULT_QUERIES)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fallback-runs", type=int, default=1)
    opts = parser.parse_args()
    rg = shutil.which("rg")
    if rg is None:
        raise SystemExit("ripgrep (rg) is not on PATH; the benchmark compares against it")
    os.environ.pop("KCODE_GREP_FALLBACK", None)
    root = Path(opts.dir).resolve()
    ctx = ToolContext(root=root)
    ratios, fallback_ratios, same = [], [], True
    for pattern in opts.queries:
        plain_rg(rg, root, pattern)  # warm the page cache
        tool_times, rg_times = [], []
        for _ in range(opts.runs):
            tool_times.append(await time_tool(ctx, pattern))
            start = time.perf_counter()
            plain_rg(rg, root, pattern)
            rg_times.append(time.perf_counter() - start)
        fallback_times = []
        for _ in range(opts.fallback_runs):
            start = time.perf_counter()
            await search(SearchQuery(pattern, root, root), force_fallback=True)
            fallback_times.append(time.perf_counter() - start)
        expected = rg_match_set(plain_rg(rg, root, pattern))
        matches_agree = (
            await tool_match_set(root, pattern, False)
            == expected
            == await tool_match_set(root, pattern, True)
        )
        same = same and matches_agree
        rg_median = statistics.median(rg_times)
        ratio = statistics.median(tool_times) / rg_median
        fallback_ratio = statistics.median(fallback_times) / rg_median
        ratios.append(ratio)
        fallback_ratios.append(fallback_ratio)
        print(
            f"{pattern!r:28} matches={len(expected):7d} rg={rg_median * 1000:7.1f}ms "
            f"tool/rg={ratio:5.2f} fallback/rg={fallback_ratio:6.1f} "
            f"same={'yes' if matches_agree else 'NO'}"
        )
    print(f"tree: {root}; runs per query: {opts.runs}")
    print(
        f"{statistics.median(ratios):.2f} tool/rg (fallback {statistics.median(fallback_ratios):.1f}x"
        f" rg, same matches: {'yes' if same else 'no'})"
    )


if __name__ == "__main__":
    asyncio.run(main())
