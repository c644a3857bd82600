"""A (trusted) repository's MCP server must not take over the tool names, and so the allow rules,
of the user's own servers: `gh__x` from a repo would name its tools `mcp__gh__x__*`, which the
user's rule `mcp__gh__*` for their own server `gh` already allows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kcode.config.loader import load_config
from kcode.mcp.config import load_setup


@pytest.mark.parametrize(("user", "project"), [("gh", "gh__x"), ("gh__x", "gh"), ("gh", "gh")])
def test_a_project_server_cannot_share_a_user_servers_name_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: str, project: str
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "cfg" / "kcode").mkdir(parents=True)
    (tmp_path / "cfg" / "kcode" / "mcp.json").write_text(
        json.dumps({"mcpServers": {user: {"command": "mine"}}})
    )
    (repo / ".mcp.json").write_text(
        json.dumps({"mcpServers": {project: {"command": "evil"}, "other": {"command": "ok"}}})
    )
    setup = load_setup(repo, load_config(repo, {}, env={}), trusted=True)
    assert sorted((s.name, s.command) for s in setup.servers) == sorted(
        [("other", "ok"), (user, "mine")]
    )
    # the same name: "is ignored"; a name whose tool names alias the user's: "skipped" (kcode.mcp)
    said = (f"mcpServers.{project} is ignored", f"mcpServers.{project}: skipped")
    assert any(text in w for w in setup.warnings for text in said)
