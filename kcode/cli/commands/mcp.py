"""`kcode mcp list|get|add|remove`: the peers' commands for MCP servers (Claude's spelling).

  kcode mcp add NAME -- COMMAND ARGS...           a stdio server
  kcode mcp add --transport http NAME URL         streamable HTTP (sse: legacy SSE)
  kcode mcp add -e KEY=VALUE -H "Name: value" --scope project NAME ...
User scope writes ~/.config/kcode/mcp.json; project scope writes ./.mcp.json (the file Claude and
the other peers read), used only once the repository is trusted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcode.cli.main import CommandFailed, load
from kcode.cli.parse import root_of
from kcode.safety.json_input import loads_json

if TYPE_CHECKING:
    from kcode.cli.parse import Invocation


def _fail(message: str) -> CommandFailed:
    return CommandFailed(message)


def echo(line: str) -> None:
    sys.stdout.write(f"{line}\n")


def _scope_file(scope: str, root: Path) -> Path:
    from kcode.mcp.config import user_mcp_path

    if scope == "user":
        return user_mcp_path()
    if scope == "project":
        return root / ".mcp.json"
    raise _fail(f"--scope {scope!r}: use user or project")


def _read(path: Path) -> dict[str, Any]:
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block here for ever
            raise _fail(f"{path} is not a regular file; remove it (kcode writes a new one)")
        data = loads_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"mcpServers": {}}
    except (OSError, ValueError) as err:
        raise _fail(f"{path}: cannot read it ({err}); fix or remove the file first") from None
    if not isinstance(data, dict) or not isinstance(data.setdefault("mcpServers", {}), dict):
        raise _fail(f"{path}: `mcpServers` must be an object; fix the file first")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)  # env and headers may hold tokens
    os.replace(tmp, path)


def _pairs(items: list[str] | None, sep: str, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise _fail(f"{what} {item!r}: write it as KEY{sep}VALUE")
        out[key.strip()] = value.strip() if sep == ":" else value
    return out


def add(inv: Invocation) -> int:
    """Add a server: `kcode mcp add NAME -- COMMAND ARGS` or `--transport http NAME URL`."""
    from kcode.mcp.config import parse_server

    name: str = inv["name"]
    target: list[str] = inv["target"]
    transport: str = inv["transport"]
    env: list[str] = inv["env"]
    header: list[str] = inv["header"]
    scope: str = inv["scope"] or "user"
    entry: dict[str, Any]
    if transport == "stdio":
        if not target:
            raise _fail("a stdio server needs a command: kcode mcp add NAME -- COMMAND ARGS...")
        entry = {"command": target[0], "args": target[1:]}
        if env:
            entry["env"] = _pairs(env, "=", "--env")
    elif transport in ("http", "sse", "streamable-http"):
        if len(target) != 1:
            raise _fail(
                f"a {transport} server needs one URL: kcode mcp add -t {transport} NAME URL"
            )
        entry = {"type": "http" if transport != "sse" else "sse", "url": target[0]}
        if header:
            entry["headers"] = _pairs(header, ":", "--header")
    else:
        raise _fail(f"--transport {transport!r}: use stdio, http or sse")
    root = root_of(inv)
    path = _scope_file(scope, root)
    warnings: list[str] = []
    if parse_server(name, entry, str(path), scope, warnings, env={}) is None:
        raise _fail("; ".join(warnings))
    _refuse_clash(name, inv, root)
    data = _read(path)
    replaced = name in data["mcpServers"]
    data["mcpServers"][name] = entry
    _write(path, data)
    echo(f"{'replaced' if replaced else 'added'} {name} in {path}")
    return 0


def _refuse_clash(name: str, inv: Invocation, root: Path) -> None:
    """A name whose tool names another configured server could also spell (`gh` and `gh__x`,
    `gh_`) would be skipped at the next load (kcode.mcp.config.names_clash): refuse it now, while
    the user is here to pick another. Project files count whether or not the repository is
    trusted yet: trusting it later must not start skipping a server that works today."""
    from kcode.mcp.config import load_setup, names_clash

    for other in load_setup(root, load(inv), trusted=True).servers:
        if names_clash(name, other.name):
            raise _fail(
                f"server name {name!r} clashes with server {other.name!r} ({other.source}): "
                f"tool names mcp__{name}__<tool> and mcp__{other.name}__<tool> could be the same; "
                "choose another name"
            )


def remove(inv: Invocation) -> int:
    """Remove a server from the user file (or the one given with --scope)."""
    name: str = inv["name"]
    scope: str | None = inv["scope"]
    root = root_of(inv)
    for candidate in [scope] if scope else ["user", "project"]:
        path = _scope_file(candidate, root)
        data = _read(path)
        if name in data["mcpServers"]:
            del data["mcpServers"][name]
            _write(path, data)
            echo(f"removed {name} from {path}")
            return 0
    raise _fail(f"no server {name!r} in the {scope or 'user or project'} MCP file")


def list_servers(inv: Invocation) -> int:
    """Every configured server with its state (connects to each unless --no-check)."""
    root = root_of(inv)
    config = load(inv)
    if inv["check"]:
        from kcode.mcp.status import check_servers

        for line in check_servers(config, root):
            echo(line)
        return 0
    from kcode.mcp.config import load_setup

    setup = load_setup(root, config)
    for s in setup.servers:
        state = "" if s.enabled else " (disabled)"
        echo(f"{s.name}: {s.transport} {s.target()}{state}  [{s.scope}: {s.source}]")
    for path in setup.untrusted:
        echo(f"! {path}: not used, the repository is not trusted")
    for warning in setup.warnings:
        echo(f"warning: {warning}")
    return 0


def get(inv: Invocation) -> int:
    """One server's settings (env and header values are masked)."""
    from kcode.mcp.config import load_setup

    name: str = inv["name"]
    root = root_of(inv)
    setup = load_setup(root, load(inv))
    for s in setup.servers:
        if s.name == name:
            echo(f"{s.name}:")
            echo(f"  scope: {s.scope} ({s.source})")
            echo(f"  transport: {s.transport}")
            echo(f"  {'command' if s.transport == 'stdio' else 'url'}: {s.target()}")
            for key in s.env:
                echo(f"  env {key}=***")
            for key in s.headers:
                echo(f"  header {key}: ***")
            echo(f"  enabled: {str(s.enabled).lower()}")
            if s.enabled_tools is not None:
                echo(f"  enabled tools: {', '.join(s.enabled_tools)}")
            if s.disabled_tools:
                echo(f"  disabled tools: {', '.join(s.disabled_tools)}")
            echo(f"  timeouts: startup {s.startup_timeout_s:g} s, call {s.tool_timeout_s:g} s")
            return 0
    raise _fail(f"no MCP server {name!r} (kcode mcp list shows them)")
