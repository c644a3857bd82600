"""Read-only shell calls of one reply run at the same time; writing ones keep their order; approvals
are still asked one at a time in call order. Real bash commands through the agent loop (scripted
backend); overlap is judged from timestamps the commands print themselves, never from durations."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from kcode.agents.loop import Agent
from kcode.agents.scheduling import footprint
from kcode.backends.base import BackendOptions
from kcode.backends.scripted import ScriptedBackend
from kcode.events import ApprovalRequested, Event, ToolCallFinished
from kcode.messages import Message, ToolCall, ToolResult
from kcode.safety.approval import ApprovalDecision, ApprovalRequest
from kcode.safety.shell_readonly import is_read_only_command
from kcode.tools.base import Tool, ToolArgs, ToolContext, ok
from kcode.tools.registry import build_tools

STAMP = "date +%s%N"


def stamped(prefix: str, seconds: float = 0.4) -> str:
    """A command that prints when it started and when it ended (nanoseconds since the epoch)."""
    return f"{prefix}{STAMP}; sleep {seconds}; {STAMP}"


class SlowApprover:
    """Allows everything after a pause, and records how many questions were open at once."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.open = 0
        self.max_open = 0

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.asked.append(request.summary)
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        await asyncio.sleep(0.05)
        self.open -= 1
        return ApprovalDecision(True, "test")


def agent_for(root: Path, commands: list[str], approver: Any) -> Agent:
    tools: dict[str, Tool[Any]] = build_tools(["shell", "read_file"])
    turn = {"tool_calls": [{"name": "shell", "arguments": {"command": c}} for c in commands]}
    return Agent(
        backend=ScriptedBackend([turn, {"text": "done"}]),
        tools=tools,
        ctx=ToolContext(root=root, approver=approver),
        system_prompt="system",
        options=BackendOptions(model="test"),
    )


async def run_calls(root: Path, commands: list[str], approver: Any) -> tuple[list[Event], list]:
    """Run one reply with `commands`; the (start, end) each printed, in call order."""
    agent = agent_for(root, commands, approver)
    events = [e async for e in agent.run_turn(Message.user("go"))]
    assert all(e.ok for e in events if isinstance(e, ToolCallFinished))
    spans = []
    for text in (m.text for m in agent.history if m.role == "tool"):
        stamps = [x for x in text.splitlines() if x.strip().isdigit() and len(x.strip()) > 12]
        assert len(stamps) == 2, text
        spans.append((int(stamps[0]), int(stamps[1])))
    return events, spans


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


async def test_read_only_calls_overlap_and_writing_calls_are_barriers(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("alpha\nbeta\n")
    commands = [
        stamped("grep -c alpha notes.txt; "),
        stamped("ls; "),
        stamped("git status 2>/dev/null; cat notes.txt >/dev/null; "),
        stamped("touch w1; "),  # writes: waits for the reads before, holds the ones after
        stamped("echo two > w2; "),
        stamped("wc -l notes.txt; "),
        stamped("head -1 notes.txt; "),
    ]
    approver = SlowApprover()
    events, spans = await run_calls(tmp_path, commands, approver)
    reads_before, (w1, w2), reads_after = spans[:3], spans[3:5], spans[5:]
    for i, a in enumerate(reads_before):
        for b in reads_before[i + 1 :]:
            assert overlap(a, b), (a, b)
    assert overlap(reads_after[0], reads_after[1])
    assert all(r[1] <= w1[0] for r in reads_before)
    assert w1[1] <= w2[0]
    assert all(w2[1] <= r[0] for r in reads_after)
    assert (tmp_path / "w1").exists() and (tmp_path / "w2").read_text() == "two\n"
    # every call was approved, one question at a time, in call order
    assert approver.asked == commands
    assert approver.max_open == 1
    requested = [e.summary for e in events if isinstance(e, ApprovalRequested)]
    assert requested == commands


async def test_results_reach_the_history_in_call_order(tmp_path: Path) -> None:
    commands = [stamped("echo first; ", 0.3), stamped("echo second; ", 0.0)]
    agent = agent_for(tmp_path, commands, SlowApprover())
    [e async for e in agent.run_turn(Message.user("go"))]
    tool_messages = [m.text for m in agent.history if m.role == "tool"]
    assert tool_messages[0].startswith("first") and tool_messages[1].startswith("second")


async def test_a_refused_approval_still_stops_and_later_calls_are_not_asked(
    tmp_path: Path,
) -> None:
    from kcode.safety.approval import NonInteractiveApprover

    agent = agent_for(tmp_path, ["ls", "cat nothing-here", "grep -r x ."], None)
    agent.ctx.approver = NonInteractiveApprover("ask")
    events = [e async for e in agent.run_turn(Message.user("go"))]
    asked = [e.summary for e in events if isinstance(e, ApprovalRequested)]
    assert asked == ["ls"]  # the first question ended the run; nothing else was asked
    assert events[-1].reason == "approval_required"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "command",
    [
        "grep -rn TODO src",
        "rg -l foo | head -3",
        "ls -la && cat README.md",
        "sleep 1; grep -c x notes.txt",
        "find . -name '*.py' -type f",
        "git status --short",
        "git -C sub log --oneline -5",
        "git diff HEAD~1 -- a.py 2>&1 | tail -20",
        "git --no-pager show HEAD:README.md",
        "wc -l *.py",
        "cd src && ls",
        "echo hi >/dev/null",
        "date +%s",
        "sort -n numbers.txt | head",
    ],
)
def test_read_only_commands(command: str) -> None:
    assert is_read_only_command(command), command


