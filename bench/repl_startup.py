"""REPL startup, idle memory and streaming render cost.

1. Startup: launch `kcode` in a pseudo-terminal and time until the prompt is drawn, against
   `python -c pass` in a pseudo-terminal in the same run (median of several runs; target ≤ 4×).
2. Idle RSS: peak resident memory (VmHWM) of that REPL after it has sat at the prompt for a few
   seconds, background setup included (target ≤ 120 MB).
3. Render lag: stream a 2,000-line markdown answer at 200 chunks/s through the renderer into a
   terminal-sized console and report how long after the last chunk arrived the render finished
   (median of three runs).
4. Enter accepted: launch `kcode` against the fake OpenAI server, type a message and Enter at once
   (before anything is drawn) and time until its request reaches the server: the message was
   accepted, not turned into a newline (issue #14). Median of the runs.

    .venv/bin/python bench/repl_startup.py [--runs 5]

The LAST line is the figure:
`3.1x python startup; idle RSS 71 MB; render lag 0.04 s; Enter accepted 0.61 s after launch`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENV_BIN = Path(sys.executable).parent
KCODE = str(VENV_BIN / "kcode")


def bench_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCODE_", "OPENAI_"))}
    env.update(
        XDG_DATA_HOME=str(tmp / "data"),
        XDG_CONFIG_HOME=str(tmp / "config"),
        KCODE_BASE_URL="http://127.0.0.1:9/v1",  # never contacted: nothing is sent
        KCODE_API_KEY="bench",
        KCODE_MODEL="bench-model",
        TERM="xterm-256color",
        PROMPT_TOOLKIT_NO_CPR="1",
    )
    return env


def time_python(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    child = pexpect.spawn(sys.executable, ["-c", "pass"], env=env, dimensions=(40, 120))
    child.expect(pexpect.EOF, timeout=30)
    elapsed = time.perf_counter() - t0
    child.close()
    return elapsed


def time_repl(env: dict[str, str], cwd: Path, settle_s: float = 0.0) -> tuple[float, int]:
    """Seconds until the prompt is drawn, and peak RSS in kB after `settle_s` at the prompt."""
    t0 = time.perf_counter()
    child = pexpect.spawn(KCODE, [], env=env, cwd=str(cwd), dimensions=(40, 120))
    child.expect("›".encode(), timeout=30)
    elapsed = time.perf_counter() - t0
    peak_kb = 0
    if settle_s:
        time.sleep(settle_s)
        for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
    child.send("\x04")
    try:
        child.expect(pexpect.EOF, timeout=15)
    finally:
        child.close(force=True)
    return elapsed, peak_kb


def time_enter_accepted(env: dict[str, str], cwd: Path) -> float:
    """Seconds from launch to the request of a message typed (with its Enter) at launch."""
    from tests.fake_openai import FakeOpenAIServer, Reply

    with FakeOpenAIServer(default=Reply.text("ok")) as server:
        env = {**env, "KCODE_BASE_URL": server.base_url}
        t0 = time.monotonic()  # the fake server stamps requests with time.monotonic()
        child = pexpect.spawn(KCODE, [], env=env, cwd=str(cwd), dimensions=(40, 120))
        child.send("hello from the first instant\r")
        deadline = t0 + 30
        while not server.requests:
            if time.monotonic() > deadline:
                child.close(force=True)
                raise SystemExit("the message typed at launch never reached the server")
            time.sleep(0.002)
        elapsed = server.requests[0].arrived - t0
        child.send("\x04")
        try:
            child.expect(pexpect.EOF, timeout=15)
        finally:
            child.close(force=True)
    return elapsed


def answer_lines(n: int) -> list[str]:
    lines = []
    for i in range(n):
        kind = i % 20
        if kind == 0:
            lines.append(f"## Section {i // 20}\n")
        elif kind in (1, 10):
            lines.append("\n")
        elif kind == 11:
            lines.append("```python\n")
        elif kind in (12, 13, 14):
            lines.append(f"    value_{i} = compute({i}, key='x')  # step {i}\n")
        elif kind == 15:
            lines.append("```\n")
        elif kind < 10:
            lines.append(f"- item {i}: some **bold** text and `code` in a list entry\n")
        else:
            lines.append(f"Paragraph text number {i} with a [link](http://x) and more words.\n")
    return lines


async def render_lag(lines: list[str], rate: float) -> float:
    from rich.console import Console

    from kcode.events import TextDelta, TurnFinished
    from kcode.ui.render import Renderer

    with open(os.devnull, "w", encoding="utf-8") as sink:
        console = Console(file=sink, force_terminal=True, width=120, height=40)
        renderer = Renderer(console)
        start = time.perf_counter()
        for index, line in enumerate(lines):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            renderer.handle(TextDelta(text=line))
        last_arrival = start + (len(lines) - 1) / rate
        renderer.handle(TurnFinished(reason="completed"))
        return max(time.perf_counter() - last_arrival, 0.0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = bench_env(tmp)
        repo = tmp / "repo"
        repo.mkdir()
        time_repl(env, repo)  # warm the OS file cache and .pyc files
        python_times, repl_times = [], []
        for _ in range(args.runs):
            python_times.append(time_python(env))
            repl_times.append(time_repl(env, repo)[0])
        _, peak_kb = time_repl(env, repo, settle_s=4.0)
        accepted = statistics.median(time_enter_accepted(env, repo) for _ in range(args.runs))
    python_s = statistics.median(python_times)
    repl_s = statistics.median(repl_times)
    # Median of three: on a shared 2-core machine one run can stall for a scheduler tick.
    lag = statistics.median(
        asyncio.run(render_lag(answer_lines(args.lines), args.rate)) for _ in range(3)
    )
    print(f"python -c pass: {python_s * 1000:.0f} ms; kcode prompt drawn: {repl_s * 1000:.0f} ms")
    print(f"idle REPL peak RSS: {peak_kb / 1024:.0f} MB")
    print(f"render: {args.lines} lines at {args.rate:g} chunks/s, lag after last chunk {lag:.3f} s")
    print(f"a message typed with its Enter at launch reached the server after {accepted:.2f} s")
    print(
        f"{repl_s / python_s:.1f}x python startup; idle RSS {peak_kb / 1024:.0f} MB; "
        f"render lag {lag:.2f} s; Enter accepted {accepted:.2f} s after launch"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
