"""The agent loop with MCP servers that start in the background: the first request does not wait,
a server that connects late adds its tools on the next step, and approvals apply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from kcode.agents.loop import Agent
from kcode.backends.base import BackendOptions, Delta, ToolSpec
from kcode.backends.scripted import ScriptedBackend
from kcode.events import Event, ToolCallFinished, TurnFinished
from kcode.mcp.config import McpSetup, parse_server
from kcode.mcp.manager import McpManager
from kcode.mcp.tools import McpToolset
from kcode.messages import Message
from kcode.safety.approval import NonInteractiveApprover
from kcode.safety.rules import RuleSet
from kcode.tools.base import ToolContext
from kcode.tools.registry import LazyTools, tool_specs
from tests.mcp.conftest import stdio_entry


class RecordingBackend(ScriptedBackend):
    """The scripted model, plus the tool names each request offered."""

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        super().__init__(turns)
        self.offered: list[list[str]] = []

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> AsyncIterator[Delta]:
        self.offered.append([t.name for t in tools])
        async for delta in super().stream(messages, tools, options):
            yield delta


def make_agent(
    tmp_path: Path, backend: RecordingBackend, ctx: ToolContext
) -> tuple[Agent, McpManager]:
    server = parse_server("basic", stdio_entry("basic"), "test.json", "user", [])
    assert server is not None
    manager = McpManager(McpSetup([server]), tmp_path, tmp_path / "logs")
    base = LazyTools(["read_file", "glob"])
    agent = Agent(
        backend=backend,
        tools=McpToolset(base, manager),
        ctx=ctx,
        system_prompt="test",
        options=BackendOptions(),
        specs=tool_specs(base),
    )
    return agent, manager


async def run(agent: Agent, prompt: str) -> list[Event]:
    return [event async for event in agent.run_turn(Message.user(prompt))]


async def test_first_request_does_not_wait_and_late_tools_appear(tmp_path: Path) -> None:
    backend = RecordingBackend(
        [
            # Step 1 went out before the server was up; the model knows the tool by name anyway.
            {"tool_calls": [{"name": "mcp__basic__echo", "arguments": {"text": "hi"}}]},
            {"text": "done"},
        ]
    )
    agent, manager = make_agent(tmp_path, backend, ToolContext(root=tmp_path))
    try:
        events = await asyncio.wait_for(run(agent, "go"), 120)
    finally:
        await manager.aclose()
    assert backend.offered[0] == ["read_file", "glob"]  # no waiting for the server
    assert "mcp__basic__echo" in backend.offered[1]  # connected during step 1: offered in step 2
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(e.name, e.ok, e.content) for e in finished] == [("mcp__basic__echo", True, "echo: hi")]
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "completed"


async def test_mcp_calls_go_through_approval_and_rules(tmp_path: Path) -> None:
    backend = RecordingBackend(
        [
            {"tool_calls": [{"name": "mcp__basic__echo", "arguments": {"text": "x"}}]},
            {"tool_calls": [{"name": "mcp__basic__add", "arguments": {"a": 1, "b": 2}}]},
            {"text": "done"},
        ]
    )
    rules = RuleSet.parse({"allow": ["mcp__basic__add"], "deny": ["mcp__basic__echo"]})
    ctx = ToolContext(root=tmp_path, approver=NonInteractiveApprover("auto-edit", rules))
    agent, manager = make_agent(tmp_path, backend, ctx)
    try:
        events = await asyncio.wait_for(run(agent, "go"), 120)
    finally:
        await manager.aclose()
    finished = [(e.name, e.ok, e.content) for e in events if isinstance(e, ToolCallFinished)]
    assert finished[0][:2] == ("mcp__basic__echo", False) and "deny rule" in finished[0][2]
    assert finished[1] == ("mcp__basic__add", True, "3")
