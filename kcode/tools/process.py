"""Running a child process for the shell and run_tests tools.

The child gets its own session (so its own process group): a timeout, a Ctrl-C (task cancellation) or
the command finishing kills the whole group, grandchildren included, so nothing outlives the call.
Output is read as it arrives into a head + tail buffer, so memory stays bounded even when a command
prints gigabytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kcode.tools.base import ToolContext, ToolError

READ_CHUNK = 64 * 1024
# How long to wait for the pipe to close after the group is killed (a child that escaped the
# group with its own setsid can keep it open forever).
DRAIN_GRACE_S = 2.0


def scrubbed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: only allowlisted variables (kcode.safety.secrets.SAFE_ENV_NAMES), so
    no credential reaches the model's commands whatever its name; pagers and colour turned off."""
    from kcode.safety.secrets import child_env

    env = child_env(base)
    env.update({"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0", "NO_COLOR": "1"})
    return env


def wrap_command(argv: list[str], ctx: ToolContext) -> list[str]:
    """kcode.safety.sandbox wraps argv (bwrap or Landlock) for ctx.sandbox. Fails closed: a sandbox that
    cannot even be imported refuses the command; it never runs it unsandboxed (issue #12)."""
    if ctx.sandbox == "off":
        return argv
    try:
        import kcode.safety.sandbox as sandbox  # lazy: kcode.safety.sandbox imports tools.base
    except ImportError as err:
        raise ToolError(
            f"the {ctx.sandbox} sandbox cannot load ({type(err).__name__}: {err}); the command was "
            "not run. This kcode installation is broken: reinstall it (or run with --sandbox off "
            "to allow unsandboxed commands)"
        ) from err
    return sandbox.wrap_command(argv, ctx)


def release_sandbox(argv: list[str]) -> None:
    """After the command: ends what is left in its pids cgroup (kcode/safety/pidlimit.py) and removes it."""
    if argv and argv[0] == "/bin/sh":
        from kcode.safety import pidlimit

        pidlimit.release(argv)
    if "--ro-bind" in argv:
        from kcode.safety.sandbox import release_placeholders

        release_placeholders(argv)


class HeadTailBuffer:
    """Keeps the first `head_limit` and the last `tail_limit` bytes of a stream, counts the rest."""

    def __init__(self, max_bytes: int) -> None:
        self.head_limit = max_bytes * 2 // 3
        self.tail_limit = max_bytes - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail += chunk
        if len(self.tail) > 2 * self.tail_limit:  # trim in batches to keep appends cheap
            del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        tail = bytes(self.tail[-self.tail_limit :]) if self.tail_limit else b""
        cut = self.total - len(self.head) - len(tail)
        head_text = self.head.decode("utf-8", errors="replace")
        if cut <= 0:
            return (bytes(self.head) + tail).decode("utf-8", errors="replace")
        return (
            head_text
            + f"\n[... {cut} bytes cut from the middle of the output ...]\n"
            + tail.decode("utf-8", errors="replace")
        )


@dataclass
class ProcessResult:
    exit_code: int | None
    output: str
    timed_out: bool
    output_bytes: int
    truncated: bool


def kill_group(pgid: int) -> None:
    # A member that was mid-fork when the signal went out can leave a child the signal missed
    # (seen with bwrap's pid-namespace helper), so repeat while live members remain.
    for _ in range(50):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if not _live_group_members(pgid):
            return
        time.sleep(0.002)


def _live_group_members(pgid: int) -> bool:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


async def _pump(stream: asyncio.StreamReader, sink: HeadTailBuffer) -> None:
    while chunk := await stream.read(READ_CHUNK):
        sink.write(chunk)


async def wait_for_exit(pid: int) -> None:
    """Wait until `pid` exits, without waiting for its output pipe to close.

    asyncio's `Process.wait()` only returns once every pipe is closed, which a background grandchild
    can delay forever; a pidfd becomes readable the moment the process itself exits.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def mark_exited() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, mark_exited)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _returncode(proc: asyncio.subprocess.Process) -> int | None:
    # The child watcher records the status shortly after the exit that the pidfd reported.
    for _ in range(500):
        if proc.returncode is not None:
            return proc.returncode
        await asyncio.sleep(0.01)
    return proc.returncode


async def run_process(
    argv: list[str],
    cwd: Path,
    timeout_s: float,
    max_output_bytes: int,
    env: Mapping[str, str] | None = None,
) -> ProcessResult:
    """Run argv in its own process group; stdout and stderr are merged, stdin is empty."""
    spawn = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(scrubbed_env() if env is None else env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    )
    try:
        proc = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        # Ctrl-C while the child was starting: it exists all the same, so end its group too.
        with contextlib.suppress(Exception):
            kill_group((await spawn).pid)
        raise
    assert proc.stdout is not None
    sink = HeadTailBuffer(max_output_bytes)
    pump = asyncio.create_task(_pump(proc.stdout, sink))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(wait_for_exit(proc.pid), timeout_s)
        except TimeoutError:
            timed_out = True
        # On timeout this ends the command; otherwise it ends background children the command
        # left behind, which would hold the pipe open and outlive the call.
        kill_group(proc.pid)
        exit_code = await _returncode(proc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pump), DRAIN_GRACE_S)
    finally:
        # Reached with the process still running only on cancellation (Ctrl-C) or an error.
        kill_group(proc.pid)
        release_sandbox(argv)
        if not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            # A child that escaped the group still holds the pipe: stop listening to it.
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
    return ProcessResult(
        exit_code=None if timed_out else exit_code,
        output=sink.text(),
        timed_out=timed_out,
        output_bytes=sink.total,
        truncated=sink.total > len(sink.head) + sink.tail_limit,
    )
