"""A garbage `data:` line mid-stream (not JSON, or JSON of the wrong shape) never loses the turn:
it is retried, or the turn ends with the documented backend error and a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kcode.agents.loop import BACKEND_ERROR, COMPLETED, Agent
from kcode.backends.base import BackendOptions
from kcode.backends.openai.api import OpenAIBackend
from kcode.events import Error, Event, TurnFinished
from kcode.messages import Message
from kcode.tools.base import ToolContext
from kcode.tools.registry import build_tools
from tests.fake_openai import FakeOpenAIServer, Reply

GARBAGE = {
    "not json": "{not json",
    "html": "<html>502 Bad Gateway</html>",
    "a list": "[1, 2, 3]",
    "a string": '"hello"',
    "choices not a list": '{"choices": 5}',
    "delta not an object": '{"choices": [{"index": 0, "delta": "oops"}]}',
    "tool_calls not a list": '{"choices": [{"index": 0, "delta": {"tool_calls": 5}}]}',
    "function not an object": (
        '{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "x"}]}}]}'
    ),
    "content not a string": '{"choices": [{"index": 0, "delta": {"content": {"a": 1}}}]}',
    "usage not numbers": '{"choices": [], "usage": {"prompt_tokens": "many"}}',
}


class GarbageOnce:
    """Write-file call with a garbage chunk slipped in on the first `times` requests, then "done"."""

    def __init__(self, data: str, times: int) -> None:
        self.data, self.times, self.requests = data, times, 0

    def __call__(self, body: dict[str, Any]) -> Reply:
        self.requests += 1
        garbage = {"garbage": self.data} if self.requests <= self.times else {}
        if body["messages"][-1].get("role") == "tool":
            return Reply(content="done", **garbage)
        return Reply.tool_call("write_file", {"path": "out.txt", "content": "ok\n"}, **garbage)


async def _turn(server: FakeOpenAIServer, root: Path) -> tuple[TurnFinished, list[Event]]:
    backend = OpenAIBackend(
        server.base_url, "sk-test", "fake-model", max_retries=2, backoff_base_s=0.01
    )
    agent = Agent(
        backend=backend,
        tools=build_tools(["write_file"]),
        ctx=ToolContext(root=root),
        system_prompt="test",
        options=BackendOptions(model="fake-model"),
        max_steps=6,
    )
    events = [e async for e in agent.run_turn(Message.user("write out.txt"))]
    finished = [e for e in events if isinstance(e, TurnFinished)]
    assert len(finished) == 1, events
    return finished[0], events


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
async def test_one_garbage_chunk_does_not_lose_the_turn(tmp_path: Path, data: str) -> None:
    responder = GarbageOnce(data, times=1)
    with FakeOpenAIServer(responder) as server:
        finished, _ = await _turn(server, tmp_path)
    assert finished.reason == COMPLETED, finished
    assert (tmp_path / "out.txt").read_text() == "ok\n"


async def test_garbage_on_every_attempt_ends_with_a_clear_backend_error(tmp_path: Path) -> None:
    with FakeOpenAIServer(GarbageOnce("{not json", times=100)) as server:
        finished, events = await _turn(server, tmp_path)
    assert finished.reason == BACKEND_ERROR, finished
    errors = " ".join(e.message for e in events if isinstance(e, Error)) + finished.result
    assert "non-JSON" in errors, errors
    assert not (tmp_path / "out.txt").exists()
