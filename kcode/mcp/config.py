"""Which MCP servers to run: the peers' shared `mcpServers` JSON and `[mcp_servers.NAME]` tables.

Sources, strongest first (SPEC §8; the whole entry from the strongest source wins, fields are never
merged across sources):
  1. `[mcp_servers.NAME]` in the user's config.toml,
  2. the user's `~/.config/kcode/mcp.json`,
  3. the project's `.kcode/mcp.json`, then `.mcp.json`: only when the repository is trusted.
A project entry never replaces a user entry of the same name: the user's allow rules for
`mcp__github__*` must not start applying to a command a repository chose.

Every problem in an entry is a warning naming the file and the field; that entry is skipped (or the
field ignored) and everything else keeps working.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcode.safety.json_input import loads_json

PROJECT_FILES = (".kcode/mcp.json", ".mcp.json")
MAX_PROJECT_FILE = 512 * 1024
DEFAULT_STARTUP_TIMEOUT_S = 30.0
DEFAULT_TOOL_TIMEOUT_S = 300.0
TRANSPORTS = {
    "stdio": "stdio",
    "local": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamable_http": "http",
    "streamablehttp": "http",
    "remote": "auto",
    "sse": "sse",
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class ServerConfig:
    name: str
    transport: str  # stdio | http | sse | auto (a bare url: streamable HTTP, then SSE)
    source: str  # the file (or config table) it came from
    scope: str  # user | project
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    enabled_tools: list[str] | None = None
    disabled_tools: list[str] = field(default_factory=list)
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S

    def target(self) -> str:
        if self.transport == "stdio":
            return shlex.join([self.command, *self.args])
        return self.url

    def allows_tool(self, tool: str) -> bool:
        from fnmatch import fnmatchcase

        if any(fnmatchcase(tool, p) for p in self.disabled_tools):
            return False
        if self.enabled_tools is None:
            return True
        return any(fnmatchcase(tool, p) for p in self.enabled_tools)


@dataclass
class McpSetup:
    servers: list[ServerConfig] = field(default_factory=list)
    # Project files found but not used because the repository is not trusted.
    untrusted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def user_mcp_path() -> Path:
    from kcode.config.loader import user_config_path

    return user_config_path().parent / "mcp.json"


def expand_vars(text: str, where: str, warnings: list[str], env: Mapping[str, str]) -> str:
    """`${VAR}` and `${VAR:-default}`; an unset variable without a default stays verbatim."""

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is None:
            warnings.append(f"{where}: ${{{name}}} is not set; left as written")
            return match.group(0)
        return value

    return _VAR.sub(sub, text)


def _ms(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value) / 1000.0


def _secs(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _str_list(raw: Any, where: str, warnings: list[str]) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    warnings.append(f"{where}: must be a list of strings; ignored")
    return None


def _str_map(raw: Any, where: str, warnings: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        out = {}
        for key, value in raw.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                out[str(key)] = str(value)
            else:
                warnings.append(f"{where}.{key}: must be a string; ignored")
        return out
    warnings.append(f"{where}: must be a table of strings; ignored")
    return {}


def parse_server(
    name: str,
    raw: Any,
    source: str,
    scope: str,
    warnings: list[str],
    env: Mapping[str, str] | None = None,
) -> ServerConfig | None:
    """One entry of `mcpServers`, or None (with a warning naming the file and field) if unusable."""
    env = os.environ if env is None else env
    where = f"{source}: mcpServers.{name}"
    if not _NAME.match(name):
        warnings.append(
            f"{where}: the server name must be 1-64 letters, digits, '_' or '-'; skipped"
        )
        return None
    if not isinstance(raw, dict):
        warnings.append(f"{where}: must be an object; skipped")
        return None
    kind = raw.get("type", raw.get("transport"))
    url = raw.get("httpUrl") or raw.get("url") or raw.get("serverUrl") or ""
    if not isinstance(url, str):
        warnings.append(f"{where}.url: must be a string; skipped")
        return None
    command: Any = raw.get("command", "")
    args: list[str] = []
    if isinstance(command, list):  # opencode: "command": ["npx", "-y", "server"]
        if not command or not all(isinstance(x, str) for x in command):
            warnings.append(f"{where}.command: must be a string or a list of strings; skipped")
            return None
        command, args = command[0], list(command[1:])
    elif not isinstance(command, str):
        warnings.append(f"{where}.command: must be a string; skipped")
        return None
    if kind is None:
        transport = "stdio" if command else ("http" if raw.get("httpUrl") else "auto")
    elif isinstance(kind, str) and kind.lower() in TRANSPORTS:
        transport = TRANSPORTS[kind.lower()]
        if transport == "auto" and command:
            transport = "stdio"
    else:
        field_name = "type" if "type" in raw else "transport"
        known = "stdio, http, streamable-http, sse"
        warnings.append(f"{where}.{field_name}: unknown transport {kind!r} (use {known}); skipped")
        return None
    if transport == "stdio" and not command:
        warnings.append(f"{where}.command: missing (a stdio server needs a command); skipped")
        return None
    if transport != "stdio" and not url:
        warnings.append(f"{where}.url: missing (a {transport} server needs a url); skipped")
        return None
    more_args = _str_list(raw.get("args"), f"{where}.args", warnings)
    server = ServerConfig(name=name, transport=transport, source=source, scope=scope)
    server.command = expand_vars(command, f"{where}.command", warnings, env)
    server.args = [expand_vars(a, f"{where}.args", warnings, env) for a in args + (more_args or [])]
    raw_env = raw.get("env", raw.get("environment"))
    server.env = {
        k: expand_vars(v, f"{where}.env.{k}", warnings, env)
        for k, v in _str_map(raw_env, f"{where}.env", warnings).items()
    }
    server.headers = {
        k: expand_vars(v, f"{where}.headers.{k}", warnings, env)
        for k, v in _str_map(raw.get("headers"), f"{where}.headers", warnings).items()
    }
    token_var = raw.get("bearerTokenEnvVar", raw.get("bearer_token_env_var"))
    if isinstance(token_var, str) and token_var:
        if env.get(token_var):
            server.headers.setdefault("Authorization", f"Bearer {env[token_var]}")
        else:
            warnings.append(f"{where}.bearerTokenEnvVar: ${token_var} is not set")
    cwd = raw.get("cwd", "")
    if isinstance(cwd, str):
        server.cwd = expand_vars(cwd, f"{where}.cwd", warnings, env)
    else:
        warnings.append(f"{where}.cwd: must be a string; ignored")
    server.url = expand_vars(url, f"{where}.url", warnings, env)
    if server.url and not server.url.startswith(("http://", "https://")):
        warnings.append(f"{where}.url: {server.url!r} is not an http(s) URL; skipped")
        return None
    if raw.get("enabled") is False or raw.get("disabled") is True:
        server.enabled = False
    server.enabled_tools = next(
        (
            _str_list(raw[k], f"{where}.{k}", warnings)
            for k in ("enabledTools", "includeTools", "enabled_tools")
            if k in raw
        ),
        None,
    )
    for key in ("disabledTools", "excludeTools", "disabled_tools"):
        server.disabled_tools += _str_list(raw.get(key), f"{where}.{key}", warnings) or []
    startup = _ms(raw.get("startupTimeoutMs")) or _secs(raw.get("startup_timeout_sec"))
    server.startup_timeout_s = startup or DEFAULT_STARTUP_TIMEOUT_S
    call = (
        _ms(raw.get("toolTimeoutMs"))
        or _secs(raw.get("tool_timeout_sec"))
        or _ms(raw.get("timeout"))  # Gemini: per-call timeout in ms
    )
    server.tool_timeout_s = call or DEFAULT_TOOL_TIMEOUT_S
    return server


def parse_servers_json(
    text: str, source: str, scope: str, warnings: list[str]
) -> list[ServerConfig]:
    try:
        data = loads_json(text)
    except ValueError as err:
        warnings.append(f"{source}: not valid JSON ({err}); its MCP servers are ignored")
        return []
    if not isinstance(data, dict):
        warnings.append(f"{source}: must be a JSON object with `mcpServers`; ignored")
        return []
    table = data.get("mcpServers", data.get("mcp_servers"))
    if table is None:
        if data:
            warnings.append(f"{source}: no `mcpServers` object; ignored")
        return []
    if not isinstance(table, dict):
        warnings.append(f"{source}: mcpServers must be an object; ignored")
        return []
    out = []
    for name, raw in table.items():
        server = parse_server(str(name), raw, source, scope, warnings)
        if server is not None:
            out.append(server)
    return out


def _read_user_file(path: Path, warnings: list[str]) -> str | None:
    try:
        info = os.stat(path)
        # A FIFO here blocked `kcode -p` and `kcode mcp add` for ever; /dev/zero never ends.
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PROJECT_FILE:
            warnings.append(
                f"{path}: ignored; not a regular file of at most {MAX_PROJECT_FILE >> 10} KB"
            )
            return None
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        warnings.append(f"{path}: cannot read it ({err}); its MCP servers are ignored")
        return None


def project_files(root: Path) -> list[str]:
    return [rel for rel in PROJECT_FILES if os.path.lexists(root / rel)]


def load_setup(root: Path, config: Any, *, trusted: bool | None = None) -> McpSetup:
    """Every configured server, strongest source first, names unique."""
    from kcode.config.loader import user_config_path
    from kcode.safety.workspace_files import UnsafeFile, read_workspace_file

    setup = McpSetup()
    found: list[ServerConfig] = []
    table = getattr(config, "mcp_servers", None) or {}
    toml_source = f"{user_config_path()} [mcp_servers]"
    if isinstance(table, dict):
        for name, raw in table.items():
            server = parse_server(str(name), raw, toml_source, "user", setup.warnings)
            if server is not None:
                found.append(server)
    user_path = user_mcp_path()
    text = _read_user_file(user_path, setup.warnings)
    if text is not None:
        found += parse_servers_json(text, str(user_path), "user", setup.warnings)
    present = project_files(root)
    if trusted is None:
        from kcode.extensions.trust import is_project_trusted

        trusted = is_project_trusted(root, config) if present else False
    for rel in present:
        path = root / rel
        if not trusted:
            setup.untrusted.append(str(path))
            setup.warnings.append(
                f"{path}: its MCP servers are not started; this repository is not trusted "
                "(trust it once in the REPL, pass --trust-project, or list it in `trusted` in "
                "your user config)"
            )
            continue
        try:
            raw = read_workspace_file(root, rel, MAX_PROJECT_FILE, control=True)
        except UnsafeFile as err:
            setup.warnings.append(f"{path}: ignored; {err}")
            continue
        if raw is None:
            continue
        found += parse_servers_json(
            raw.decode("utf-8", "replace"), str(path), "project", setup.warnings
        )
    names: dict[str, ServerConfig] = {}
    for server in found:
        first = names.get(server.name)
        if first is None:
            clash = _prefix_clash(server.name, names)
            if clash is not None:
                # Rejected, not renamed: rules and hook matchers are written against the name.
                setup.warnings.append(
                    f"{server.source}: mcpServers.{server.name}: skipped; its tool names "
                    f"(mcp__{server.name}__<tool>) can be spelled by server {clash.name!r} "
                    f"({clash.source}) too; rename one of them"
                )
                continue
            names[server.name] = server
        elif first.scope == "user" and server.scope == "project":
            setup.warnings.append(
                f"{server.source}: mcpServers.{server.name} is ignored; your own server "
                f"{first.name!r} ({first.source}) takes precedence"
            )
    setup.servers = list(names.values())
    return setup


def names_clash(a: str, b: str) -> bool:
    """Whether servers `a` and `b` can both produce one `mcp__<server>__<tool>` name: `gh` tool
    `x__y` and `gh__x` tool `y` are both `mcp__gh__x__y`; `gh` tool `_y` and `gh_` tool `y` are
    both `mcp__gh___y`. (Server names hold only letters, digits, `_` and `-`.)"""
    short, long = sorted((a, b), key=len)
    return short != long and (long.startswith(short + "__") or long == short + "_")


def _prefix_clash(name: str, known: dict[str, ServerConfig]) -> ServerConfig | None:
    """An earlier (stronger) server whose tool names the server `name` could spell, or the other
    way round. The stronger one keeps its names: a user server's allow rules (`mcp__gh__*`) must
    never start applying to a server a repository chose."""
    return next((other for other in known.values() if names_clash(name, other.name)), None)
