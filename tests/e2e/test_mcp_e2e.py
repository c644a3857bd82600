"""`kcode -p` with MCP servers: the real executable, the fake OpenAI server, real MCP servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import make_repo, run_kcode
from tests.fake_openai import FakeOpenAIServer, Reply

mcp_helpers = pytest.importorskip("tests.mcp.conftest")


def write_user_files(env: dict[str, str], servers: dict[str, Any], toml: str = "") -> Path:
    cfg = Path(env["XDG_CONFIG_HOME"]) / "kcode"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "mcp.json").write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    (cfg / "config.toml").write_text(toml, encoding="utf-8")
    return cfg


def tool_messages(srv: FakeOpenAIServer) -> list[str]:
    out = []
    for request in srv.requests:
        for message in (request.body or {}).get("messages", []):
            if message.get("role") == "tool":
                out.append(str(message.get("content")))
    return out


def offered(srv: FakeOpenAIServer, index: int) -> list[str]:
    chat = [r for r in srv.requests if r.path.endswith("/chat/completions")]
    return [t["function"]["name"] for t in (chat[index].body or {}).get("tools", [])]


def test_the_model_calls_an_mcp_tool_allowed_by_a_rule(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hi\n"})
    write_user_files(
        kcode_env,
        {"basic": mcp_helpers.stdio_entry("basic")},
        '[rules]\nallow = ["mcp__basic__*"]\n',
    )
    script = [Reply.tool_call("mcp__basic__echo", {"text": "from e2e"}), Reply.text("echoed")]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "echo something", "--output-format", "json"], kcode_env, repo, 120)
        assert run.code == 0, run.stderr
        assert json.loads(run.stdout)["result"] == "echoed"
        assert tool_messages(srv) == ["echo: from e2e"]
        assert "mcp__basic__echo" not in offered(srv, 0)  # the first request did not wait
        assert "mcp__basic__echo" in offered(srv, 1)  # the server connected meanwhile


def test_resource_mentions_and_auto_edit_stops_for_approval(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hi\n"})
    write_user_files(kcode_env, {"basic": mcp_helpers.stdio_entry("basic")})
    script = [Reply.tool_call("mcp__basic__echo", {"text": "x"}), Reply.text("no")]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "echo @basic:note://hello"], kcode_env, repo, 120)
        first_user = [m for m in srv.requests[0].body["messages"] if m["role"] == "user"][0]
        assert "hello from the note resource" in json.dumps(first_user)  # an @server:uri mention
    assert run.code == 4
    assert "--approval auto" in run.stderr + run.stdout


def test_an_untrusted_project_mcp_json_never_starts_its_server(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    marker = tmp_path / "server-started"
    entry = mcp_helpers.stdio_entry("basic", "--marker", str(marker))
    repo = make_repo(tmp_path / "repo", {".mcp.json": json.dumps({"mcpServers": {"proj": entry}})})
    script = [Reply.tool_call("mcp__proj__echo", {"text": "x"}), Reply.text("done")]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "go", "--approval", "auto"], kcode_env, repo, 120)
        assert run.code == 0, run.stderr
        assert "unknown tool 'mcp__proj__echo'" in tool_messages(srv)[0]
    assert not marker.exists()
    assert ".mcp.json: its MCP servers are not started; this repository is not trusted" in (
        run.stderr
    )

    # Trusted in the user's own config: the same file is used.
    write_user_files(kcode_env, {}, f"trusted = [{json.dumps(str(repo))}]\n")
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "go", "--approval", "auto"], kcode_env, repo, 120)
        assert run.code == 0, run.stderr
        assert tool_messages(srv) == ["echo: x"]
    assert marker.exists()


def test_bad_mcp_config_warns_with_file_and_field_and_the_run_goes_on(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hi\n"})
    cfg = write_user_files(
        kcode_env,
        {"odd": {"type": "carrier-pigeon", "url": "http://x"}, "nocmd": {"args": ["x"]}},
    )
    with FakeOpenAIServer([Reply.text("fine")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "hello"], kcode_env, repo, 60)
    assert run.code == 0, run.stderr
    assert f"{cfg / 'mcp.json'}: mcpServers.odd.type: unknown transport" in run.stderr
    assert f"{cfg / 'mcp.json'}: mcpServers.nocmd.url: missing" in run.stderr
    (cfg / "mcp.json").write_text("{not json", encoding="utf-8")
    with FakeOpenAIServer([Reply.text("fine")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "hello"], kcode_env, repo, 60)
    assert run.code == 0 and "mcp.json: not valid JSON" in run.stderr


def test_a_project_server_that_could_alias_another_s_tools_is_skipped(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    """Server `a` has a tool `b__c`; a server `a__b` with a tool `c` would also be
    `mcp__a__b__c`. The later one is skipped, named by file and field; `a`'s tool is called."""
    servers = {"a": mcp_helpers.stdio_entry("clash"), "a__b": mcp_helpers.stdio_entry("plain")}
    repo = make_repo(tmp_path / "repo", {".mcp.json": json.dumps({"mcpServers": servers})})
    script = [Reply.tool_call("mcp__a__b__c", {}), Reply.text("called")]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        args = ["-p", "call it", "--trust-project", "--approval", "auto"]
        run = run_kcode(args, kcode_env, repo, 120)
        assert run.code == 0, run.stderr
        assert tool_messages(srv) == ["clash b__c"]
        assert "mcp__a__x_y" in offered(srv, 1)  # `x.y` keeps the name; `x_y` is left out
    assert f"{repo / '.mcp.json'}: mcpServers.a__b: skipped" in run.stderr
