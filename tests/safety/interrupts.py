"""kill -9 and Ctrl-C against the real `kcode -p` mid-turn (shared by the tests and the bench).

The fake model writes a large file, then runs a shell command that starts background processes
tagged with a unique marker, then answers. We interrupt at a random moment and check: the session
file replays (only a torn last line allowed) and `kcode -c` resumes it; no half-written file (the big
file is absent or complete, no temp files left); after Ctrl-C no tagged process is still alive.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply

# `python -c LAUNCH ARGS` runs the real CLI entry point (so the tests can use this interpreter).
LAUNCH = """
import sys
from kcode.__main__ import main
main(sys.argv[1:])
"""
# Bounds, not timings: how long start-up may take on a loaded machine before we call it a failure.
START_TIMEOUT_S = 120.0
BIG = "".join(f"line {i:07d} of a large file written atomically\n" for i in range(10_000))


@dataclass
class InterruptReport:
    runs: int = 0
    corrupt_files: int = 0
    orphans: int = 0
    unrecoverable: int = 0
    details: list[str] = field(default_factory=list)


def kcode_env(home: Path, base_url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KCODE_", "OPENAI_", "MOONSHOT_"))
    }
    env.update(
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        KCODE_BASE_URL=base_url,
        KCODE_API_KEY="sk-interrupt-test",
        KCODE_MODEL="fake-model",
    )
    return env


def _script(marker: str) -> list[Reply]:
    command = f"(sleep 300 {marker} &) ; sleep 300 {marker} & sleep 0.2; echo started; wait"
    return [
        Reply.tool_call("write_file", {"path": "big.txt", "content": BIG}),
        Reply.tool_call("shell", {"command": command, "timeout_s": 60}),
        Reply.text("done"),
    ]


def _alive_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"sleep" in cmdline:
            pids.append(int(entry.name))
    return pids


def _kill_tagged(marker: str) -> None:
    """Kill what the run left (by exact pid); one may exit between the listing and the kill."""
    for pid in _alive_with(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_for_turn(data_dir: Path, proc: subprocess.Popen[bytes]) -> str | None:
    """Interrupt mid-turn, not during start-up: wait until the turn has started. Why it never did,
    or None. (Giving up quietly after a while let a slow start-up under load be killed before
    there was any session, which then counted as one that could not be resumed.)"""
    deadline = time.monotonic() + START_TIMEOUT_S
    while proc.poll() is None:
        for path in (data_dir / "kcode" / "sessions").glob("*.jsonl"):
            if b'"turn_started"' in path.read_bytes():
                return None
        if time.monotonic() > deadline:
            return f"kcode did not start its turn within {START_TIMEOUT_S:g} s"
        time.sleep(0.02)
    return f"kcode exited ({proc.returncode}) before its turn started"


def _session_ok(data_dir: Path) -> bool:
    files = list((data_dir / "kcode" / "sessions").glob("*.jsonl"))
    if len(files) != 1:
        return False
    lines = files[0].read_bytes().split(b"\n")
    body = [line for line in lines[:-1] if line.strip()]
    try:
        for line in body[:-1]:
            json.loads(line)  # only the very last line may be torn
    except ValueError:
        return False
    return True


def _files_ok(ws: Path) -> bool:
    leftovers = [p for p in ws.rglob("*.kcode-tmp")]
    big = ws / "big.txt"
    return not leftovers and (not big.exists() or big.read_text() == BIG)


def _file_problem(ws: Path) -> str:
    leftovers = [p.name for p in ws.rglob("*.kcode-tmp")]
    if leftovers:
        return f"temp files left: {leftovers}"
    big = ws / "big.txt"
    return f"big.txt has {big.stat().st_size} bytes of {len(BIG)}"


def interrupt_once(tmp: Path, how: str, rng: random.Random, resume: bool = True) -> InterruptReport:
    """One run of `kcode -p`, interrupted with SIGKILL ("kill") or SIGINT ("int")."""
    report = InterruptReport(runs=1)
    ws = tmp / "ws"
    ws.mkdir(parents=True)
    marker = f"{rng.random():.12f}"
    with FakeOpenAIServer(
        ByConversation({"*": _script(marker)}, default=Reply.text("done"))
    ) as srv:
        env = kcode_env(tmp, srv.base_url)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LAUNCH,
                "-p",
                "write the big file and run it",
                "--approval",
                "auto",
                "--output-format",
                "json",
            ],
            cwd=ws,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        not_started = _wait_for_turn(tmp / "data", proc)
        if not_started is not None:
            report.unrecoverable += 1
            report.details.append(not_started)
        time.sleep(rng.uniform(0.0, 1.2))  # a random moment of the turn: what is tested
        proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            report.orphans += 1
        if how == "int":
            deadline = time.monotonic() + 3
            while _alive_with(marker) and time.monotonic() < deadline:
                time.sleep(0.05)
            report.orphans += len(_alive_with(marker))
        _kill_tagged(marker)  # clean up after a kill -9
        if not _files_ok(ws):
            report.corrupt_files += 1
            report.details.append(f"torn or leftover file in {ws}: {_file_problem(ws)}")
        if not _session_ok(tmp / "data"):
            report.unrecoverable += 1
            report.details.append(f"session file not replayable in {tmp / 'data'}")
    if resume and not report.unrecoverable:
        problem = _resume_problem(tmp, ws)
        if problem is not None:
            report.unrecoverable += 1
            report.details.append(problem)
    _kill_tagged(marker)
    return report


def _resume_problem(tmp: Path, ws: Path) -> str | None:
    """Why `kcode -c` could not continue the session, or None: it answered and the log stayed
    whole (every line of it readable)."""
    with FakeOpenAIServer(lambda body: Reply.text("done")) as fresh:
        try:
            again = subprocess.run(
                [sys.executable, "-c", LAUNCH, "-c", "-p", "continue", "--approval", "auto"],
                cwd=ws,
                env=kcode_env(tmp, fresh.base_url),
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return f"resume did not finish within {START_TIMEOUT_S:g} s"
    if again.returncode != 0 or "done" not in again.stdout:
        return f"resume exit {again.returncode}: {again.stderr[-300:]}"
    for path in (tmp / "data" / "kcode" / "sessions").glob("*.jsonl"):
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                return f"after the resume, line {number} of {path.name} is unreadable"
    return None


def launcher_available() -> bool:
    return importlib.util.find_spec("kcode.cli.main") is not None
