"""The MCP client against real servers (the SDK's MCPServer) over stdio, streamable HTTP and SSE.

One manager starts every server in parallel, once per module: a good one on each transport, one that
crashes at start, one that hangs, one that answers with garbage, one with 150 tools, one whose
schemas use `$ref` outside `#/$defs/`. Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from kcode.mcp.config import McpSetup, parse_server
from kcode.mcp.manager import SEARCH_TOOL, McpManager
from kcode.mcp.prompts import expand_prompt_command, expand_resource_mentions
from kcode.mcp.schema import refs_ok
from kcode.mcp.tools import McpToolset
from kcode.messages import ToolCall
from kcode.tools.base import ToolContext, ToolLimits, run_tool
from kcode.tools.registry import LazyTools
from tests.mcp.conftest import HttpServer, live_children, stdio_entry

# The servers live on one event loop for the whole module, as they do for a whole kcode session.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def manager(
    http_server: HttpServer, sse_server: HttpServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[McpManager]:
    entries = {
        "basic": stdio_entry("basic", toolTimeoutMs=8000),
        "crash": stdio_entry("crash"),
        "hang": stdio_entry("hang", startupTimeoutMs=3000),
        "garbage": stdio_entry("garbage", startupTimeoutMs=3000),
        "many": stdio_entry("many"),
        "refs": stdio_entry("refs"),
        "web": {"type": "http", "url": http_server.url("/mcp")},
        "webauto": {"url": http_server.url("/mcp")},  # a bare url: streamable HTTP first
        "legacy": {"url": sse_server.url("/sse")},  # a bare url to an SSE server: falls back
        "off": stdio_entry("basic", enabled=False),
    }
    warnings: list[str] = []
    servers = [parse_server(n, e, "test.json", "user", warnings) for n, e in entries.items()]
    assert warnings == []
    logs = tmp_path_factory.mktemp("mcp-logs")
    mgr = McpManager(McpSetup([s for s in servers if s is not None]), logs, logs)
    await mgr.wait_ready(120)
    yield mgr
    await mgr.aclose()
    assert live_children() == []  # every server process was stopped


def states(manager: McpManager) -> dict[str, tuple[str, str, int]]:
    return {s.name: (s.state, s.transport, s.tools) for s in manager.statuses()}


async def test_every_server_reaches_a_state_and_failures_say_why(manager: McpManager) -> None:
    got = states(manager)
    assert got["basic"] == ("connected", "stdio", 7)
    assert got["web"] == ("connected", "http", 7)
    assert got["webauto"] == ("connected", "http", 7)
    assert got["legacy"] == ("connected", "sse", 7)
    assert got["many"] == ("connected", "stdio", 150)
    assert got["off"][0] == "disabled"
    errors = {s.name: s.error for s in manager.statuses()}
    assert got["crash"][0] == "failed" and "this server cannot start" in errors["crash"]
    assert got["hang"][0] == "failed" and "startup timeout" in errors["hang"]
    assert got["garbage"][0] == "failed"


async def test_calls_over_every_transport(manager: McpManager) -> None:
    for server in ("basic", "web", "legacy"):
        outcome = await manager.call(f"mcp__{server}__echo", {"text": "hi"})
        assert (outcome.ok, outcome.text) == (True, "echo: hi")
    failed = await manager.call("mcp__basic__fail", {})
    assert not failed.ok and "the tool says no" in failed.text
    bad_args = await manager.call("mcp__web__add", {"a": "not a number"})
    assert not bad_args.ok


async def test_a_call_that_hangs_times_out_and_the_server_stays_usable(manager: McpManager) -> None:
    manager.connections["basic"].config.tool_timeout_s = 1.0
    try:
        slow = await manager.call("mcp__basic__slow", {"seconds": 30})
    finally:
        manager.connections["basic"].config.tool_timeout_s = 8.0
    assert not slow.ok and "did not answer within 1 s" in slow.text
    assert (await manager.call("mcp__basic__echo", {"text": "still"})).ok


async def test_a_server_that_dies_mid_call_is_reconnected_on_the_next_call(
    manager: McpManager,
) -> None:
    before = manager.connections["basic"].connects
    dead = await manager.call("mcp__basic__die", {})
    assert not dead.ok and "reconnects on the next call" in dead.text
    assert states(manager)["basic"][0] == "failed"
    assert "mcp__basic__echo" in manager.tools()  # still offered: calling it reconnects
    again = await manager.call("mcp__basic__echo", {"text": "back"})
    assert (again.ok, again.text) == (True, "echo: back")
    assert manager.connections["basic"].connects == before + 1


async def test_a_server_that_failed_at_start_is_retried_by_a_call(manager: McpManager) -> None:
    before = manager.connections["crash"].connects
    outcome = await manager.call("mcp__crash__anything", {})
    assert not outcome.ok and "not available" in outcome.text and "cannot start" in outcome.text
    assert manager.connections["crash"].connects == before + 1
    unknown = await manager.call("mcp__nosuch__tool", {})
    assert not unknown.ok and "no MCP tool" in unknown.text


async def test_150_tools_hide_behind_a_search_tool(manager: McpManager, tmp_path: Path) -> None:
    toolset = McpToolset(LazyTools(["read_file"]), manager)
    names = [s.name for s in toolset.extra_specs()]
    assert SEARCH_TOOL in names and "mcp__many__tool_007" not in names
    assert len(names) < 128
    ctx = ToolContext(root=tmp_path)
    found = await run_tool(
        toolset[SEARCH_TOOL], ToolCall("c1", SEARCH_TOOL, {"query": "numbered tool 7."}), ctx
    )
    assert found.ok and "mcp__many__tool_007" in found.content
    assert "mcp__many__tool_007" in [s.name for s in toolset.extra_specs()]
    result = await run_tool(
        toolset["mcp__many__tool_149"], ToolCall("c2", "mcp__many__tool_149", {"value": "v"}), ctx
    )
    assert (result.ok, result.content) == (True, "tool 149: v")  # callable even when not listed


async def test_ref_schemas_are_cleaned_for_strict_providers(manager: McpManager) -> None:
    schema = manager.tools()["mcp__refs__create_user"].schema
    assert refs_ok(schema) and "$schema" not in schema
    assert schema["properties"]["user"] == {"$ref": "#/$defs/User"}
    for spec in McpToolset(LazyTools([]), manager).extra_specs():
        assert refs_ok(spec.parameters), spec.name


async def test_output_is_capped_like_every_tool(manager: McpManager, tmp_path: Path) -> None:
    toolset = McpToolset(LazyTools([]), manager)
    ctx = ToolContext(root=tmp_path, limits=ToolLimits(max_output_chars=5000))
    result = await run_tool(toolset["mcp__web__big"], ToolCall("c", "mcp__web__big", {}), ctx)
    assert result.ok and len(result.content) < 5200 and "cut from the middle" in result.content


async def test_prompts_and_resources(manager: McpManager) -> None:
    found = await expand_prompt_command(manager, "mcp__basic__review", "the parser")
    assert found == (True, "Please review the parser carefully.")
    missing = await expand_prompt_command(manager, "mcp__basic__review", "")
    assert missing is not None and not missing[0] and "topic" in missing[1]
    assert await expand_prompt_command(manager, "mcp__basic__nothing", "") is None
    text, errors = await expand_resource_mentions(
        manager, "summarise @web:note://hello please, not @nobody:x"
    )
    assert "hello from the note resource" in text and errors == []


async def test_a_changed_tool_list_is_picked_up(manager: McpManager) -> None:
    assert "mcp__legacy__grown" not in manager.tools()
    for server in ("web", "legacy"):  # streamable HTTP and SSE; both announce the change
        grew = await manager.call(f"mcp__{server}__grow", {})
        assert grew.ok, grew.text
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not {"mcp__web__grown", "mcp__legacy__grown"} <= set(manager.tools()):
        assert loop.time() < deadline, sorted(manager.tools())
        await asyncio.sleep(0.05)
    grown = await manager.call("mcp__web__grown", {})
    assert (grown.ok, grown.text) == (True, "I am new")


async def test_a_flood_of_tool_list_notifications_relists_once_at_a_time(tmp_path: Path) -> None:
    """A server that sends `tools/list_changed` in a loop started one re-list task per message
    (memory grew ~22 MB/s in a crash hunt). One runs, one more is queued, the rest fold in."""
    import asyncio
    import types

    from kcode.mcp.client import Connection
    from kcode.mcp.config import parse_server

    config = parse_server("flood", {"command": "true"}, "test.json", "user", [])
    assert config is not None
    conn = Connection(config, tmp_path, None)
    runs = 0

    async def slow_relist() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)

    conn._relist = slow_relist  # type: ignore[method-assign]
    note = types.SimpleNamespace(method="notifications/tools/list_changed")
    for _ in range(5_000):
        await conn._on_message(note)
        assert len(conn._relists) <= 1
    while conn._relists:
        await asyncio.sleep(0.01)
    assert runs == 2  # the first, and one for everything that arrived while it ran
