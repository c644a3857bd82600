"""The agent loop against the scripted backend with small tools defined here (no model, no network)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kcode.agents.loop import Agent
from kcode.backends.base import BackendError, BackendOptions, RetryNotice, TextChunk
from kcode.backends.scripted import ScriptedBackend
from kcode.events import (
    AssistantMessage,
    Event,
    Retrying,
    StepStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
    TurnStarted,
    Usage,
)
from kcode.messages import Message, ToolResult
from kcode.safety.approval import ApprovalRequest, NonInteractiveApprover
from kcode.tools.base import Tool, ToolArgs, ToolContext, ok


class EchoArgs(ToolArgs):
    text: str


class EchoTool(Tool[EchoArgs]):
    name = "echo"
    description = "echo text"
    args_model = EchoArgs
    read_only = True
    running = 0
    max_running = 0

    async def run(self, args: EchoArgs, ctx: ToolContext) -> ToolResult:
        EchoTool.running += 1
        EchoTool.max_running = max(EchoTool.max_running, EchoTool.running)
        await asyncio.sleep(0.05)
        EchoTool.running -= 1
        return ok(args.text)


class TouchArgs(ToolArgs):
    path: str


class TouchTool(Tool[TouchArgs]):
    name = "touch"
    description = "create a file"
    args_model = TouchArgs
    order: ClassVar[list[str]] = []

    async def run(self, args: TouchArgs, ctx: ToolContext) -> ToolResult:
        await ctx.approve(ApprovalRequest("edit", self.name, f"edit {args.path}"))
        TouchTool.order.append(args.path)
        target = ctx.resolve(args.path)
        ctx.changes.record_before_write(target)
        target.write_text(target.read_text() + "x" if target.exists() else "x")
        return ok(f"touched {args.path}")

    def written_paths(self, args: TouchArgs) -> list[str]:
        return [args.path]


class SlowArgs(ToolArgs):
    seconds: float


class SlowTool(Tool[SlowArgs]):
    name = "slow"
    description = "sleep"
    args_model = SlowArgs
    read_only = True

    async def run(self, args: SlowArgs, ctx: ToolContext) -> ToolResult:
        await asyncio.sleep(args.seconds)
        return ok("slept")


def make_agent(tmp_path: Path, script: list[Any], approval: str = "auto", **kw: Any) -> Agent:
    tools: dict[str, Tool[Any]] = {"echo": EchoTool(), "touch": TouchTool(), "slow": SlowTool()}
    ctx = ToolContext(root=tmp_path, approver=NonInteractiveApprover(approval))  # type: ignore[arg-type]
    return Agent(
        backend=kw.pop("backend", None) or ScriptedBackend(script),
        tools=tools,
        ctx=ctx,
        system_prompt="system",
        options=BackendOptions(model="test"),
        **kw,
    )


async def run(agent: Agent, prompt: str = "go") -> list[Event]:
    return [event async for event in agent.run_turn(Message.user(prompt))]


def assert_history_valid(agent: Agent) -> None:
    """Every tool call has exactly one result, right after its assistant message."""
    pending: list[str] = []
    for msg in agent.history:
        if msg.role == "assistant":
            assert not pending, f"calls without results: {pending}"
            pending = [c.id for c in msg.tool_calls]
        elif msg.role == "tool":
            assert msg.tool_call_id in pending
            pending.remove(msg.tool_call_id)
        else:
            assert not pending
    assert not pending


async def test_a_turn_with_a_tool_call_emits_events_in_order(tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path,
        [
            {"text": "Let me echo.", "tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}]},
            {"text": "Done: hi"},
        ],
    )
    events = await run(agent)
    kinds = [type(e) for e in events]
    assert kinds[0] is TurnStarted and kinds[-1] is TurnFinished
    assert kinds.index(ToolCallStarted) < kinds.index(ToolCallFinished)
    assert kinds.count(StepStarted) == 2 and kinds.count(AssistantMessage) == 2
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me echo.Done: hi"
    finished = events[-1]
    assert isinstance(finished, TurnFinished)
    assert finished.reason == "completed" and finished.result == "Done: hi"
    assert finished.stats["steps"] == 2 and finished.stats["critical_steps"] == 2
    assert any(isinstance(e, Usage) for e in events)
    tool_msg = [m for m in agent.history if m.role == "tool"]
    assert tool_msg[0].text == "hi"
    assert_history_valid(agent)


async def test_reads_run_concurrently_and_writes_to_one_path_run_in_order(tmp_path: Path) -> None:
    EchoTool.max_running = 0
    TouchTool.order.clear()
    calls = [{"name": "echo", "arguments": {"text": str(i)}} for i in range(4)]
    calls += [{"name": "touch", "arguments": {"path": p}} for p in ("a", "b", "a")]
    agent = make_agent(tmp_path, [{"tool_calls": calls}, {"text": "ok"}])
    events = await run(agent)
    assert EchoTool.max_running == 4
    assert (tmp_path / "a").read_text() == "xx"
    assert TouchTool.order.index("a") < len(TouchTool.order) - 1
    results = [m.text for m in agent.history if m.role == "tool"]
    assert results[:4] == ["0", "1", "2", "3"]  # results keep call order
    assert events[-1].stats["files_changed"] == ["a", "b"]  # type: ignore[attr-defined]


async def test_bad_arguments_and_unknown_tools_come_back_as_errors(tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path,
        [
            {
                "tool_calls": [
                    {"name": "echo", "arguments": '{"text": "unterminated'},
                    {"name": "echo", "arguments": {"wrong": 1}},
                    {"name": "nope", "arguments": {}},
                ]
            },
            {"text": "sorry"},
        ],
    )
    events = await run(agent)
    errors = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [e.ok for e in errors] == [False, False, False]
    assert "not valid JSON" in errors[0].content
    assert "text" in errors[1].content and "wrong" in errors[1].content
    assert "unknown tool 'nope'" in errors[2].content
    assert events[-1].reason == "completed"  # type: ignore[attr-defined]
    assert_history_valid(agent)


async def test_repeated_identical_calls_warn_then_stop(tmp_path: Path) -> None:
    same = {"tool_calls": [{"name": "echo", "arguments": {"text": "again"}}]}
    agent = make_agent(tmp_path, [same] * 10)
    events = await run(agent)
    assert events[-1].reason == "repeated_calls"  # type: ignore[attr-defined]
    warned = [m.text for m in agent.history if m.role == "tool" and "times in a row" in m.text]
    assert warned, "the model was warned before the stop"
    assert_history_valid(agent)


async def test_max_steps_stops_the_turn(tmp_path: Path) -> None:
    script = [{"tool_calls": [{"name": "echo", "arguments": {"text": str(i)}}]} for i in range(9)]
    agent = make_agent(tmp_path, script, max_steps=3)
    events = await run(agent)
    assert events[-1].reason == "max_steps"  # type: ignore[attr-defined]
    assert "--max-steps" in events[-1].result  # type: ignore[attr-defined]


async def test_an_action_the_policy_does_not_grant_stops_with_approval_required(
    tmp_path: Path,
) -> None:
    agent = make_agent(
        tmp_path,
        [{"tool_calls": [{"name": "touch", "arguments": {"path": "f"}}]}, {"text": "x"}],
        approval="read-only",
    )
    events = await run(agent)
    assert events[-1].reason == "approval_required"  # type: ignore[attr-defined]
    assert "--approval auto-edit" in events[-1].result  # type: ignore[attr-defined]
    assert not (tmp_path / "f").exists()
    assert_history_valid(agent)


async def test_backend_error_ends_the_turn_with_its_message(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, [{"error": "upstream exploded"}])
    events = await run(agent)
    assert events[-1].reason == "backend_error"  # type: ignore[attr-defined]
    assert "upstream exploded" in events[-1].result  # type: ignore[attr-defined]


async def test_a_retry_discards_the_partial_reply(tmp_path: Path) -> None:
    class FlakyBackend(ScriptedBackend):
        async def stream(self, messages, tools, options):  # type: ignore[no-untyped-def, override]
            yield TextChunk("partial garbage")
            yield RetryNotice(1, 0.0, "stream cut; restarting the reply")
            async for delta in super().stream(messages, tools, options):
                yield delta

    agent = make_agent(tmp_path, [], backend=FlakyBackend([{"text": "clean answer"}]))
    events = await run(agent)
    assert any(isinstance(e, Retrying) for e in events)
    assert events[-1].result == "clean answer"  # type: ignore[attr-defined]
    assert agent.history[-1].text == "clean answer"


async def test_cancelling_a_turn_keeps_the_history_valid(tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path,
        [{"tool_calls": [{"name": "slow", "arguments": {"seconds": 30}}]}, {"text": "never"}],
    )

    async def consume() -> None:
        async for event in agent.run_turn(Message.user("go")):
            if isinstance(event, ToolCallStarted):
                task.cancel()

    task = asyncio.ensure_future(consume())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_history_valid(agent)
    assert "cancelled" in agent.history[-1].text


async def test_final_answer_starting_with_failed_is_a_failure(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, [{"text": "FAILED: could not find the bug"}])
    events = await run(agent)
    assert events[-1].reason == "failed"  # type: ignore[attr-defined]


async def test_backend_exceptions_never_escape_as_tracebacks(tmp_path: Path) -> None:
    class Broken(ScriptedBackend):
        async def stream(self, messages, tools, options):  # type: ignore[no-untyped-def, override]
            raise BackendError("auth", "the API key was refused")
            yield  # pragma: no cover

    agent = make_agent(tmp_path, [], backend=Broken([]))
    events = await run(agent)
    assert events[-1].reason == "backend_error"  # type: ignore[attr-defined]


async def test_red_tests_of_an_earlier_turn_do_not_fail_a_later_one(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, [{"text": "tests are red"}, {"text": "here is the answer"}])
    agent.ctx.last_tests = {"passed": 0, "failed": 2, "errors": 0}  # as run_tests left it
    first = await run(agent, "check")
    assert first[-1].reason == "completed"  # type: ignore[attr-defined]
    agent.ctx.last_tests = {"passed": 0, "failed": 2, "errors": 0}
    second = await run(agent, "another question")
    assert second[-1].reason == "completed"  # type: ignore[attr-defined]
