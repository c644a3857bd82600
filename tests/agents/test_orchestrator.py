"""spawn_agents end to end: the real Agent loop, OpenAIBackend over HTTP, the fake server, real git."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from kcode.agents.loop import Agent
from kcode.backends.openai.api import OpenAIBackend
from kcode.events import AgentFinished, AgentSpawned, Event, ToolCallFinished
from kcode.messages import Message
from kcode.safety.approval import NonInteractiveApprover
from tests.agents.helpers import finished, git, main_agent, make_repo, run, worktree_paths
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply
from tests.waiting import async_wait_until

MAIN = "MAIN: fan out"


def spawn(*tasks: tuple[str, str]) -> Reply:
    return Reply.tool_call("spawn_agents", {"tasks": [{"role": r, "prompt": p} for r, p in tasks]})


def backend_for(server: FakeOpenAIServer, max_parallel: int = 8) -> OpenAIBackend:
    return OpenAIBackend(
        server.base_url, "key", "fake-model", max_concurrency=max_parallel, max_retries=0
    )


def spawn_result(events: list[Event]) -> ToolCallFinished:
    found = [
        e
        for e in events
        if isinstance(e, ToolCallFinished) and e.name == "spawn_agents" and e.agent == "main"
    ]
    assert len(found) == 1
    return found[0]


def agents_of(result: ToolCallFinished) -> dict[str, dict[str, Any]]:
    assert result.data is not None, result.content
    return {a["id"]: a for a in result.data["agents"]}


async def test_sixteen_search_agents_all_finish_and_never_exceed_max_parallel(
    tmp_path: Path,
) -> None:
    scripts: dict[str, list[Reply]] = {
        MAIN: [spawn(*[("search", f"find item {i}") for i in range(16)]), Reply.text("all found")]
    }
    for i in range(16):
        scripts[f"find item {i}"] = [
            Reply.tool_call("read_file", {"path": "notes.txt"}, delay_s=0.05),
            Reply.text(f"RESULT: ok\nFINDINGS:\n- notes.txt:1 item {i}\nNOTES: none", delay_s=0.05),
        ]
    (tmp_path / "notes.txt").write_text("items\n")
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server, 16)
        agent = main_agent(backend, tmp_path, max_parallel=4)
        events = await run(agent, MAIN)
        await backend.aclose()
        assert server.max_in_flight <= 4
        assert server.max_in_flight >= 2  # they really ran side by side

    assert finished(events).reason == "completed"
    agents = agents_of(spawn_result(events))
    assert len(agents) == 16 and all(a["ok"] for a in agents.values())
    assert all(a["steps"] == 2 for a in agents.values())
    assert "notes.txt:1 item 3" in agents["search-4"]["report"]
    spawned = {e.agent_id for e in events if isinstance(e, AgentSpawned)}
    done = {e.agent_id for e in events if isinstance(e, AgentFinished)}
    assert spawned == done == set(agents)
    # the sub-agents' own events reach the parent's stream, tagged with their id
    assert {e.agent for e in events if isinstance(e, ToolCallFinished)} >= spawned
    stats = finished(events).stats
    assert stats["steps"] == 2 + 16 * 2
    assert stats["critical_steps"] == 2 + 2
    assert len(stats["agents"]) == 17


async def test_a_failing_sub_agent_returns_an_error_and_the_others_succeed(tmp_path: Path) -> None:
    scripts = {
        MAIN: [
            spawn(("search", "good one"), ("search", "broken one"), ("search", "good two")),
            Reply.text("done"),
        ],
        "good": [Reply.text("RESULT: ok\nFINDINGS: none\nNOTES: none", delay_s=0.1)],
        "broken": [Reply.fault(400, message="the model exploded")],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, tmp_path), MAIN)
        await backend.aclose()
    agents = agents_of(spawn_result(events))
    assert agents["search-1"]["ok"] and agents["search-3"]["ok"]
    broken = agents["search-2"]
    assert not broken["ok"] and "the model exploded" in broken["error"]
    assert finished(events).reason == "completed"


SOURCE = "def alpha():\n    return 1\n\n\n\n\n\ndef beta():\n    return 2\n"


def edit(old: str, new: str) -> Reply:
    return Reply.tool_call(
        "edit_file", {"path": "m.py", "edits": [{"old_string": old, "new_string": new}]}
    )


async def _fan_out_edits(root: Path, first: Reply, second: Reply) -> list[Event]:
    scripts = {
        MAIN: [spawn(("edit", "edit A"), ("edit", "edit B")), Reply.text("merged")],
        "edit A": [first, Reply.text("RESULT: ok\nCHANGES:\n- m.py:2\nNOTES: none")],
        # B answers later, so A is merged first and B is the one that may conflict
        "edit B": [second, Reply.text("RESULT: ok\nCHANGES:\n- m.py:9\nNOTES: none", delay_s=0.3)],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, root), MAIN)
        await backend.aclose()
    return events


async def test_edits_to_different_functions_both_land_and_user_changes_survive(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "repo", {"m.py": SOURCE, "other.py": "x = 1\n"})
    (root / "other.py").write_text("x = 2  # uncommitted\n")
    (root / "scratch.txt").write_text("untracked notes\n")
    staged_before = git(root, "diff", "--cached")

    events = await _fan_out_edits(
        root, edit("return 1", "return 100"), edit("return 2", "return 200")
    )

    text = (root / "m.py").read_text()
    assert "return 100" in text and "return 200" in text
    assert (root / "other.py").read_text() == "x = 2  # uncommitted\n"
    assert (root / "scratch.txt").read_text() == "untracked notes\n"
    assert git(root, "diff", "--cached") == staged_before
    assert worktree_paths(root) == [str(root)]
    agents = agents_of(spawn_result(events))
    assert agents["edit-1"]["files_changed"] == ["m.py"]
    assert agents["edit-2"]["ok"] and "conflicts" not in agents["edit-2"]
    assert finished(events).stats["files_changed"] == ["m.py"]


async def test_overlapping_edits_report_a_conflict_and_keep_the_other_diff_on_a_ref(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "repo", {"m.py": SOURCE})

    events = await _fan_out_edits(
        root, edit("return 1", "return 'from A'"), edit("return 1", "return 'from B'")
    )

    text = (root / "m.py").read_text()
    assert "return 'from A'" in text and "from B" not in text and "<<<<<<<" not in text
    result = spawn_result(events)
    loser = agents_of(result)["edit-2"]
    assert not loser["ok"]
    assert loser["conflicts"][0]["path"] == "m.py"
    assert "return 'from B'" in loser["conflicts"][0]["hunks"]
    assert loser["ref"] == "refs/kcode/agents/test-run/edit-2"
    _, snapshot, ref = loser["see"].split()[1:]
    assert "+    return 'from B'" in git(root, "diff", snapshot, ref)
    assert "git diff" in result.content
    assert worktree_paths(root) == [str(root)]


async def test_outside_git_edit_agents_share_the_tree_and_both_edits_land(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(SOURCE)
    events = await _fan_out_edits(
        tmp_path, edit("return 1", "return 100"), edit("return 2", "return 200")
    )
    text = (tmp_path / "m.py").read_text()
    assert "return 100" in text and "return 200" in text
    assert all(a["ok"] for a in agents_of(spawn_result(events)).values())


def _child_pids() -> list[int]:
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                out.append(int(entry))
    return out


async def test_cancelling_mid_fan_out_leaves_no_worktrees_processes_or_open_calls(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "repo", {"m.py": SOURCE})
    slow = Reply.text("RESULT: ok", delay_s=30)
    scripts = {
        MAIN: [spawn(*[("edit", f"slow edit {i}") for i in range(4)]), Reply.text("never")],
        "slow edit": [slow],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        agent = main_agent(backend, root)
        seen: list[Event] = []

        async def consume() -> None:
            async for event in agent.run_turn(Message.user(MAIN)):
                seen.append(event)

        task = asyncio.create_task(consume())

        def all_started() -> bool:
            assert not task.done(), seen[-1]
            return sum(isinstance(e, AgentSpawned) for e in seen) >= 4 and len(server.requests) >= 5

        await async_wait_until(all_started, "4 sub-agents and 5 requests in flight")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.aclose()

    assert worktree_paths(root) == [str(root)]
    assert not [p for p in _child_pids()]
    assert_history_valid(agent)
    assert (root / "m.py").read_text() == SOURCE


def assert_history_valid(agent: Agent) -> None:
    answered = {m.tool_call_id for m in agent.history if m.role == "tool"}
    for message in agent.history:
        for call in message.tool_calls:
            assert call.id in answered, f"tool call {call.name} has no result"


async def test_a_refused_approval_in_a_sub_agent_stops_the_whole_run(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(SOURCE)
    scripts = {
        MAIN: [spawn(("edit", "edit A"), ("search", "look")), Reply.text("never")],
        "edit A": [edit("return 1", "return 100"), Reply.text("RESULT: ok")],
        "look": [Reply.text("RESULT: ok", delay_s=0.2)],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        agent = main_agent(backend, tmp_path, approver=NonInteractiveApprover("read-only"))
        events = await run(agent, MAIN)
        await backend.aclose()
    end = finished(events)
    assert end.reason == "approval_required"
    assert "--approval auto-edit" in end.result
    assert (tmp_path / "m.py").read_text() == SOURCE
    assert_history_valid(agent)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([], "at least one task"),
        ([{"role": "wizard", "prompt": "x"}], "unknown role 'wizard'; use one of search, edit"),
        ([{"role": "search", "prompt": "x"}] * 129, "at most 128 tasks"),
        ([{"role": "search", "prompt": "  "}], "prompt is empty"),
    ],
)
async def test_bad_input_is_a_clear_error_and_runs_nothing(
    tmp_path: Path, tasks: list[dict[str, str]], message: str
) -> None:
    scripts = {MAIN: [Reply.tool_call("spawn_agents", {"tasks": tasks}), Reply.text("ok")]}
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, tmp_path), MAIN)
        await backend.aclose()
        assert len(server.requests) == 2  # no sub-agent made a request
    result = spawn_result(events)
    assert not result.ok and message in result.content
    assert not [e for e in events if isinstance(e, AgentSpawned)]


async def test_sub_agents_cannot_spawn(tmp_path: Path) -> None:
    scripts = {
        MAIN: [spawn(("general", "nested")), Reply.text("done")],
        "nested": [spawn(("search", "deeper")), Reply.text("RESULT: failed\nNOTES: could not")],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, tmp_path), MAIN)
        await backend.aclose()
    nested = [e for e in events if isinstance(e, ToolCallFinished) and e.agent == "general-1"]
    assert nested and not nested[0].ok
    assert "unknown tool 'spawn_agents'" in nested[0].content
    assert json.loads(spawn_result(events).content.splitlines()[1])["ok"] is False


async def test_a_worktree_that_cannot_be_made_is_an_error_and_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "repo", {"m.py": SOURCE})
    scripts = {
        MAIN: [spawn(("edit", "edit A"), ("edit", "edit B")), Reply.text("ok")],
        "edit": [edit("return 1", "return 100"), Reply.text("RESULT: ok")],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        agent = main_agent(backend, root)
        # as if the temp file system were full or gone: no worktree can be made
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
        events = await run(agent, MAIN)
        monkeypatch.undo()
        await backend.aclose()
        assert len(server.requests) == 2
    result = spawn_result(events)
    assert not result.ok and "Nothing was run" in result.content
    assert (root / "m.py").read_text() == SOURCE
    assert worktree_paths(root) == [str(root)]


async def test_a_sub_agent_that_times_out_is_an_error_and_the_others_finish(
    tmp_path: Path,
) -> None:
    scripts = {
        MAIN: [spawn(("search", "quick one"), ("search", "stuck one")), Reply.text("done")],
        "quick": [Reply.text("RESULT: ok\nFINDINGS: none\nNOTES: none")],
        "stuck": [Reply.text("RESULT: ok", delay_s=5)],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = backend_for(server)
        events = await run(main_agent(backend, tmp_path, timeout_s=0.5), MAIN)
        await backend.aclose()
    agents = agents_of(spawn_result(events))
    assert agents["search-1"]["ok"]
    assert not agents["search-2"]["ok"] and "timed out" in agents["search-2"]["error"]
    assert finished(events).reason == "completed"
