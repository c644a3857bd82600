"""Batch fan-out (prompt_template + items), the 429 requeue, the ramp, the shared brief, bad input:
the real Agent loop and orchestrator, OpenAIBackend over HTTP, the fake server."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kcode.agents import batch
from kcode.events import AgentSpawned, Error, Event, Retrying
from tests.agents.helpers import finished, main_agent, run
from tests.agents.test_orchestrator import MAIN, agents_of, backend_for, spawn_result
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply
from tests.fake_openai_replies import first_user_text

ITEMS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]
TEMPLATE = "Summarise the module {{item}} in one line."


def fan_out(**arguments: Any) -> Reply:
    return Reply.tool_call("spawn_agents", arguments)


class RateLimitOnce:
    """Answers the first request of the conversation starting with `key` with HTTP 429 (the
    backend has no retries left, so the orchestrator sees it), everything else by script."""

    def __init__(self, inner: ByConversation, key: str) -> None:
        self.inner, self.key = inner, key
        self.refused = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        if first_user_text(body).startswith(self.key):
            with self._lock:
                if self.refused == 0:
                    self.refused += 1
                    return Reply.fault(429, retry_after=0, message="slow down")
        return self.inner(body)


async def test_items_come_back_in_item_order_and_a_rate_limited_agent_is_requeued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "RAMP_STEP_S", 0.05)
    scripts: dict[str, list[Reply]] = {
        MAIN: [fan_out(prompt_template=TEMPLATE, items=ITEMS, role="search"), Reply.text("done")]
    }
    for i, item in enumerate(ITEMS):
        # the first items answer last: the result order must still be the item order
        delay = 0.3 if i == 0 else 0.0
        scripts[f"Summarise the module {item}"] = [
            Reply.text(f"RESULT: ok\nFINDINGS:\n- {item} does things\nNOTES: none", delay_s=delay)
        ]
    responder = RateLimitOnce(ByConversation(scripts), "Summarise the module beta")
    with FakeOpenAIServer(responder) as server:
        backend = backend_for(server)
        agent = main_agent(backend, tmp_path)
        agent.ctx.spawner.requeue_base_s = 0.05
        events = await run(agent, MAIN)
        await backend.aclose()
        requests = server.requests

    assert responder.refused == 1
    result = spawn_result(events)
    assert result.ok, result.content
    reports = [a["report"] for a in result.data["agents"]] if result.data else []
    assert [r.split("- ")[1].split()[0] for r in reports] == ITEMS
    assert [a["id"] for a in result.data["agents"]] == [f"search-{i}" for i in range(1, 8)]
    beta = agents_of(result)["search-2"]
    assert beta["ok"] and beta["error"] is None
    retries = [e for e in events if isinstance(e, Retrying) and e.agent == "search-2"]
    assert len(retries) == 1 and "429" in retries[0].reason
    # the 429 itself is not reported as the agent's error, and the run went on
    assert not [e for e in events if isinstance(e, Error) and e.agent == "search-2"]
    assert finished(events).reason == "completed"
    # requeued from its prompt: the retried request is byte-identical to the refused one
    beta_bodies = [r.body for r in requests if r.body and "module beta" in first_user_text(r.body)]
    assert len(beta_bodies) == 2 and beta_bodies[0]["messages"] == beta_bodies[1]["messages"]
    # the ramp: agents past the burst asked no earlier than their slot on the ramp
    main_first = requests[0].arrived
    for i, item in enumerate(ITEMS):
        first = next(r for r in requests if r.body and f"module {item}" in first_user_text(r.body))
        assert first.arrived - main_first >= batch.ramp_delay(i) - 0.01


async def test_an_agent_still_rate_limited_after_every_requeue_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "MAX_REQUEUES", 2)
    scripts = {
        MAIN: [fan_out(prompt_template="look at {{item}}", items=["x", "y"]), Reply.text("ok")],
        "look at x": [Reply.text("RESULT: ok\nNOTES: none")],
        "look at y": [Reply.fault(429, retry_after=0)],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        agent = main_agent(backend, tmp_path)
        agent.ctx.spawner.requeue_base_s = 0.01
        events = await run(agent, MAIN)
        await backend.aclose()
        tries = [r for r in server.requests if r.body and first_user_text(r.body) == "look at y"]
    agents = agents_of(spawn_result(events))
    assert agents["general-1"]["ok"]
    assert not agents["general-2"]["ok"] and "rate limiting" in agents["general-2"]["error"]
    assert len(tries) == 3  # the first try and two requeues
    assert len([e for e in events if isinstance(e, Retrying) and e.agent == "general-2"]) == 2


async def test_the_brief_ends_every_sub_agent_system_prompt_byte_for_byte(tmp_path: Path) -> None:
    brief = "Interfaces: Shape.area() -> float. Name new helpers snake_case. Units: metres."
    scripts = {
        MAIN: [
            Reply.tool_call(
                "spawn_agents",
                {
                    "tasks": [
                        {"role": "search", "prompt": "find A"},
                        {"role": "general", "prompt": "do B"},
                        {"role": "search", "prompt": "find C"},
                    ],
                    "brief": brief,
                },
            ),
            Reply.text("done"),
        ],
        "*": [Reply.text("RESULT: ok\nNOTES: none")],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, tmp_path), MAIN)
        await backend.aclose()
        subs = [r.body for r in server.requests if r.body and first_user_text(r.body) != MAIN]
    assert finished(events).reason == "completed"
    assert len(subs) == 3
    # in the order of their tasks, whichever request arrived first
    subs.sort(key=lambda body: ["find A", "do B", "find C"].index(first_user_text(body)))
    systems = [body["messages"][0]["content"] for body in subs]
    block = batch.brief_block(brief)
    assert all(s.endswith(block) for s in systems)
    assert brief in block
    # the two search agents share their whole system prompt
    assert systems[0] == systems[2]
    # and without a brief (or with another one) the role's system prompt is the same up to the
    # brief: a new fan-out's brief leaves the role's cached prefix intact
    without = systems[0].removesuffix(block)
    assert without and not without.endswith(brief) and "# Brief" not in without


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prompt_template": "look at {item}", "items": ["a", "b"]}, "must contain {{item}}"),
        (
            {"prompt_template": "look at {{item}}", "items": [f"i{n}" for n in range(129)]},
            "at most 128 items",
        ),
        ({"prompt_template": "look at {{item}}", "items": ["a", "b", "a"]}, "items 0 and 2"),
        (
            {"tasks": [{"role": "search", "prompt": "x"}, {"role": "search", "prompt": "x"}]},
            "tasks 0 and 1 give the same prompt",
        ),
        (
            {
                "tasks": [{"role": "search", "prompt": "x"}],
                "prompt_template": "look at {{item}}",
                "items": ["a"],
            },
            "not both",
        ),
        ({"prompt_template": "look at {{item}}", "items": []}, "items is empty"),
        ({"items": ["a", "b"]}, "prompt_template is missing"),
        ({"prompt_template": "look at {{item}}", "items": ["a", " "]}, "item 1 is empty"),
        ({"tasks": [{"role": "search", "prompt": "x"}], "role": "edit"}, "role goes with"),
        (
            {"tasks": [{"role": "search", "prompt": "x"}], "brief": "b" * 20_001},
            "keep it under",
        ),
        ({"prompt_template": "look at {{item}}", "items": ["a"], "role": "wizard"}, "role"),
    ],
)
async def test_bad_batch_input_is_an_error_result_and_starts_nothing(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    scripts = {MAIN: [fan_out(**arguments), Reply.text("ok")]}
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events: list[Event] = await run(main_agent(backend, tmp_path), MAIN)
        await backend.aclose()
        assert len(server.requests) == 2  # no sub-agent made a request
    result = spawn_result(events)
    assert not result.ok and message in result.content, result.content
    assert not [e for e in events if isinstance(e, AgentSpawned)]


def test_an_item_holding_the_placeholder_is_not_expanded_twice() -> None:
    tasks = batch.expand_items("check {{item}} and {{item}}", ["{{item}}x", "y"], None)
    assert [t.prompt for t in tasks] == ["check {{item}}x and {{item}}x", "check y and y"]
    assert {t.role for t in tasks} == {"general"}


async def test_an_agent_refused_mid_task_carries_on_from_where_it_was(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the answer is 42\n")
    scripts = {
        MAIN: [fan_out(prompt_template="read {{item}}", items=["notes.txt"]), Reply.text("ok")],
        "read notes.txt": [
            Reply.tool_call("read_file", {"path": "notes.txt"}),
            Reply.text("RESULT: ok\nFINDINGS:\n- notes.txt:1 42\nNOTES: none"),
        ],
    }
    inner = ByConversation(scripts)
    refused: list[int] = []

    def responder(body: dict[str, Any]) -> Reply:
        steps = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if first_user_text(body) == "read notes.txt" and steps == 1 and not refused:
            refused.append(steps)
            return Reply.fault(429, retry_after=0)
        return inner(body)

    with FakeOpenAIServer(responder) as server:
        backend = backend_for(server)
        agent = main_agent(backend, tmp_path)
        agent.ctx.spawner.requeue_base_s = 0.01
        events = await run(agent, MAIN)
        await backend.aclose()
        last = server.requests[-2].body  # the sub-agent's final request (the main one follows)
    assert refused == [1]
    assert agents_of(spawn_result(events))["general-1"]["ok"]
    assert last is not None
    texts = [str(m.get("content")) for m in last["messages"]]
    # its conversation kept the tool result and got the note, the task was not started over
    assert any("the answer is 42" in t for t in texts)
    assert texts[-1] == batch.CONTINUE_AFTER_REQUEUE
    assert sum(t == "read notes.txt" for t in texts) == 1
