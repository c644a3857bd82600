"""How much of the parallelism the model asks for does kcode turn into wall-clock time?

Setup: the fake OpenAI-compatible server (tests/fake_openai.py, in its own process so it does not
compete with the agents for the GIL) answers every request after a fixed LATENCY_S to first token.
The main agent makes one spawn_agents call with N search sub-agents; each sub-agent takes K model
steps (K-1 read_file calls, then its answer); then the main agent answers. Everything else is real
and in this process: Agent loop, orchestrator, tools, OpenAIBackend over HTTP.

Each N runs with --max-parallel 1 (the baseline: every model call in sequence) and with
--max-parallel N, best of --repeat runs each (the serial N=64 run, ~60 s, only once). Figures:
  speedup     = wall(max-parallel 1) / wall(max-parallel N)
  ideal       = steps / critical_steps = (2 + K*N) / (2 + K): what perfect concurrency would give
  efficiency  = speedup / ideal
  overhead    = (wall(parallel) - critical_steps * LATENCY_S) / steps, in ms per model call: the
                time kcode adds on top of the model's own latency, spread over all model calls
  kcode cpu   = this process's CPU time (time.process_time) in the parallel run / steps: kcode's
                own cost per model call, which machine load does not inflate the way it inflates
                wall time
  server cpu  = the fake server process's CPU time over the same run / steps (from /proc): it
                shares the cores with kcode, so a costly fake server would slow kcode's figures
  load        = the 1-minute load average when the row was measured (os.getloadavg, as `uptime`
                shows it): on a shared machine, a high load explains low efficiency that low CPU
                per call says is not kcode's
  peak memory = the process's peak RSS (ru_maxrss) after the run
  accounting  = kcode's CPU per model call with cost accounting and budgets on (a run budget and a
                price, so every streamed delta is estimated and checked: kcode.agents.budget) minus
                the same run with no meter at all, at the largest N, best of --repeat each

    .venv/bin/python bench/swarm.py            # N = 1, 4, 16, 64
    .venv/bin/python bench/swarm.py --n 1 4    # a quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kcode.agents.budget import Limits, RunBudget
from kcode.agents.loop import Agent
from kcode.agents.orchestrator import Orchestrator
from kcode.agents.prices import Price, PriceTable
from kcode.backends.base import BackendOptions
from kcode.backends.openai.api import OpenAIBackend
from kcode.events import TurnFinished
from kcode.messages import Message
from kcode.safety.approval import AllowAll
from kcode.tools.base import Tool, ToolContext
from kcode.tools.registry import ROLE_TOOLS, TOOL_CLASSES, build_tools

LATENCY_S = 0.3
K = 3
MAIN = "MAIN: fan out"


def tools_for(role: str) -> dict[str, Tool[Any]]:
    names = []
    for name in ROLE_TOOLS[role]:
        try:
            importlib.import_module(TOOL_CLASSES[name][0])
        except ImportError:
            continue  # a tool not written yet; read_file and spawn_agents are all this needs
        if role == "main" or name != "spawn_agents":
            names.append(name)
    return build_tools(names)


def task_prompt(i: int) -> str:
    return f"task {i:03d}: find where item {i} is defined"


def script(n: int) -> dict[str, Any]:
    def reply(**kw: Any) -> dict[str, Any]:
        return {"delay_s": LATENCY_S, **kw}

    tasks = [{"role": "search", "prompt": task_prompt(i)} for i in range(n)]
    scripts: dict[str, Any] = {
        MAIN: [
            reply(tool_calls=[{"name": "spawn_agents", "arguments": {"tasks": tasks}}]),
            reply(text="all found"),
        ]
    }
    for i in range(n):
        steps = [
            reply(
                tool_calls=[{"name": "read_file", "arguments": {"path": "notes.txt", "offset": s}}]
            )
            for s in range(1, K)
        ]
        steps.append(reply(text=f"RESULT: ok\nFINDINGS:\n- notes.txt:1 item {i}\nNOTES: none"))
        scripts[task_prompt(i)[:8]] = steps
    return {"scripts": scripts}


class Server:
    """tests/fake_openai.py in a child process, killed on exit."""

    def __init__(self, replies: dict[str, Any], workdir: Path) -> None:
        path = workdir / f"script-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(replies))
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_openai", "--script", str(path)],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()

    def cpu_s(self) -> float:
        """The server's CPU seconds so far (user + system), or NaN where /proc does not exist."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def run_once(
    n: int, max_parallel: int, workdir: Path, accounting: bool = False
) -> tuple[float, dict[str, Any]]:
    server = Server(script(n), workdir)
    backend = OpenAIBackend(
        server.base_url, "key", "fake-model", max_concurrency=max_parallel, max_retries=0
    )
    try:
        ctx = ToolContext(root=workdir, approver=AllowAll())
        agent = Agent(
            backend=backend,
            tools=tools_for("main"),
            ctx=ctx,
            system_prompt="You are the main agent.",
            options=BackendOptions(model="fake-model"),
            max_steps=10,
        )
        if accounting:  # caps far above the run's use: everything is checked, nothing stops
            prices = PriceTable({"fake-model": Price(1.0, 0.1, 2.0)})
            agent.meter = RunBudget(Limits(10**12, 10.0**6), prices).meter("main")
        ctx.spawner = Orchestrator.for_agent(
            agent, max_parallel=max_parallel, tool_factory=tools_for
        )
        server_cpu_started = server.cpu_s()
        started, cpu_started = time.perf_counter(), time.process_time()
        final: TurnFinished | None = None
        async for event in agent.run_turn(Message.user(MAIN)):
            if isinstance(event, TurnFinished) and event.agent == "main":
                final = event
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        server_cpu = server.cpu_s() - server_cpu_started
    finally:
        await backend.aclose()
        server.close()
    assert final is not None and final.reason == "completed", final
    sub = final.stats["agents"][1:]
    assert len(sub) == n and all(a["steps"] == K for a in sub), "a sub-agent did not finish"
    return wall, {**final.stats, "cpu_s": cpu, "server_cpu_s": server_cpu}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure, best kept (serial N=64: one)"
    )
    args = parser.parse_args()
    figures: dict[int, tuple[float, float, float, float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="kcode-swarm-") as tmp:
        workdir = Path(os.path.realpath(tmp))
        (workdir / "notes.txt").write_text("".join(f"item {i}\n" for i in range(100)))
        await run_once(1, 1, workdir)  # warm-up: imports, first connection
        print(f"load average at start: {load()}")
        print(
            f"{'N':>3} {'serial s':>9} {'parallel s':>10} {'speedup':>8} {'ideal':>6} "
            f"{'effic.':>6} {'overhead ms/call':>16} {'kcode cpu ms/call':>17} "
            f"{'server cpu ms/call':>18} {'load':>5} {'peak RSS MB':>11}"
        )
        for n in args.n:
            # Best of a few runs: the machine is shared, and a stall in one run is not kcode's.
            serial = min(
                [(await run_once(n, 1, workdir))[0] for _ in range(args.repeat if n <= 16 else 1)]
            )
            runs = [await run_once(n, n, workdir) for _ in range(args.repeat)]
            parallel, stats = min(runs, key=lambda run: run[0])
            steps, critical = stats["steps"], stats["critical_steps"]
            speedup = serial / parallel
            ideal = steps / critical
            efficiency = speedup / ideal
            overhead_ms = (parallel - critical * LATENCY_S) / steps * 1000
            cpu_ms = stats["cpu_s"] / steps * 1000
            server_ms = stats["server_cpu_s"] / steps * 1000
            load1 = os.getloadavg()[0]
            figures[n] = (efficiency, speedup, overhead_ms, cpu_ms, server_ms, load1)
            print(
                f"{n:>3} {serial:>9.2f} {parallel:>10.2f} {speedup:>7.1f}x {ideal:>6.1f} "
                f"{efficiency:>6.2f} {overhead_ms:>16.2f} {cpu_ms:>17.2f} {server_ms:>18.2f} "
                f"{load1:>5.1f} {peak_rss_mb():>11.0f}",
                flush=True,
            )
        # Cost accounting: the same run with and without meters, alternated, best CPU of each.
        plain_cpu, metered_cpu = [], []
        for _ in range(args.repeat):
            for accounting, out in ((False, plain_cpu), (True, metered_cpu)):
                _, stats = await run_once(max(figures), max(figures), workdir, accounting)
                out.append(stats["cpu_s"] / stats["steps"] * 1000)
                if accounting:
                    assert stats["usage"]["cost"] is not None, "accounting did not price the run"
        plain, metered = min(plain_cpu), min(metered_cpu)
        print(
            f"cost accounting at N={max(figures)}: {plain:.2f} ms/call without, {metered:.2f} ms/call with "
            f"({metered - plain:+.2f} ms/call, {metered / plain:.2f}x)"
        )
    parts = [f"{figures[n][0]:.2f} at N={n}" for n in args.n if n >= 16] or [
        f"{figures[n][0]:.2f} at N={n}" for n in args.n
    ]
    at = 16 if 16 in figures else max(figures)
    largest = max(figures)  # the most model calls: the least noisy overhead figure
    print(f"load average at end: {load()}")
    big = figures[largest]
    print(
        f"efficiency {', '.join(parts)}; speedup {figures[at][1]:.1f}x at N={at}; "
        f"overhead {big[2]:.1f} ms/call at N={largest} (kcode cpu {big[3]:.1f} ms/call, "
        f"fake server cpu {big[4]:.1f} ms/call, load {big[5]:.1f}); cost accounting "
        f"{metered - plain:+.2f} ms/call ({metered / plain:.2f}x kcode cpu without it)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
