"""`kcode mcp add|get|list|remove` and `kcode doctor`, through the real executable."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.e2e.conftest import VENV_BIN, run_kcode
from tests.mcp.conftest import SERVERS


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCODE_", "OPENAI_"))}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def test_add_get_list_remove_like_the_peers(tmp_path: Path) -> None:
    env, repo = env_for(tmp_path), tmp_path / "repo"
    repo.mkdir()
    add = run_kcode(
        ["mcp", "add", "-e", "TOKEN=abc", "basic", "--", sys.executable, str(SERVERS), "basic"],
        env,
        repo,
    )
    assert add.code == 0, add.stderr
    user_file = tmp_path / "cfg" / "kcode" / "mcp.json"
    entry = json.loads(user_file.read_text())["mcpServers"]["basic"]
    assert entry == {
        "command": sys.executable,
        "args": [str(SERVERS), "basic"],
        "env": {"TOKEN": "abc"},
    }
    assert user_file.stat().st_mode & 0o077 == 0
    web = ["mcp", "add", "-t", "http", "-H", "Authorization: Bearer s3cret", "web"]
    assert run_kcode([*web, "http://127.0.0.1:9/mcp"], env, repo).code == 0
    proj = ["mcp", "add", "--scope", "project", "proj", "--", "touch", "pwned"]
    assert run_kcode(proj, env, repo).code == 0
    assert "proj" in json.loads((repo / ".mcp.json").read_text())["mcpServers"]

    got = run_kcode(["mcp", "get", "web"], env, repo)
    assert got.code == 0 and "header Authorization: ***" in got.stdout
    assert "s3cret" not in got.stdout

    listed = run_kcode(["mcp", "list"], env, repo, timeout=120)
    assert listed.code == 0, listed.stderr
    assert "✓ basic: connected (stdio" in listed.stdout and "7 tools" in listed.stdout
    assert "✗ web: failed" in listed.stdout
    assert "not trusted" in listed.stdout and not (repo / "pwned").exists()

    assert run_kcode(["mcp", "remove", "web"], env, repo).code == 0
    assert "web" not in json.loads(user_file.read_text())["mcpServers"]
    gone = run_kcode(["mcp", "remove", "web"], env, repo)
    assert gone.code == 2 and "no server 'web'" in gone.stderr


def test_bad_add_commands_say_what_to_do(tmp_path: Path) -> None:
    env, repo = env_for(tmp_path), tmp_path
    ws = run_kcode(["mcp", "add", "-t", "ws", "x", "wss://h"], env, repo)
    assert ws.code == 2 and "use stdio, http or sse" in ws.stderr
    nocmd = run_kcode(["mcp", "add", "x"], env, repo)
    assert nocmd.code == 2 and "needs a command" in nocmd.stderr
    badname = run_kcode(["mcp", "add", "a b", "--", "cmd"], env, repo)
    assert badname.code == 2 and "server name" in badname.stderr


def test_doctor_lists_servers_and_their_state(tmp_path: Path) -> None:
    env, repo = env_for(tmp_path), tmp_path
    cfg = tmp_path / "cfg" / "kcode"
    cfg.mkdir(parents=True)
    servers = {
        "basic": {"command": sys.executable, "args": [str(SERVERS), "basic"]},
        "crash": {"command": sys.executable, "args": [str(SERVERS), "crash"]},
        "odd": {"type": "pigeon"},
    }
    (cfg / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    doctor = run_kcode(["doctor"], env, repo, timeout=120)
    assert "✓ basic: connected" in doctor.stdout
    assert "✗ crash: failed" in doctor.stdout and "cannot start" in doctor.stdout
    assert "mcpServers.odd.type: unknown transport 'pigeon'" in doctor.stdout


def test_add_refuses_a_name_whose_tool_names_another_server_could_spell(tmp_path: Path) -> None:
    """`gh` and `gh__x` (or `gh_`) would both own `mcp__gh__x__…`: refused at add time, with the
    other server named, and nothing written; a name that merely starts alike is fine."""
    env, repo = env_for(tmp_path), tmp_path / "repo"
    repo.mkdir()
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"gh": {"command": "true"}}}))
    user_file = tmp_path / "cfg" / "kcode" / "mcp.json"
    for clashing in ("gh__issues", "gh_"):
        refused = run_kcode(["mcp", "add", clashing, "--", "true"], env, repo)
        assert refused.code == 2, refused.stdout
        assert "clashes with server 'gh'" in refused.stderr and ".mcp.json" in refused.stderr
        assert not user_file.exists()
    assert run_kcode(["mcp", "add", "ghost", "--", "true"], env, repo).code == 0
    assert run_kcode(["mcp", "add", "gh", "--", "false"], env, repo).code == 0  # same name: fine
    assert set(json.loads(user_file.read_text())["mcpServers"]) == {"ghost", "gh"}


def test_a_fifo_where_the_user_mcp_file_should_be_is_never_waited_on(tmp_path: Path) -> None:
    """Both `kcode -p` and `kcode mcp add` blocked for ever on it (found by a crash hunt)."""
    env, repo = env_for(tmp_path), tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "cfg" / "kcode").mkdir(parents=True)
    os.mkfifo(tmp_path / "cfg" / "kcode" / "mcp.json")
    script = tmp_path / "script.json"
    script.write_text('[{"text": "done"}]')
    run = run_kcode(
        ["-p", "hi"], {**env, "KCODE_BACKEND": "scripted", "KCODE_SCRIPT": str(script)}, repo
    )
    assert run.code == 0, run.stderr
    assert run.stdout == "done\n" and "not a regular file" in run.stderr
    add = run_kcode(["mcp", "add", "x", "--", "true"], env, repo)
    assert add.code == 2 and "not a regular file" in add.stderr