@pytest.mark.parametrize(
    "command",
    [
        "",
        "touch x",
        "echo hi > out.txt",
        "grep x file | tee out",
        "find . -name x -delete",
        "find . -exec rm {} +",
        "git commit -m x",
        "git branch new",
        "git -c core.pager=evil log",
        "git diff --output=x",
        "rg --pre ./run.sh foo",
        "sort -o out in",
        "date -s 2020-01-01",
        "sed -n 1p file",
        "awk '{print}' file",
        "python -c 'print(1)'",
        "cat file | sh",
        "ls $(rm -rf x)",
        "ls $DIR",
        "LC_ALL=C grep x y",
        "xargs grep x",
        "env grep x",
        "npm test",
        "eval ls",
        "ls; rm -rf build",
    ],
)
def test_not_read_only_commands(command: str) -> None:
    assert not is_read_only_command(command), command


def test_only_read_only_shell_calls_leave_the_exclusive_lane(tmp_path: Path) -> None:
    shell = build_tools(["shell"])["shell"]
    reads = footprint(shell, ToolCall("1", "shell", {"command": "grep -r x ."}))
    writes = footprint(shell, ToolCall("2", "shell", {"command": "make"}))
    broken = footprint(shell, ToolCall("3", "shell", {"command": 5}))
    assert not reads.writes and not reads.exclusive
    assert writes.exclusive and broken.exclusive


class NapArgs(ToolArgs):
    seconds: float


class NapTool(Tool[NapArgs]):
    """A read-only tool that never asks for approval and records when it ran."""

    name = "nap"
    description = "sleep"
    args_model = NapArgs
    read_only = True
    span: tuple[int, int] = (0, 0)

    async def run(self, args: NapArgs, ctx: ToolContext) -> ToolResult:
        start = time.time_ns()
        await asyncio.sleep(args.seconds)
        NapTool.span = (start, time.time_ns())
        return ok("rested")


async def test_a_read_only_shell_call_runs_beside_a_slow_read_that_asks_nothing(
    tmp_path: Path,
) -> None:
    tools: dict[str, Tool[Any]] = {**build_tools(["shell"]), "nap": NapTool()}
    turn = {
        "tool_calls": [
            {"name": "nap", "arguments": {"seconds": 0.5}},
            {"name": "shell", "arguments": {"command": stamped("ls; ", 0.1)}},
        ]
    }
    agent = Agent(
        backend=ScriptedBackend([turn, {"text": "done"}]),
        tools=tools,
        ctx=ToolContext(root=tmp_path, approver=SlowApprover()),
        system_prompt="system",
        options=BackendOptions(model="test"),
    )
    [e async for e in agent.run_turn(Message.user("go"))]
    text = [m.text for m in agent.history if m.role == "tool"][1]
    stamps = [int(x) for x in text.splitlines() if x.strip().isdigit() and len(x.strip()) > 12]
    # the shell's approval did not wait for the nap (which never asks) to end
    assert overlap(NapTool.span, (stamps[0], stamps[1]))
