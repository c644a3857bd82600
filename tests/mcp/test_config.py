"""Which MCP servers kcode reads: the peers' shapes, expansion, filters, bad input, trust."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kcode.config.loader import load_config
from kcode.mcp.config import load_setup, parse_server, parse_servers_json


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "cfg" / "kcode").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    return tmp_path


def test_the_shared_mcpservers_shape_of_every_peer() -> None:
    warnings: list[str] = []
    text = json.dumps(
        {
            "mcpServers": {
                "fs": {
                    "command": "npx",
                    "args": ["-y", "srv", "."],
                    "env": {"ROOT": "${HOME}"},
                    "cwd": "sub",
                },
                "linear": {
                    "type": "http",
                    "url": "https://x.example/mcp",
                    "headers": {"Authorization": "Bearer ${TOKEN:-none}"},
                },
                "legacy": {"type": "sse", "url": "https://x.example/sse"},
                "kimi": {"transport": "sse", "url": "https://x.example/sse2"},
                "gemini": {"httpUrl": "https://x.example/g"},
                "bare": {"url": "https://x.example/bare"},
                "open": {"command": ["node", "s.js"], "environment": {"A": "1"}, "enabled": False},
            }
        }
    )
    servers = {s.name: s for s in parse_servers_json(text, "f.json", "user", warnings)}
    assert warnings == []
    assert servers["fs"].transport == "stdio" and servers["fs"].args == ["-y", "srv", "."]
    assert servers["fs"].env["ROOT"] and "${" not in servers["fs"].env["ROOT"]
    assert servers["linear"].transport == "http"
    assert servers["linear"].headers["Authorization"] == "Bearer none"
    assert servers["legacy"].transport == servers["kimi"].transport == "sse"
    assert servers["gemini"].transport == "http"
    assert servers["bare"].transport == "auto"  # streamable HTTP first, then SSE
    assert (servers["open"].command, servers["open"].args, servers["open"].env) == (
        "node", ["s.js"], {"A": "1"},
    )  # fmt: skip
    assert servers["open"].enabled is False


def test_expansion_filters_and_timeouts() -> None:
    warnings: list[str] = []
    env = {"SET": "value", "EMPTY": ""}
    raw = {
        "command": "run-${SET}",
        "args": ["${EMPTY:-fallback}", "${UNSET}", "$${SET}"],
        "enabledTools": ["read_*", "list"],
        "disabledTools": ["read_secret"],
        "startupTimeoutMs": 1500,
        "toolTimeoutMs": 2500,
    }
    server = parse_server("s", raw, "f.json", "user", warnings, env=env)
    assert server is not None
    assert server.command == "run-value"
    assert server.args == ["fallback", "${UNSET}", "$value"]
    assert warnings == ["f.json: mcpServers.s.args: ${UNSET} is not set; left as written"]
    assert [server.allows_tool(t) for t in ("read_a", "list", "read_secret", "write")] == [
        True, True, False, False,
    ]  # fmt: skip
    assert (server.startup_timeout_s, server.tool_timeout_s) == (1.5, 2.5)
    codex = parse_server("c", {"command": "x", "startup_timeout_sec": 3, "tool_timeout_sec": 4,
                               "disabled_tools": ["a"]}, "f", "user", [], env={})  # fmt: skip
    assert codex is not None and (codex.startup_timeout_s, codex.tool_timeout_s) == (3, 4)
    assert not codex.allows_tool("a")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "ws", "url": "wss://x"}, "mcpServers.s.type: unknown transport 'ws'"),
        ({"transport": "carrier-pigeon"}, "mcpServers.s.transport: unknown transport"),
        ({"type": "stdio"}, "mcpServers.s.command: missing"),
        ({"args": ["x"]}, "mcpServers.s.url: missing"),
        ({"type": "http"}, "mcpServers.s.url: missing"),
        ({"command": 5}, "mcpServers.s.command: must be a string"),
        ({"url": "file:///etc/passwd"}, "is not an http(s) URL"),
        ("npx server", "mcpServers.s: must be an object"),
    ],
)
def test_bad_entries_warn_naming_the_file_and_field(raw: object, expected: str) -> None:
    warnings: list[str] = []
    assert parse_server("s", raw, "/home/u/.mcp.json", "user", warnings, env={}) is None
    assert len(warnings) == 1
    assert warnings[0].startswith("/home/u/.mcp.json: ") and expected in warnings[0]


def test_a_malformed_file_warns_and_the_other_sources_still_load(home: Path) -> None:
    (home / "cfg" / "kcode" / "mcp.json").write_text('{"mcpServers": {"a": ', encoding="utf-8")
    (home / "cfg" / "kcode" / "config.toml").write_text(
        '[mcp_servers.good]\ncommand = "good-server"\n[mcp_servers.bad]\ntype = "ws"\n',
        encoding="utf-8",
    )
    config = load_config(home / "repo", {}, env={})
    setup = load_setup(home / "repo", config)
    assert [s.name for s in setup.servers] == ["good"]
    assert any("mcp.json: not valid JSON" in w for w in setup.warnings)
    assert any("config.toml [mcp_servers]: mcpServers.bad.type" in w for w in setup.warnings)


def test_project_files_need_trust_and_never_replace_a_user_server(home: Path) -> None:
    repo = home / "repo"
    (repo / ".mcp.json").write_text(
        json.dumps({"mcpServers": {"proj": {"command": "p"}, "mine": {"command": "evil"}}}),
        encoding="utf-8",
    )
    (home / "cfg" / "kcode" / "mcp.json").write_text(
        json.dumps({"mcpServers": {"mine": {"command": "mine-server"}}}), encoding="utf-8"
    )
    config = load_config(repo, {}, env={})
    untrusted = load_setup(repo, config)
    assert [s.name for s in untrusted.servers] == ["mine"]
    assert untrusted.untrusted == [str(repo / ".mcp.json")]
    assert any("not trusted" in w for w in untrusted.warnings)

    (home / "cfg" / "kcode" / "config.toml").write_text(
        f"trusted = [{json.dumps(str(repo))}]\n", encoding="utf-8"
    )
    trusted = load_setup(repo, load_config(repo, {}, env={}))
    by_name = {s.name: s for s in trusted.servers}
    assert set(by_name) == {"mine", "proj"}
    assert by_name["mine"].command == "mine-server"  # the repo cannot swap the user's command
    assert any("your own server 'mine'" in w for w in trusted.warnings)


def test_a_repo_config_cannot_define_servers_or_a_symlinked_mcp_json(home: Path) -> None:
    repo = home / "repo"
    (repo / ".kcode").mkdir()
    (repo / ".kcode" / "config.toml").write_text(
        '[mcp_servers.x]\ncommand = "touch pwned"\n', encoding="utf-8"
    )
    outside = home / "outside.json"
    outside.write_text(json.dumps({"mcpServers": {"o": {"command": "o"}}}), encoding="utf-8")
    (repo / ".mcp.json").symlink_to(outside)
    config = load_config(repo, {}, env={})
    assert config.mcp_servers == {}
    assert any("mcp_servers; only your user config may set it" in w for w in config.warnings)
    setup = load_setup(repo, config, trusted=True)
    assert setup.servers == []
    assert any("resolves outside the workspace" in w for w in setup.warnings)


def test_status_lines_never_pass_a_servers_escape_sequences(tmp_path: Path) -> None:
    from kcode.mcp.config import McpSetup
    from kcode.mcp.manager import McpManager
    from kcode.mcp.status import status_lines

    server = parse_server("evil", {"command": "x"}, "f.json", "user", [], env={})
    assert server is not None
    manager = McpManager(McpSetup([server]), tmp_path)
    manager.connections["evil"].state = "failed"
    manager.connections["evil"].error = "boom\x1b]0;pwned\x07\x1b[2J"
    lines = status_lines(manager)
    assert "✗ evil: failed" in lines[0] and "boom" in lines[0]
    assert not any("\x1b" in line or "\x07" in line for line in lines)


def test_without_the_sdk_servers_fail_with_a_clear_message(tmp_path: Path) -> None:
    import subprocess
    import sys

    probe = (
        "import asyncio, sys\n"
        "sys.modules['mcp'] = None  # as if the package were not installed\n"
        "from pathlib import Path\n"
        "from kcode.mcp.config import McpSetup, parse_server\n"
        "from kcode.mcp.manager import McpManager\n"
        "async def main():\n"
        "    s = parse_server('x', {'command': 'true'}, 'f', 'user', [], env={})\n"
        "    m = McpManager(McpSetup([s]), Path('.'))\n"
        "    out = await m.call('mcp__x__tool', {})\n"
        "    print(out.ok, out.text)\n"
        "    await m.aclose()\n"
        "asyncio.run(main())\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.stdout.startswith("False ") and "the MCP SDK is not installed" in run.stdout
