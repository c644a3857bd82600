"""Hook overhead per tool call: a no-op hook vs none (issue #15).

Setup, all real and in this process: a temp workspace, the read_file tool, and the extension layer
(kcode.extensions.session.ExtensionRuntime.run_tool) that the agent loop calls around every tool call.
Three ways of running the same read_file call N times, interleaved in rounds so machine load hits
them alike:
  bare      run_tool directly (what the loop does without the extension layer)
  no hooks  through ExtensionRuntime.run_tool with no hook configured
  no-op     through ExtensionRuntime.run_tool with one PreToolUse hook `true` (a process per call,
            stdin JSON in, nothing out) — the cheapest hook a user can write
Figures (median per call, ms): the layer's own cost (no hooks - bare) and the hook's cost
(no-op - no hooks). The last line carries both and the no-op/no-hooks ratio.

    .venv/bin/python bench/hooks.py [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kcode.extensions.hook_config import HookSpec
from kcode.extensions.hooks import HookRunner
from kcode.extensions.session import ExtensionRuntime
from kcode.messages import ToolCall
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.registry import build_tools


async def measure(calls: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.txt").write_text("hello\n" * 50)
        tool = build_tools(["read_file"])["read_file"]
        call = ToolCall("c1", "read_file", {"path": "f.txt"})
        ctx = ToolContext(root=root)
        none = ExtensionRuntime(root=root, hooks=HookRunner([]))
        noop = ExtensionRuntime(
            root=root, hooks=HookRunner([HookSpec("PreToolUse", "", "true", 10, "bench", "user")])
        )

        async def bare() -> object:
            return await run_tool(tool, call, ctx)

        async def layered() -> object:
            return await none.run_tool(tool, call, ctx)

        async def hooked() -> object:
            return await noop.run_tool(tool, call, ctx)

        samples: dict[str, list[float]] = {"bare": [], "no hooks": [], "no-op hook": []}
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            for name, fn in (("bare", bare), ("no hooks", layered), ("no-op hook", hooked)):
                t0 = time.perf_counter()
                for _ in range(per_round):
                    result = await fn()
                    assert getattr(result, "ok", False)
                samples[name].append((time.perf_counter() - t0) / per_round * 1000)
        return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    ms = asyncio.run(measure(args.calls, args.rounds))
    for name, value in ms.items():
        print(f"{name:11} {value:7.3f} ms per read_file call")
    layer = ms["no hooks"] - ms["bare"]
    hook = ms["no-op hook"] - ms["no hooks"]
    ratio = ms["no-op hook"] / ms["no hooks"]
    print(
        f"hook overhead per tool call: {hook:.2f} ms (no-op hook vs none, {ratio:.1f}x); "
        f"extension layer without hooks: {layer:+.3f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
