"""The shell tool against real bash processes."""

from __future__ import annotations

import asyncio
import os
import resource
from pathlib import Path

import pytest

from kcode.messages import ToolCall, ToolResult
from kcode.safety.approval import ApprovalDecision, ApprovalRequest
from kcode.tools.base import ToolContext, ToolLimits, run_tool
from kcode.tools.process import run_process, scrubbed_env
from kcode.tools.shell import ShellTool
from tests.waiting import async_wait_until


class RecordingApprover:
    def __init__(self, allow: bool) -> None:
        self.allow = allow
        self.requests: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(self.allow, "" if self.allow else "not now")


async def run_shell(ctx: ToolContext, **arguments: object) -> ToolResult:
    return await run_tool(ShellTool(), ToolCall("c1", "shell", dict(arguments)), ctx)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_runs_in_workspace_and_reports_exit_code(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hi\n")
    ctx = ToolContext(root=tmp_path)
    result = await run_shell(ctx, command="cat hello.txt; pwd; echo oops >&2; exit 3")
    assert result.ok
    assert "hi" in result.content and str(ctx.root) in result.content and "oops" in result.content
    assert "[exit code 3]" in result.content
    assert result.data is not None and result.data["exit_code"] == 3
    assert result.data["timed_out"] is False


async def test_approval_is_asked_with_the_command(tmp_path: Path) -> None:
    approver = RecordingApprover(allow=True)
    ctx = ToolContext(root=tmp_path, approver=approver)
    await run_shell(ctx, command="true")
    assert [(r.action, r.tool, r.summary) for r in approver.requests] == [
        ("shell", "shell", "true")
    ]


async def test_denied_command_does_not_run(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path, approver=RecordingApprover(allow=False))
    result = await run_shell(ctx, command="touch created.txt")
    assert not result.ok
    assert "declined" in result.content
    assert not (tmp_path / "created.txt").exists()


async def test_timeout_kills_the_whole_group_including_grandchildren(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path)
    # bash -> bash (subshell) -> sleep: the grandchild writes its pid, then everything hangs.
    command = "( sleep 300 & echo $! > grandchild.pid; wait ) ; echo never"
    result = await run_shell(ctx, command=command, timeout_s=1)
    assert not result.ok
    assert "timed out after 1s" in result.content
    assert result.data is not None and result.data["timed_out"] is True
    assert "never" not in result.content
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    await async_wait_until(lambda: not pid_alive(grandchild), "the grandchild to be gone", 20)


async def test_background_children_do_not_outlive_the_command(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path)
    result = await run_shell(ctx, command="sleep 300 & echo $! > bg.pid; echo started")
    assert result.ok and "started" in result.content
    pid = int((tmp_path / "bg.pid").read_text())
    await async_wait_until(lambda: not pid_alive(pid), "the background child to be gone", 20)


async def test_cancellation_kills_the_group(tmp_path: Path) -> None:
    task = asyncio.create_task(
        run_process(["bash", "-c", "sleep 300 & echo $! > bg.pid; wait"], tmp_path, 60, 10_000)
    )
    pid_file = tmp_path / "bg.pid"
    await async_wait_until(
        lambda: pid_file.exists() and bool(pid_file.read_text().strip()), "the child's pid"
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = int(pid_file.read_text())
    await async_wait_until(lambda: not pid_alive(pid), "the background child to be gone", 20)


async def test_huge_output_keeps_head_and_tail_with_bounded_memory(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path, limits=ToolLimits(max_output_chars=6_000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    # ~150 MB of output: the first and last lines must survive, the middle must not.
    command = (
        "echo FIRST; yes 'filler line of text that repeats' | head -c 150000000; echo; echo LAST"
    )
    result = await run_shell(ctx, command=command, timeout_s=120)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert result.ok
    assert result.content.startswith("FIRST")
    assert "LAST" in result.content
    assert "bytes cut from the middle" in result.content
    assert len(result.content) < 8_000
    assert result.data is not None and result.data["output_bytes"] > 150_000_000
    assert after - before < 100_000  # far less than the 150 MB printed


async def test_secrets_are_scrubbed_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-should-not-leak")
    monkeypatch.setenv("DB_PASSWORD", "pw-should-not-leak")
    monkeypatch.setenv("MY_SECRET_THING", "s-should-not-leak")
    monkeypatch.setenv("TZ", "Europe/Visible")
    monkeypatch.setenv("DB_PASSWD", "pw2-should-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw3-should-not-leak@h/db")
    ctx = ToolContext(root=tmp_path)
    result = await run_shell(ctx, command="env")
    assert "should-not-leak" not in result.content
    assert "TZ=Europe/Visible" in result.content  # on the allowlist
    assert "PATH" in scrubbed_env()


async def test_empty_command_is_an_error(tmp_path: Path) -> None:
    result = await run_shell(ToolContext(root=tmp_path), command="   ")
    assert not result.ok and "empty" in result.content
