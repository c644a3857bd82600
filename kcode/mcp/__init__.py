"""MCP client (issue #15): servers from the peers' `mcpServers` files, tools as `mcp__server__tool`.

Light at import: the `mcp` SDK is imported only when a server actually connects, so `kcode --version`
and runs without MCP servers never load it.

  config.py   which servers (files, env expansion, filters, timeouts, trust)
  naming.py   mcp__<server>__<tool>
  schema.py   schemas cleaned for strict providers
  client.py   one connection on the SDK (connect, list, call, reconnect)
  results.py  what tools and call results become for kcode (names, schemas, text, images)
  manager.py  all servers, started in the background on the agent's loop
  tools.py    kcode Tool adapters and the tool set that grows when a server connects late
  status.py   lines for /mcp, `kcode mcp list` and `kcode doctor`
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kcode.mcp.manager import McpManager


def log_dir() -> Path:
    from kcode.config.loader import data_dir

    return data_dir() / "mcp-logs"


def create_manager(config: Any, root: Path) -> McpManager | None:
    """The session's MCP manager, or None when no server is configured (nothing is imported)."""
    from kcode.mcp.config import load_setup

    setup = load_setup(root, config)
    if not setup.servers and not setup.untrusted and not setup.warnings:
        return None
    from kcode.mcp.manager import McpManager

    return McpManager(setup, root, log_dir())
