"""Reliability figures: faults / turns lost, escapes, interrupts, kills, output flood, sandbox cost.

    .venv/bin/python bench/reliability.py            # full run (targets: >= 1000 faults, >= 500
                                                     # escapes, >= 200 interrupts, >= 100 kills)
    .venv/bin/python bench/reliability.py --quick    # a smaller run for a smoke check

One row per figure; the LAST line sums them up, e.g.
`0 losses (1000 faults, 520 escapes, 200 interrupts, 100 kills); flood peak 61 MB; sandbox +12 ms`.
Memory and sandbox cost are measured against a baseline run in the same script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.attack_families import run_families
from kcode.agents.loop import Agent
from kcode.backends.base import BackendOptions
from kcode.backends.openai.api import OpenAIBackend
from kcode.messages import Message
from kcode.safety.sandbox import bwrap_status
from kcode.tools.base import ToolContext
from kcode.tools.registry import build_tools
from tests.fake_openai import FakeOpenAIServer, Reply
from tests.safety.faults import run_fault_injection
from tests.safety.helpers import call
from tests.safety.interrupts import BIG, _alive_with, _files_ok, interrupt_once
from tests.safety.test_confinement import SENTINEL, build_world, escape_paths, patch_for, state

FLOOD_SCRIPT = """
import asyncio, sys
from pathlib import Path
from kcode.tools.process import run_process
size = int(sys.argv[1])
argv = ["bash", "-c", f"head -c {size} /dev/zero | tr '\\\\0' 'a'"]
result = asyncio.run(run_process(argv, Path("."), 600, 30_000))
assert result.output_bytes == size, result.output_bytes
# VmHWM is this process's own peak; ru_maxrss would include the parent's size before exec.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(int(hwm.split()[1]))
"""


def row(name: str, value: str) -> None:
    sys.stdout.write(f"{name:34} {value}\n")
    sys.stdout.flush()


# ----- faults ---------------------------------------------------------------------------------


def faults(turns: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_DATA_HOME"] = str(Path(tmp) / "data")
        ws = Path(tmp) / "ws"
        ws.mkdir()
        report = asyncio.run(run_fault_injection(ws, turns=turns, seed=2024))
    lost = report.lost + report.bad_log_lines
    row("faults injected / turns lost", f"{report.faults} / {lost} ({report.turns} turns)")
    return report.faults, lost


# ----- escapes --------------------------------------------------------------------------------


async def _escape_attempts(tmp: Path) -> tuple[int, int]:
    ws, outside = build_world(tmp)
    before = state(outside)
    ctx = ToolContext(root=ws)
    attempts = leaks = 0
    for path in escape_paths(ws, outside):
        results = [
            await call(ctx, "read_file", path=path),
            await call(ctx, "write_file", path=path, content="ESCAPED\n"),
            await call(
                ctx, "edit_file", path=path, edits=[{"old_string": SENTINEL, "new_string": "E"}]
            ),
            *[await call(ctx, "apply_patch", patch=p) for p in patch_for(path)],
            await call(ctx, "grep", pattern="SENTINEL", path=path),
        ]
        attempts += len(results)
        leaks += sum(SENTINEL in r.content for r in results)
    if bwrap_status()[0]:
        sandboxed = ToolContext(root=ws, sandbox="workspace-write")
        for target in ("../outside/x", "link_out/x", "chain1/x", str(outside / "secret.txt")):
            for command in (f"echo E > {target}", f"touch {target}", f"rm -rf {target}"):
                await call(sandboxed, "shell", command=command)
                attempts += 1
    changed = sum(
        1 for k in set(before) | set(state(outside)) if before.get(k) != state(outside).get(k)
    )
    return attempts, leaks + changed


def escapes() -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        attempts, escaped = asyncio.run(_escape_attempts(Path(tmp)))
    row("escape attempts / escapes", f"{attempts} / {escaped}")
    return attempts, escaped


# ----- interrupts (in-process Ctrl-C = cancelling the turn) --------------------------------------


async def _interrupt_in_process(tmp: Path, rng: random.Random) -> tuple[int, int]:
    marker = f"{rng.random():.12f}"
    command = f"(sleep 300 {marker} &); sleep 300 {marker} & sleep 0.1; wait"
    script = [
        Reply.tool_call("write_file", {"path": "big.txt", "content": BIG}),
        Reply.tool_call("shell", {"command": command}),
        Reply.text("done"),
    ]
    ws = tmp / "ws"
    ws.mkdir(parents=True)
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(server.base_url, "sk-x", "fake-model")
        sandbox = "workspace-write" if bwrap_status()[0] else "off"
        ctx = ToolContext(root=ws, sandbox=sandbox)
        agent = Agent(
            backend=backend,
            tools=build_tools(["write_file", "shell"]),
            ctx=ctx,
            system_prompt="bench",
            options=BackendOptions(model="fake-model"),
        )

        async def drain() -> None:
            async for _ in agent.run_turn(Message.user("go")):
                pass

        task = asyncio.create_task(drain())
        await asyncio.sleep(rng.uniform(0.0, 0.4))
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await backend.aclose()
    # A write already handed to a worker thread finishes (as it does when kcode exits); the
    # check is that it is then whole, never half-written.
    await asyncio.get_running_loop().shutdown_default_executor()
    deadline = time.monotonic() + 3
    while _alive_with(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    orphans = len(_alive_with(marker))
    return (0 if _files_ok(ws) else 1), orphans


def interrupts(in_process: int, real: int) -> tuple[int, int, int]:
    rng = random.Random(99)
    corrupt = orphans = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(in_process):
            bad, left = asyncio.run(_interrupt_in_process(Path(tmp) / f"i{i}", rng))
            corrupt += bad
            orphans += left
        for i in range(real):
            report = interrupt_once(Path(tmp) / f"r{i}", "int", rng, resume=i % 10 == 0)
            corrupt += report.corrupt_files
            orphans += report.orphans
    total = in_process + real
    row("interrupts / corrupt files / orphans", f"{total} / {corrupt} / {orphans}")
    return total, corrupt, orphans


def kills(count: int, seed: str = "kill") -> tuple[int, int]:
    rngs = [random.Random(f"{seed}-{i}") for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(
            pool.map(
                lambda i: interrupt_once(Path(tmp) / f"k{i}", "kill", rngs[i], resume=True),
                range(count),
            )
        )
    bad = sum(r.unrecoverable + r.corrupt_files for r in reports)
    for i, report in enumerate(reports):  # what was lost, so a loss can be reproduced by its seed
        for detail in report.details:
            row(f"  kill {seed}-{i}", detail)
    row("kills / unrecoverable sessions", f"{count} / {bad}")
    return count, bad


# ----- flood and sandbox cost -----------------------------------------------------------------


def peak_mb(size: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", FLOOD_SCRIPT, str(size)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def flood(size: int) -> float:
    baseline = peak_mb(1_000)
    peak = peak_mb(size)
    row(
        f"peak memory, {size / 1e9:g} GB output flood",
        f"{peak:.0f} MB (baseline {baseline:.0f} MB, x{peak / baseline:.2f})",
    )
    return peak


async def _time_shell(ctx: ToolContext, runs: int) -> float:
    await call(ctx, "shell", command="true")
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await call(ctx, "shell", command="true")
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def sandbox_cost(runs: int) -> float | None:
    if bwrap_status()[0] is None:
        row("sandbox overhead per shell call", "n/a (bubblewrap cannot start here)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        off = asyncio.run(_time_shell(ToolContext(root=Path(tmp)), runs))
        on = asyncio.run(_time_shell(ToolContext(root=Path(tmp), sandbox="workspace-write"), runs))
    extra_ms = (on - off) * 1000
    row(
        "sandbox overhead per shell call",
        f"+{extra_ms:.1f} ms (x{on / off:.2f}; {off * 1000:.1f} ms -> {on * 1000:.1f} ms)",
    )
    return extra_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts for a smoke run")
    parser.add_argument(
        "--kills-only",
        type=int,
        metavar="N",
        help="run only the kill -9 family, N runs (seeded by --seed), and print its losses",
    )
    parser.add_argument("--seed", default="kill", help="seed prefix of the kill -9 runs")
    args = parser.parse_args()
    quick = args.quick
    if args.kills_only is not None:
        n_kills, unrecoverable = kills(args.kills_only, args.seed)
        sys.stdout.write(f"{unrecoverable} losses ({n_kills} kills)\n")
        return 0
    n_faults, lost = faults(60 if quick else 760)
    n_escapes, escaped = escapes()
    n_int, corrupt, orphans = interrupts(20 if quick else 190, 4 if quick else 12)
    n_kills, unrecoverable = kills(6 if quick else 100, args.seed)
    peak = flood(100_000_000 if quick else 1_000_000_000)
    extra = sandbox_cost(20 if quick else 60)
    counts, attacks_tried, attacks_broken = run_families(quick)
    for family, (tried, broken) in counts.items():
        row(f"attacks: {family}", f"{broken} broken of {tried}")
    losses = lost + escaped + corrupt + orphans + unrecoverable
    sandbox = "sandbox n/a" if extra is None else f"sandbox {extra:+.0f} ms"
    sys.stdout.write(
        f"{losses} losses ({n_faults} faults, {n_escapes} escapes, {n_int} interrupts, "
        f"{n_kills} kills); {attacks_broken} broken of {attacks_tried} attacks; "
        f"flood peak {peak:.0f} MB; {sandbox}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
