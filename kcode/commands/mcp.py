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
from typing import Annotated, Any

import typer

from kcode.config import ConfigError, load_config

mcp_app = typer.Typer(rich_markup_mode=None, help="MCP servers", no_args_is_help=True)

ScopeOpt = Annotated[str, typer.Option("--scope", "-s", help="user | project")]
CwdOpt = Annotated[Path | None, typer.Option("-C", "--cwd", help="workspace directory")]


def _fail(message: str) -> typer.Exit:
    sys.stderr.write(f"kcode: {message}\n")
    return typer.Exit(2)


def _root(cwd: Path | None) -> Path:
    return (cwd or Path.cwd()).resolve()


def _scope_file(scope: str, root: Path) -> Path:
    from kcode.mcp.config import user_mcp_path

    if scope == "user":
        return user_mcp_path()
    if scope == "project":
        return root / ".mcp.json"
    raise _fail(f"--scope {scope!r}: use user or project")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
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


@mcp_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="server name")],
    target: Annotated[list[str] | None, typer.Argument(help="-- COMMAND ARGS..., or a URL")] = None,
    transport: Annotated[str, typer.Option("--transport", "-t", help="stdio|http|sse")] = "stdio",
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE")] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="'Name: value'")
    ] = None,
    scope: ScopeOpt = "user",
    cwd: CwdOpt = None,
) -> None:
    """Add a server: `kcode mcp add NAME -- COMMAND ARGS` or `--transport http NAME URL`."""
    from kcode.mcp.config import parse_server

    target = target or []
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
    root = _root(cwd)
    path = _scope_file(scope, root)
    warnings: list[str] = []
    if parse_server(name, entry, str(path), scope, warnings, env={}) is None:
        raise _fail("; ".join(warnings))
    data = _read(path)
    replaced = name in data["mcpServers"]
    data["mcpServers"][name] = entry
    _write(path, data)
    typer.echo(f"{'replaced' if replaced else 'added'} {name} in {path}")


@mcp_app.command("remove")
def remove(name: str, scope: Annotated[str | None, typer.Option("--scope", "-s")] = None,
           cwd: CwdOpt = None) -> None:  # fmt: skip
    """Remove a server from the user file (or the one given with --scope)."""
    root = _root(cwd)
    for candidate in [scope] if scope else ["user", "project"]:
        path = _scope_file(candidate, root)
        data = _read(path)
        if name in data["mcpServers"]:
            del data["mcpServers"][name]
            _write(path, data)
            typer.echo(f"removed {name} from {path}")
            return
    raise _fail(f"no server {name!r} in the {scope or 'user or project'} MCP file")


def _config(root: Path) -> Any:
    try:
        return load_config(root, {}, interactive=True)
    except ConfigError as err:
        raise _fail(str(err)) from None


@mcp_app.command("list")
def list_servers(
    check: Annotated[bool, typer.Option("--check/--no-check", help="connect to each")] = True,
    cwd: CwdOpt = None,
) -> None:
    """Every configured server with its state (connects to each unless --no-check)."""
    root = _root(cwd)
    config = _config(root)
    if check:
        from kcode.mcp.status import check_servers

        for line in check_servers(config, root):
            typer.echo(line)
        return
    from kcode.mcp.config import load_setup

    setup = load_setup(root, config)
    for s in setup.servers:
        state = "" if s.enabled else " (disabled)"
        typer.echo(f"{s.name}: {s.transport} {s.target()}{state}  [{s.scope}: {s.source}]")
    for path in setup.untrusted:
        typer.echo(f"! {path}: not used, the repository is not trusted")
    for warning in setup.warnings:
        typer.echo(f"warning: {warning}")


@mcp_app.command("get")
def get(name: str, cwd: CwdOpt = None) -> None:
    """One server's settings (env and header values are masked)."""
    from kcode.mcp.config import load_setup

    root = _root(cwd)
    setup = load_setup(root, _config(root))
    for s in setup.servers:
        if s.name == name:
            typer.echo(f"{s.name}:")
            typer.echo(f"  scope: {s.scope} ({s.source})")
            typer.echo(f"  transport: {s.transport}")
            typer.echo(f"  {'command' if s.transport == 'stdio' else 'url'}: {s.target()}")
            for key in s.env:
                typer.echo(f"  env {key}=***")
            for key in s.headers:
                typer.echo(f"  header {key}: ***")
            typer.echo(f"  enabled: {str(s.enabled).lower()}")
            if s.enabled_tools is not None:
                typer.echo(f"  enabled tools: {', '.join(s.enabled_tools)}")
            if s.disabled_tools:
                typer.echo(f"  disabled tools: {', '.join(s.disabled_tools)}")
            typer.echo(
                f"  timeouts: startup {s.startup_timeout_s:g} s, call {s.tool_timeout_s:g} s"
            )
            return
    raise _fail(f"no MCP server {name!r} (kcode mcp list shows them)")
