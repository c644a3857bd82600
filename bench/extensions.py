"""Costs of the extensions (issue #15), each against a baseline measured in the same run.

- first request: launch `kcode -p "Say OK"` to its first request reaching a local OpenAI-compatible
  server, with 5 configured stdio MCP servers vs none (runs alternate; target <= 1.2x: the servers
  start in the background);
- MCP round trip: one tool call through kcode's MCP path (the tool adapter, approval, the manager's
  thread, the SDK session) vs the same call made directly with the SDK's Client on its own
  connection to the same kind of server (target <= 1.3x);
- hook overhead per tool call: the same read_file call through the extension layer
  (ExtensionRuntime.run_tool, what the agent loop calls around every tool) with one no-op
  PreToolUse hook (`true`: a process per call, stdin JSON in, nothing out) vs no hook, in ms;
  also the layer's own cost vs calling the tool bare. The three variants run interleaved in rounds.
Each measurement is a function returning a dict, so more figures can join `main`.
Last line: all three figures.
Usage: python bench/extensions.py [--runs N] [--calls N] [--hook-calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import REPO, clean_env, kcode_exe

sys.path.insert(0, str(REPO))
from tests.fake_openai import FakeOpenAIServer, Reply

SERVERS = REPO / "tests" / "mcp" / "servers.py"


def stdio_entry(mode: str = "quiet") -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(SERVERS), mode]}


def first_request(runs: int) -> dict[str, float]:
    """Median launch -> first request (s) with 5 MCP servers and with none."""
    samples: dict[int, list[float]] = {0: [], 5: []}
    with (
        tempfile.TemporaryDirectory() as work,
        FakeOpenAIServer(lambda _b: Reply.text("OK")) as srv,
    ):
        env = clean_env(
            KCODE_BASE_URL=srv.base_url, KCODE_MODEL="fake", XDG_DATA_HOME=f"{work}/data",
            XDG_CONFIG_HOME=f"{work}/cfg",
        )  # fmt: skip
        mcp_json = Path(work) / "cfg" / "kcode" / "mcp.json"
        mcp_json.parent.mkdir(parents=True)
        for i in range(runs + 1):
            for count in (0, 5):
                servers = {f"s{n}": stdio_entry() for n in range(count)}
                mcp_json.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
                seen = len(srv.requests)
                t0 = time.monotonic()
                run = subprocess.run(
                    [kcode_exe(), "-p", "Say OK"], env=env, cwd=work, capture_output=True
                )
                chat = [r for r in srv.requests[seen:] if r.path.endswith("/chat/completions")]
                if not chat:
                    err = run.stderr.decode(errors="replace")[-600:]
                    sys.exit(f"kcode sent no request (exit {run.returncode}): {err}")
                if i:  # the first round warms caches
                    samples[count].append(chat[0].arrived - t0)
    none, five = statistics.median(samples[0]), statistics.median(samples[5])
    return {"none_s": none, "five_s": five, "ratio": five / none}


async def _round_trips(calls: int, root: Path) -> tuple[list[float], list[float]]:
    """Alternate one direct SDK call and one call through kcode, each on its own server process,
    so both see the same machine load."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from kcode.mcp.config import McpSetup, parse_server
    from kcode.mcp.manager import McpManager
    from kcode.mcp.tools import McpToolset
    from kcode.messages import ToolCall
    from kcode.safety.approval import NonInteractiveApprover
    from kcode.tools.base import ToolContext, run_tool
    from kcode.tools.registry import LazyTools

    entry = stdio_entry()
    server = parse_server("b", entry, "bench", "user", [])
    assert server is not None
    manager = McpManager(McpSetup([server]), root, root / "logs")
    toolset = McpToolset(LazyTools([]), manager)
    ctx = ToolContext(root=root, approver=NonInteractiveApprover("auto"))
    params = StdioServerParameters(command=entry["command"], args=entry["args"])
    direct: list[float] = []
    via_kcode: list[float] = []
    try:
        await manager.wait_ready(120)
        tool = toolset["mcp__b__echo"]
        async with Client(stdio_client(params), cache=None) as client:
            for i in range(calls + 5):  # the first 5 of each warm up
                t0 = time.perf_counter()
                plain = await client.call_tool("echo", {"text": f"x{i}"})
                t1 = time.perf_counter()
                result = await run_tool(tool, ToolCall(f"c{i}", tool.name, {"text": f"x{i}"}), ctx)
                t2 = time.perf_counter()
                assert not plain.is_error and result.ok, result.content
                if i >= 5:
                    direct.append(t1 - t0)
                    via_kcode.append(t2 - t1)
    finally:
        await manager.aclose()
    return direct, via_kcode


