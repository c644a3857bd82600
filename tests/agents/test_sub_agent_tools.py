"""Sub-agents get the session's MCP tools (as their role allows) and the `skill` tool, with the same
approval, rules and hooks as the main agent; and they follow the parent's current backend/options.

Real parts: the fake OpenAI server over HTTP, a real MCP server (the SDK's MCPServer, over stdio),
the real Agent loop, orchestrator, tools, approver and hook scripts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from kcode.agents.orchestrator import Orchestrator
from kcode.agents.roles import role_tools
from kcode.backends.base import BackendOptions
from kcode.backends.openai.api import OpenAIBackend
from kcode.events import Event, ToolCallFinished
from kcode.extensions.agents import AgentDef, set_custom_agents
from kcode.extensions.hook_config import HookSpec
from kcode.extensions.hooks import HookRunner
from kcode.extensions.session import ExtensionRuntime
from kcode.extensions.skills import Skill
from kcode.safety.approval import AllowAll, Approver, NonInteractiveApprover
from kcode.safety.rules import RuleSet
from tests.agents.helpers import finished, main_agent, run
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply

pytest.importorskip("mcp", reason="the mcp SDK is not installed (pip install 'mcp>=2.3,<3')")

SERVER = Path(__file__).with_name("mcp_notes_server.py")
MAIN = "MAIN: fan out"
LOOKUP, WRITE = "mcp__notes__lookup", "mcp__notes__write_note"
SEARCH_ANSWER = "RESULT: ok\nFINDINGS:\n- a.txt:1 a\nNOTES: none"
EDIT_ANSWER = "RESULT: ok\nCHANGES:\n- notes\nNOTES: none"


def spawn(*tasks: tuple[str, str]) -> Reply:
    return Reply.tool_call("spawn_agents", {"tasks": [{"role": r, "prompt": p} for r, p in tasks]})


def manager_for(tmp_path: Path) -> Any:
    from kcode.mcp.config import McpSetup, parse_server
    from kcode.mcp.manager import McpManager

    entry = {"command": sys.executable, "args": [str(SERVER), str(tmp_path / "notes.log")]}
    server = parse_server("notes", entry, "test.json", "user", [])
    assert server is not None
    return McpManager(McpSetup([server]), tmp_path, tmp_path / "mcp-logs")


def extensions(tmp_path: Path, hooks: list[HookSpec] | None = None) -> ExtensionRuntime:
    skill_dir = tmp_path / "skills" / "release"
    skill_dir.mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text(
        "---\nname: release\ndescription: How to cut a release\n---\nBump the version, then tag.\n"
    )
    skill = Skill("release", "How to cut a release", skill_dir / "SKILL.md", "user")
    return ExtensionRuntime(tmp_path, HookRunner(hooks or []), skills={"release": skill})


def first_user(record: Any) -> str:
    messages = (record.body or {}).get("messages") or []
    first = next((m for m in messages if m.get("role") == "user"), {})
    return str(first.get("content", ""))


def offered(server: FakeOpenAIServer, prefix: str) -> list[list[str]]:
    out = []
    for record in server.requests:
        if first_user(record).startswith(prefix):
            out.append([t["function"]["name"] for t in (record.body or {}).get("tools", [])])
    return out


def results_of(events: list[Event], agent: str) -> list[tuple[str, bool, str]]:
    return [(e.name, e.ok, e.content) for e in events if isinstance(e, ToolCallFinished)
            if e.agent == agent]  # fmt: skip


async def fan_out(
    tmp_path: Path, scripts: dict[str, list[Reply]], approver: Approver, ext: ExtensionRuntime
) -> tuple[list[Event], FakeOpenAIServer]:
    manager = manager_for(tmp_path)
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = main_agent(backend, tmp_path, approver=approver)
        agent.ctx.extensions = ext
        assert isinstance(agent.ctx.spawner, Orchestrator)
        agent.ctx.spawner.mcp = manager
        agent.ctx.spawner.tool_factory = role_tools  # custom roles too (the runtime's factory)
        try:
            await manager.wait_ready(60)
            events = await asyncio.wait_for(run(agent, MAIN), 120)
        finally:
            await manager.aclose()
            await backend.aclose()
    return events, server


async def test_sub_agents_get_mcp_tools_their_role_allows_and_the_skill_tool(
    tmp_path: Path,
) -> None:
    scripts = {
        MAIN: [spawn(("search", "S: look it up"), ("edit", "E: note it")), Reply.text("done")],
        "S: look": [
            Reply.tool_call(LOOKUP, {"key": "a"}),
            Reply.tool_call(WRITE, {"text": "from search"}),
            Reply.tool_call("skill", {"name": "release"}),
            Reply.text(SEARCH_ANSWER),
        ],
        "E: note": [Reply.tool_call(WRITE, {"text": "from edit"}), Reply.text(EDIT_ANSWER)],
    }
    events, server = await fan_out(tmp_path, scripts, AllowAll(), extensions(tmp_path))

    assert finished(events).reason == "completed"
    search_tools = offered(server, "S: look")
    assert search_tools and all(LOOKUP in t and WRITE not in t for t in search_tools)
    assert all("skill" in t for t in search_tools)
    edit_tools = offered(server, "E: note")
    assert edit_tools and all(LOOKUP in t and WRITE in t for t in edit_tools)
    searched = results_of(events, "search-1")
    assert searched[0] == (LOOKUP, True, "value of a")
    assert searched[1][:2] == (WRITE, False) and "unknown tool" in searched[1][2]
    assert searched[2][:2] == ("skill", True) and "Bump the version" in searched[2][2]
    assert results_of(events, "edit-2") == [(WRITE, True, "noted")]
    assert (tmp_path / "notes.log").read_text() == "from edit\n"  # the read-only role wrote nothing
    # The skills are listed in the sub-agent's system prompt, so it knows what `skill` can load.
    first = next(r for r in server.requests if first_user(r).startswith("S: look"))
    assert "# Skills" in first.raw.decode() and "release" in first.raw.decode()


async def test_rules_and_hooks_apply_to_sub_agents_mcp_calls(tmp_path: Path) -> None:
    hook = tmp_path / "no_lookups.sh"
    hook.write_text("#!/bin/sh\necho 'lookups are off today' >&2\nexit 2\n")
    hook.chmod(0o755)
    spec = HookSpec("PreToolUse", LOOKUP, str(hook), 10.0, "test", "user")
    rules = RuleSet.parse({"deny": [WRITE]})
    scripts = {
        MAIN: [spawn(("search", "S: look it up"), ("edit", "E: note it")), Reply.text("done")],
        "S: look": [Reply.tool_call(LOOKUP, {"key": "a"}), Reply.text(SEARCH_ANSWER)],
        "E: note": [Reply.tool_call(WRITE, {"text": "from edit"}), Reply.text(EDIT_ANSWER)],
    }
    approver = NonInteractiveApprover("auto", rules)
    events, _ = await fan_out(tmp_path, scripts, approver, extensions(tmp_path, [spec]))

    assert finished(events).reason == "completed"
    (name, ok, content) = results_of(events, "search-1")[0]
    assert (name, ok) == (LOOKUP, False) and "lookups are off today" in content
    (name, ok, content) = results_of(events, "edit-2")[0]
    assert (name, ok) == (WRITE, False) and "deny" in content
    assert not (tmp_path / "notes.log").exists()


async def test_custom_agent_gets_only_the_mcp_tools_it_lists(tmp_path: Path) -> None:
    agent_def = AgentDef(
        name="notetaker",
        description="Takes notes",
        prompt="You take notes.\n",
        tools=("read_file", WRITE),
        path=tmp_path / "notetaker.md",
        scope="user",
    )
    set_custom_agents({"notetaker": agent_def})
    try:
        scripts = {
            MAIN: [spawn(("notetaker", "N: take a note")), Reply.text("done")],
            "N: take": [
                Reply.tool_call(WRITE, {"text": "custom"}),
                Reply.tool_call(LOOKUP, {"key": "b"}),
                Reply.text(EDIT_ANSWER),
            ],
        }
        events, server = await fan_out(tmp_path, scripts, AllowAll(), extensions(tmp_path))
    finally:
        set_custom_agents({})
    tools = offered(server, "N: take")
    assert tools and all(WRITE in t and LOOKUP not in t for t in tools)
    got = results_of(events, "notetaker-1")
    assert got[0] == (WRITE, True, "noted") and got[1][:2] == (LOOKUP, False)
    assert (tmp_path / "notes.log").read_text() == "custom\n"


# --- the parent's backend and options, read at spawn time --------------------------------------
async def test_sub_agents_follow_a_backend_and_thinking_switch_made_after_the_spawner(
    tmp_path: Path,
) -> None:
    scripts = {
        MAIN: [spawn(("search", "S: one"), ("search", "S: two")), Reply.text("done")],
        "S: one": [Reply.text(SEARCH_ANSWER)],
        "S: two": [Reply.text(SEARCH_ANSWER)],
    }
    with (
        FakeOpenAIServer(ByConversation(scripts)) as old_server,
        FakeOpenAIServer(ByConversation(scripts)) as new_server,
    ):
        old = OpenAIBackend(old_server.base_url, "key", "kimi-k2-old", max_retries=0)
        agent = main_agent(old, tmp_path)
        agent.options = BackendOptions(model="kimi-k2-old", cache_key="kcode-s1-main")
        assert isinstance(agent.ctx.spawner, Orchestrator)
        # What Runtime.switch_backend and /think do: a new backend and options on the main agent,
        # the old backend closed. The orchestrator already exists.
        new = OpenAIBackend(new_server.base_url, "key", "kimi-k2.5", max_retries=0)
        agent.backend = new
        agent.options = dataclasses.replace(agent.options, model="kimi-k2.5", thinking=True)
        await old.aclose()
        try:
            events = await asyncio.wait_for(run(agent, MAIN), 60)
        finally:
            await new.aclose()

    assert finished(events).reason == "completed"
    assert old_server.requests == []  # nobody used the closed backend
    subs = [r.body or {} for r in new_server.requests if first_user(r).startswith("S: ")]
    assert len(subs) == 2
    for body in subs:
        assert body["model"] == "kimi-k2.5"
        assert body["thinking"] == {"type": "enabled"}
        assert body["temperature"] == 1.0  # Moonshot's sampling for thinking mode


async def test_sub_agents_follow_the_parents_meter_set_after_the_spawner(tmp_path: Path) -> None:
    from kcode.agents.budget import RunBudget

    scripts = {
        MAIN: [spawn(("search", "S: one")), Reply.text("done")],
        "S: one": [Reply.text(SEARCH_ANSWER, usage=(100, 10))],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = main_agent(backend, tmp_path)
        agent.meter = RunBudget().meter("main")  # set after the orchestrator was made
        try:
            events = await asyncio.wait_for(run(agent, MAIN), 60)
        finally:
            await backend.aclose()
    assert finished(events).reason == "completed"
    assert agent.meter.run.tokens >= 110  # the sub-agent's usage counted in the run


def test_an_agent_file_may_list_mcp_tools(tmp_path: Path) -> None:
    from kcode.extensions.agents import load_agent
    from kcode.extensions.files import Source, Warnings

    path = tmp_path / "notetaker.md"
    path.write_text(
        "---\nname: notetaker\ndescription: Takes notes\n"
        f"tools: Read, {WRITE}, mcp__github\n---\nYou take notes.\n"
    )
    warnings = Warnings()
    agent = load_agent(path, Source(tmp_path, None), warnings)
    assert agent is not None and agent.tools == ("read_file", WRITE, "mcp__github")
    assert not agent.isolated  # an MCP tool runs in its server, not in a worktree
    assert warnings.items == []


def test_mcp_policy_per_role() -> None:
    from kcode.agents.sub_tools import mcp_policy

    assert mcp_policy("search")(WRITE, False) is False and mcp_policy("search")(LOOKUP, True)
    assert mcp_policy("test")(WRITE, False) is False
    assert mcp_policy("edit")(WRITE, False) and mcp_policy("general")(WRITE, False)
    listed = AgentDef("n", "d", "p\n", ("read_file", "mcp__github", WRITE), Path("n.md"), "user")
    set_custom_agents({"n": listed})
    try:
        allow = mcp_policy("n")
        assert allow("mcp__github__create_issue", False) and allow(WRITE, False)
        assert not allow(LOOKUP, True) and not allow("mcp__githubx__y", True)
    finally:
        set_custom_agents({})


async def test_sub_agents_of_a_role_share_their_prefix_with_mcp_tools_and_skills(
    tmp_path: Path,
) -> None:
    from kcode.agents.prompt_cache import common_prefix, prompt_bytes

    scripts = {
        MAIN: [spawn(("search", "S: first"), ("search", "S: second")), Reply.text("done")],
        "S: first": [Reply.text(SEARCH_ANSWER)],
        "S: second": [Reply.text(SEARCH_ANSWER)],
    }
    events, server = await fan_out(tmp_path, scripts, AllowAll(), extensions(tmp_path))
    assert finished(events).reason == "completed"
    first, second = (
        prompt_bytes(next(r for r in server.requests if first_user(r).startswith(p)).raw)
        for p in ("S: first", "S: second")
    )
    assert LOOKUP.encode() in first and b"# Skills" in first
    # Everything up to the task (model, tools with the MCP ones, system prompt) is the same bytes.
    assert common_prefix(first, second) == first.index(b"S: first") + len(b"S: ")


async def test_a_sub_agent_may_call_an_mcp_tool_before_its_server_has_listed_it(
    tmp_path: Path,
) -> None:
    """The fan-out starts before the server is up (no wait_ready): the calls wait for its listing,
    then the role's policy decides on what the server says of each tool, as for listed tools."""
    scripts = {
        MAIN: [spawn(("search", "S: look it up"), ("edit", "E: note it")), Reply.text("done")],
        "S: look": [
            Reply.tool_call(LOOKUP, {"key": "a"}),
            Reply.tool_call(WRITE, {"text": "from search"}),
            Reply.text(SEARCH_ANSWER),
        ],
        "E: note": [Reply.tool_call(WRITE, {"text": "from edit"}), Reply.text(EDIT_ANSWER)],
    }
    manager = manager_for(tmp_path)
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = main_agent(backend, tmp_path)
        agent.ctx.extensions = extensions(tmp_path)
        assert isinstance(agent.ctx.spawner, Orchestrator)
        agent.ctx.spawner.mcp = manager
        try:
            events = await asyncio.wait_for(run(agent, MAIN), 120)
        finally:
            await manager.aclose()
            await backend.aclose()
    assert finished(events).reason == "completed"
    # The first requests went out before the server listed its tools.
    assert LOOKUP not in offered(server, "S: look")[0]
    searched = results_of(events, "search-1")
    assert searched[0] == (LOOKUP, True, "value of a")
    assert searched[1][:2] == (WRITE, False) and "unknown tool" in searched[1][2]
    assert results_of(events, "edit-2") == [(WRITE, True, "noted")]
    assert (tmp_path / "notes.log").read_text() == "from edit\n"
