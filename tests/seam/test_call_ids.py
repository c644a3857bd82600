"""Issue #12 item 2: approval events carry the id of the call that asked, so a front end can pair them.

Reproduces the REPL bug: two edits in one reply under auto-edit showed the second file's diff under the
first file and none under the second, because diffs were keyed by (agent, tool name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcode.agents.loop import Agent
from kcode.agents.orchestrator import Orchestrator
from kcode.backends.base import BackendOptions
from kcode.backends.scripted import ScriptedBackend
from kcode.events import (
    AgentFinished,
    AgentSpawned,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    ToolCallStarted,
)
from kcode.messages import Message
from kcode.safety.approval import NonInteractiveApprover
from kcode.tools.base import ToolContext
from kcode.tools.registry import build_tools
from kcode.ui.render import Renderer
from tests.ui.helpers import text_console


def _edit(path: str, old: str, new: str) -> dict[str, Any]:
    return {
        "name": "edit_file",
        "arguments": {"path": path, "edits": [{"old_string": old, "new_string": new}]},
    }


def _agent(root: Path, script: list[Any], tools: tuple[str, ...]) -> Agent:
    ctx = ToolContext(root=root, approver=NonInteractiveApprover("auto-edit"))
    return Agent(
        backend=ScriptedBackend(script),
        tools=build_tools(tools),
        ctx=ctx,
        system_prompt="system",
        options=BackendOptions(model="test"),
    )


async def _turn(agent: Agent, prompt: str = "go") -> list[Event]:
    return [event async for event in agent.run_turn(Message.user(prompt))]


async def _two_parallel_edits(tmp_path: Path) -> list[Event]:
    (tmp_path / "alpha.py").write_text("A = 1\n")
    (tmp_path / "beta.py").write_text("B = 1\n")
    script = [
        {"tool_calls": [_edit("alpha.py", "A = 1", "A = 2"), _edit("beta.py", "B = 1", "B = 2")]},
        {"text": "done"},
    ]
    return await _turn(_agent(tmp_path, script, ("edit_file",)))


async def test_approval_events_carry_the_call_id_of_the_call_that_asked(tmp_path: Path) -> None:
    events = await _two_parallel_edits(tmp_path)
    started = {e.arguments["path"]: e.call_id for e in events if isinstance(e, ToolCallStarted)}
    assert set(started) == {"alpha.py", "beta.py"} and "" not in started.values()
    for kind in (ApprovalRequested, ApprovalDecided):
        approvals = [e for e in events if isinstance(e, kind)]
        assert sorted(e.call_id for e in approvals) == sorted(started.values())
    for request in (e for e in events if isinstance(e, ApprovalRequested)):
        path = next(p for p, cid in started.items() if cid == request.call_id)
        assert path in request.summary and f"+++ b/{path}" in request.detail
    # stream-json consumers see the pairing too
    assert all(
        e.to_json()["call_id"] in started.values()
        for e in events
        if isinstance(e, ApprovalRequested | ApprovalDecided)
    )


async def test_each_parallel_edit_shows_its_own_diff_in_the_repl(tmp_path: Path) -> None:
    events = await _two_parallel_edits(tmp_path)
    console, buffer = text_console()
    renderer = Renderer(console)
    for event in events:
        renderer.handle(event)
    renderer.finish()
    out = buffer.getvalue()
    alpha_line, beta_line = out.index("edit_file alpha.py"), out.index("edit_file beta.py")
    first, second = sorted([("alpha", alpha_line), ("beta", beta_line)], key=lambda x: x[1])
    block_of = {first[0]: out[first[1] : second[1]], second[0]: out[second[1] :]}
    assert "+A = 2" in block_of["alpha"] and "+B = 2" not in block_of["alpha"], out
    assert "+B = 2" in block_of["beta"] and "+A = 2" not in block_of["beta"], out


async def test_sub_agent_events_carry_the_spawn_call_id(tmp_path: Path) -> None:
    (tmp_path / "gamma.py").write_text("G = 1\n")
    backend = ScriptedBackend(
        {
            "*": [
                {
                    "tool_calls": [
                        {
                            "id": "spawn-1",
                            "name": "spawn_agents",
                            "arguments": {"tasks": [{"role": "edit", "prompt": "SUB change G"}]},
                        }
                    ]
                },
                {"text": "all done"},
            ],
            "SUB": [{"tool_calls": [_edit("gamma.py", "G = 1", "G = 2")]}, {"text": "edited"}],
        }
    )
    ctx = ToolContext(root=tmp_path, approver=NonInteractiveApprover("auto-edit"))
    agent = Agent(
        backend=backend,
        tools=build_tools(("spawn_agents",)),
        ctx=ctx,
        system_prompt="system",
        options=BackendOptions(model="test"),
    )
    ctx.spawner = Orchestrator.for_agent(agent)
    events = await _turn(agent)
    assert (tmp_path / "gamma.py").read_text() == "G = 2\n"
    sub = [e for e in events if e.agent != "main"]
    assert sub and all(e.parent_call_id == "spawn-1" for e in sub)
    assert all(
        e.parent_call_id is None
        for e in events
        if e.agent == "main" and not isinstance(e, AgentSpawned | AgentFinished)
    )
    lifecycle = [e for e in events if isinstance(e, AgentSpawned | AgentFinished)]
    assert len(lifecycle) == 2 and all(e.parent_call_id == "spawn-1" for e in lifecycle)
    sub_approval = next(e for e in sub if isinstance(e, ApprovalRequested))
    sub_edit = next(e for e in sub if isinstance(e, ToolCallStarted))
    assert sub_approval.call_id == sub_edit.call_id != "spawn-1"
