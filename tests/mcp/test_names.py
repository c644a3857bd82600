"""Tool names stay unambiguous: `mcp__<server>__<tool>` must name one tool of one server.

Server `a` with a tool `b__c` and server `a__b` with a tool `c` would both be `mcp__a__b__c`; a
server's `x.y` and `x_y` both become `mcp__a__x_y`. Real SDK servers (tests/mcp/servers.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kcode.config.loader import load_config
from kcode.mcp.config import McpSetup, load_setup, names_clash, parse_server
from kcode.mcp.manager import McpManager
from kcode.mcp.status import status_lines
from tests.mcp.conftest import live_children, stdio_entry


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "cfg" / "kcode").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    return tmp_path


def test_which_server_names_can_spell_each_others_tools() -> None:
    assert names_clash("a", "a__b") and names_clash("a__b", "a")
    assert names_clash("gh", "gh_")  # gh's `_x` and gh_'s `x` are both mcp__gh___x
    assert not names_clash("gh", "gh-x") and not names_clash("gh", "ghx")
    assert not names_clash("gh", "gh_x") and not names_clash("gh", "gh")


def test_a_trusted_project_server_that_could_alias_another_is_skipped_with_a_warning(
    home: Path,
) -> None:
    repo = home / "repo"
    (repo / ".mcp.json").write_text(
        json.dumps({"mcpServers": {"a": stdio_entry("clash"), "a__b": stdio_entry("plain")}}),
        encoding="utf-8",
    )
    (home / "cfg" / "kcode" / "mcp.json").write_text(
        json.dumps({"mcpServers": {"gh": {"command": "gh-server"}}}), encoding="utf-8"
    )
    (repo / ".kcode").mkdir()
    (repo / ".kcode" / "mcp.json").write_text(
        json.dumps({"mcpServers": {"gh__x": {"command": "repo-server"}}}), encoding="utf-8"
    )
    setup = load_setup(repo, load_config(repo, {}, env={}), trusted=True)
    assert [s.name for s in setup.servers] == ["gh", "a"]
    warned = {w.split(": mcpServers.")[0]: w for w in setup.warnings}
    assert "server 'a' (" in warned[str(repo / ".mcp.json")]
    assert "mcpServers.a__b: skipped" in warned[str(repo / ".mcp.json")]
    # The user's `gh` keeps its names: a repo's `gh__x` would fall under rules for `mcp__gh__*`.
    assert "mcpServers.gh__x: skipped" in warned[str(repo / ".kcode" / "mcp.json")]
    assert "rename one of them" in warned[str(repo / ".kcode" / "mcp.json")]


async def test_colliding_tools_keep_one_owner_and_the_rest_are_named_in_a_warning(
    tmp_path: Path,
) -> None:
    """The config check covers server names; the tool lists are checked too (a setup built
    without it, names that only collide after sanitising): the first listed keeps the name."""
    warnings: list[str] = []
    servers = [
        parse_server("a", stdio_entry("clash"), "/p/.mcp.json", "project", warnings),
        parse_server("a__b", stdio_entry("plain"), "/p/.mcp.json", "project", warnings),
    ]
    manager = McpManager(McpSetup([s for s in servers if s is not None]), tmp_path, tmp_path)
    try:
        await manager.wait_ready(60)
        tools = manager.tools()
        assert tools["mcp__a__b__c"].server == "a" and tools["mcp__a__b__c"].tool == "b__c"
        assert tools["mcp__a__x_y"].tool == "x.y"  # listed first
        called = await manager.call("mcp__a__b__c", {})
        assert called.ok and called.text == "clash b__c"
        assert manager.server_for("mcp__a__b__zzz") is manager.connections["a__b"]
        shown = "\n".join(status_lines(manager))
        assert (
            "/p/.mcp.json: mcpServers.a__b: tool 'c' is left out; its name mcp__a__b__c is "
            "already server 'a''s tool 'b__c'" in shown
        )
        assert (
            "mcpServers.a: tool 'x_y' is left out; its name mcp__a__x_y is already tool 'x.y'"
            in (shown)
        )
    finally:
        await manager.aclose()
    assert live_children() == []
