"""All MCP servers of a session, on the agent's event loop.

Servers start in the background (`start` returns at once; the first model request never waits):
the SDK is imported in a worker thread (seconds of CPU when cold, which must not freeze the loop or
eat into a server's startup timeout), then every server connects in its own task. Calls are awaited
directly on the same loop: no thread hop per call. The tool list is a snapshot of plain dicts that
each connection replaces in one assignment, so reading it never waits for a server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcode.backends.base import ToolSpec
from kcode.mcp.client import (
    CONNECTED,
    CONNECTING,
    DISABLED,
    FAILED,
    PENDING,
    UNTRUSTED,
    Connection,
)
from kcode.mcp.config import McpSetup
from kcode.mcp.naming import sanitize, server_of
from kcode.mcp.results import CallOutcome, ToolInfo, clash_note

# Above this many MCP tools the model gets a search tool instead of every schema (OpenAI accepts at
# most 128 tools per request; long lists also cost tokens and hurt tool choice).
MAX_DIRECT_TOOLS = 80
SEARCH_TOOL = "mcp_search_tools"


@dataclass(frozen=True)
class ServerStatus:
    name: str
    state: str
    transport: str
    target: str
    source: str
    tools: int
    error: str
    notes: tuple[str, ...] = ()


class McpManager:
    def __init__(self, setup: McpSetup, root: Path, log_dir: Path | None = None) -> None:
        self.setup = setup
        self.root = root
        self.connections = {s.name: Connection(s, root, log_dir) for s in setup.servers}
        self.activated: set[str] = set()  # tools the search tool unlocked (many-tools mode)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sdk: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start every enabled server in the background; returns at once. Idempotent.

        Needs the running loop the servers will live on; called elsewhere (the REPL builds its
        runtime in a worker thread) it does nothing, and the next call from the loop starts them."""
        if self._loop is not None:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        _quiet_sdk_logs()
        self._spawn(self._start_all())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # a strong reference: the loop keeps only weak ones
        task.add_done_callback(self._tasks.discard)

    async def _sdk_imported(self) -> bool:
        if self._sdk is None:
            self._sdk = _import_sdk_in_background()
        try:
            await asyncio.shield(self._sdk)
        except ImportError as err:
            for conn in self.connections.values():
                if conn.state not in (DISABLED, UNTRUSTED):
                    conn.state = FAILED
                    conn.error = f"the MCP SDK is not installed ({err}): pip install 'mcp>=2.3,<3'"
            return False
        return True

    async def _start_all(self) -> None:
        if not await self._sdk_imported():
            return
        for conn in self.connections.values():
            if conn.state == PENDING:
                self._spawn(conn.ensure_connected())

    async def _ready(self, conn: Connection) -> bool:
        self.start()
        return await self._sdk_imported() and await conn.ensure_connected()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until no server is still starting (tests, `kcode mcp list`, doctor)."""
        self.start()
        deadline = asyncio.get_running_loop().time() + timeout
        while any(c.state in (PENDING, CONNECTING) for c in self.connections.values()):
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        """Stop every server (the SDK's stdio transport ends their processes)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(
            *(c.close() for c in self.connections.values()), return_exceptions=True
        )

    # --- what the agent sees --------------------------------------------------------------
    def tools(self) -> dict[str, ToolInfo]:
        """The tools offered to the model: those of connected servers, and those of a server that
        was connected and then failed (a crash mid-call): calling one reconnects it."""
        out: dict[str, ToolInfo] = {}
        for conn in list(self.connections.values()):  # config order: the stronger server first
            if conn.state in (CONNECTED, FAILED, CONNECTING):
                for name, info in conn.tools.items():
                    if name not in out:
                        out[name] = info
                    elif (note := clash_note(conn.config, info, out[name])) not in conn.notes:
                        conn.notes.append(note)
        return out

    def known_tool(self, name: str) -> ToolInfo | None:
        """A tool of any server that listed it once, connected now or not (calls reconnect)."""
        for conn in list(self.connections.values()):
            info = conn.tools.get(name)
            if info is not None:
                return info
        return None

    def many_tools(self) -> bool:
        return len(self.tools()) > MAX_DIRECT_TOOLS

    def tool_specs(self) -> list[ToolSpec]:
        tools = self.tools()
        if len(tools) > MAX_DIRECT_TOOLS:
            shown = [t for n, t in tools.items() if n in self.activated]
            return [search_spec(len(tools))] + [_spec(t) for t in shown]
        return [_spec(t) for t in tools.values()]

    def search(self, query: str, limit: int = 20) -> list[ToolInfo]:
        words = [w for w in query.lower().split() if w]
        scored = []
        for info in self.tools().values():
            hay = f"{info.name} {info.description}".lower()
            score = sum(hay.count(w) for w in words) if words else 1
            if score:
                scored.append((-score, info.name, info))
        scored.sort(key=lambda item: (item[0], item[1]))
        found = [info for _, _, info in scored[:limit]]
        self.activated.update(info.name for info in found)
        return found

    def server_for(self, name: str) -> Connection | None:
        """The usable server `mcp__server__...` names, listed or not (yet)."""
        if not server_of(name):
            return None
        # The longest server name that prefixes it: `mcp__gh__x__y` belongs to `gh__x` if there
        # is one (kcode.mcp.config rejects a pair of names that could both spell a tool).
        found = [
            c
            for c in self.connections.values()
            if name.startswith(f"mcp__{sanitize(c.config.name)}__")
            and c.state not in (DISABLED, UNTRUSTED)
        ]
        return max(found, key=lambda c: len(c.config.name), default=None)

    async def listed_tool(self, name: str) -> ToolInfo | CallOutcome | None:
        """The tool `name`, waiting for its server when that is still starting (the model may
        name a tool its first request went out without, or one it knows the server for); a
        failed outcome when that server could not start; None when no server lists it."""
        self.start()
        info = self.known_tool(name)
        if info is None:
            conn = self.server_for(name)
            if conn is not None:
                if not await self._ready(conn):
                    return CallOutcome(
                        False,
                        f"MCP server {conn.config.name!r} is not available ({conn.error}). "
                        "Continue without it; kcode tries to reconnect on the next call.",
                    )
                info = self.known_tool(name)
        return info

    async def call(self, name: str, arguments: dict[str, Any]) -> CallOutcome:
        info = await self.listed_tool(name)
        if isinstance(info, CallOutcome):
            return info
        if info is None:
            listed = ", ".join(sorted(self.tools())) or "none"
            return CallOutcome(False, f"no MCP tool {name!r}; MCP tools available: {listed}")
        conn = self.connections[info.server]
        if not await self._sdk_imported():
            return CallOutcome(False, conn.error)
        return await conn.call(info.tool, arguments)

    async def get_prompt(self, server: str, prompt: str, args: dict[str, str]) -> CallOutcome:
        conn = self.connections.get(server)
        if conn is None:
            return CallOutcome(False, f"no MCP server {server!r}")
        await self._ready(conn)
        return await conn.get_prompt(prompt, args)

    async def read_resource(self, server: str, uri: str) -> CallOutcome:
        conn = self.connections.get(server)
        if conn is None:
            return CallOutcome(False, f"no MCP server {server!r}")
        await self._ready(conn)
        return await conn.read_resource(uri)

    def statuses(self) -> list[ServerStatus]:
        out = []
        for conn in self.connections.values():
            cfg = conn.config
            out.append(
                ServerStatus(
                    name=cfg.name,
                    state=conn.state,
                    transport=conn.transport_used or cfg.transport,
                    target=cfg.target(),
                    source=cfg.source,
                    tools=len(conn.tools),
                    error=conn.error,
                    notes=tuple(conn.notes),
                )
            )
        return out


def _quiet_sdk_logs() -> None:
    """The SDK logs parse errors and server faults to stderr, which would draw over the REPL; the
    same facts reach the user as a server's state and error (/mcp) or a tool result."""
    import logging

    for name in ("mcp", "httpx", "httpx2"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def _import_sdk_in_background() -> asyncio.Future[None]:
    """Import the SDK on a daemon thread. Not asyncio.to_thread: a short `-p` run that ends while
    the import is still going would wait for it at exit (the default executor is joined)."""
    import threading

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def work() -> None:
        error: BaseException | None = None
        try:
            import mcp  # noqa: F401
        except BaseException as err:  # ImportError: every connect then says the SDK is missing
            error = err
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    threading.Thread(target=work, name="kcode-mcp-import", daemon=True).start()
    return done


def _spec(info: ToolInfo) -> ToolSpec:
    return ToolSpec(info.name, info.description, info.schema)


def search_spec(count: int) -> ToolSpec:
    return ToolSpec(
        SEARCH_TOOL,
        f"Find MCP tools by keywords ({count} are available; only tools found here are listed to "
        "you). Returns matching tool names and descriptions; the tools found can be called "
        "from the next step on.",
        {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "keywords"}},
            "required": ["query"],
        },
    )