def mcp_round_trip(calls: int) -> dict[str, float]:
    """Median seconds per echo call: through kcode's MCP tool path vs the SDK client directly."""
    with tempfile.TemporaryDirectory() as work:
        direct, via_kcode = asyncio.run(_round_trips(calls, Path(work)))
    d, k = statistics.median(direct), statistics.median(via_kcode)
    return {"direct_ms": d * 1000, "kcode_ms": k * 1000, "ratio": k / d}


async def _hook_calls(calls: int, rounds: int) -> dict[str, float]:
    from kcode.extensions.hook_config import HookSpec
    from kcode.extensions.hooks import HookRunner
    from kcode.extensions.session import ExtensionRuntime
    from kcode.messages import ToolCall
    from kcode.tools.base import ToolContext, run_tool
    from kcode.tools.registry import build_tools

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.txt").write_text("hello\n" * 50)
        tool = build_tools(["read_file"])["read_file"]
        call = ToolCall("c1", "read_file", {"path": "f.txt"})
        ctx = ToolContext(root=root)
        none = ExtensionRuntime(root=root, hooks=HookRunner([]))
        noop_spec = HookSpec("PreToolUse", "", "true", 10, "bench", "user")
        noop = ExtensionRuntime(root=root, hooks=HookRunner([noop_spec]))

        async def bare() -> Any:
            return await run_tool(tool, call, ctx)

        async def layered() -> Any:
            return await none.run_tool(tool, call, ctx)

        async def hooked() -> Any:
            return await noop.run_tool(tool, call, ctx)

        samples: dict[str, list[float]] = {"bare": [], "none": [], "noop": []}
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            for name, fn in (("bare", bare), ("none", layered), ("noop", hooked)):
                t0 = time.perf_counter()
                for _ in range(per_round):
                    result = await fn()
                    assert result.ok, result.content
                samples[name].append((time.perf_counter() - t0) / per_round * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def hook_overhead(calls: int, rounds: int = 10) -> dict[str, float]:
    """Median ms per read_file call: bare, through the extension layer, with a no-op hook."""
    ms = asyncio.run(_hook_calls(calls, rounds))
    return {**ms, "hook_ms": ms["noop"] - ms["none"], "layer_ms": ms["none"] - ms["bare"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--hook-calls", type=int, default=200)
    args = parser.parse_args()
    first = first_request(args.runs)
    print(
        f"launch -> first request: {first['none_s']:.3f} s without MCP, {first['five_s']:.3f} s "
        f"with 5 stdio MCP servers (median of {args.runs})"
    )
    trip = mcp_round_trip(args.calls)
    print(
        f"MCP echo call: {trip['kcode_ms']:.2f} ms through kcode, {trip['direct_ms']:.2f} ms with "
        f"the SDK client directly (median of {args.calls})"
    )
    hook = hook_overhead(args.hook_calls)
    print(
        f"read_file call: {hook['bare']:.3f} ms bare, {hook['none']:.3f} ms through the extension "
        f"layer without hooks, {hook['noop']:.3f} ms with a no-op PreToolUse hook "
        f"(median of 10 rounds of {args.hook_calls // 10})"
    )
    print(
        f"first request with 5 MCP servers {first['ratio']:.2f}x (target <= 1.2); "
        f"MCP call via kcode {trip['ratio']:.2f}x the SDK (target <= 1.3); "
        f"no-op hook {hook['hook_ms']:.2f} ms per tool call (layer {hook['layer_ms']:+.3f} ms)"
    )


if __name__ == "__main__":
    main()
