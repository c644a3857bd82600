"""Does the hand-written HTTP/1.1 client (kcode/backends/openai/http11.py) earn its keep?

bench/swarm.py's parallel run (N sub-agents, K steps each, fake OpenAI server with a fixed latency)
alternated with the lean client on and off (off: every request goes through httpx2, as when a proxy
or odd headers rule the lean client out), best of --repeat each, in the same run. Figures per model
call: overhead (wall minus the model's own latency on the critical path) and kcode's CPU time.
The swarm target is overhead <= 5 ms per call.

    .venv/bin/python bench/http11.py              # N = 16, 5 runs each
    .venv/bin/python bench/http11.py --n 64 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import swarm  # bench/swarm.py: the same run, server and script

from kcode.backends.openai.sse_transport import HttpTransport


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    lean_of = HttpTransport._lean_client
    figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="kcode-http11-") as tmp:
        workdir = Path(os.path.realpath(tmp))
        (workdir / "notes.txt").write_text("".join(f"item {i}\n" for i in range(100)))
        await swarm.run_once(1, 1, workdir)  # warm-up: imports, first connection
        print(f"load average at start: {swarm.load()}")
        for _ in range(args.repeat):
            for lean in (True, False):
                HttpTransport._lean_client = lean_of if lean else lambda self: None  # type: ignore[method-assign]
                try:
                    wall, stats = await swarm.run_once(args.n, args.n, workdir)
                finally:
                    HttpTransport._lean_client = lean_of  # type: ignore[method-assign]
                steps = stats["steps"]
                overhead = (wall - stats["critical_steps"] * swarm.LATENCY_S) / steps * 1000
                figures[lean].append((overhead, stats["cpu_s"] / steps * 1000))
                print(
                    f"lean {'on ' if lean else 'off'}: overhead {overhead:6.2f} ms/call, "
                    f"kcode cpu {figures[lean][-1][1]:6.2f} ms/call, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    on = (min(o for o, _ in figures[True]), min(c for _, c in figures[True]))
    off = (min(o for o, _ in figures[False]), min(c for _, c in figures[False]))
    print(f"load average at end: {swarm.load()}")
    print(
        f"N={args.n}, best of {args.repeat}: overhead {on[0]:.2f} ms/call with the lean client, "
        f"{off[0]:.2f} without ({off[0] / on[0]:.2f}x); kcode cpu {on[1]:.2f} vs {off[1]:.2f} "
        f"ms/call ({off[1] / on[1]:.2f}x without it)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
