"""One MCP server connection on the official `mcp` SDK: connect, list, call, reconnect.

Runs on the agent's event loop (kcode.mcp.manager starts it). The SDK's context managers must be
entered and left in one task, so a "holder" task opens the client and keeps it open until told to
stop; calls run in other tasks on the same session. Nothing here raises into the agent: every
failure (a server that crashes at start, hangs, dies mid-call or prints garbage) becomes a state
plus an error text, and the next call reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kcode.mcp.config import ServerConfig
from kcode.mcp.results import (
    CallOutcome,
    ToolInfo,
    clash_note,
    describe_error,
    render_result,
    tool_info,
)

STDERR_TAIL = 400
DROP_GRACE_S = 3.0  # a stopping client closes stdin, waits 2 s, then SIGTERMs (the SDK's timing)
DROP_KILL_S = 6.0
# JSON-RPC codes the SDK uses (mcp_types.CONNECTION_CLOSED / REQUEST_TIMEOUT), kept here so this
# module imports without the SDK: the transport is gone (reconnect), or a call timed out.
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001

PENDING, CONNECTING, CONNECTED, FAILED, DISABLED, UNTRUSTED, CLOSED = (
    "pending", "connecting", "connected", "failed", "disabled", "untrusted", "closed",
)  # fmt: skip


class Connection:
    def __init__(self, config: ServerConfig, root: Path, log_dir: Path | None) -> None:
        self.config = config
        self.root = root
        self.state = PENDING if config.enabled else DISABLED
        self.error = ""
        self.tools: dict[str, ToolInfo] = {}
        self.notes: list[str] = []  # tools left out because their names clash (kcode.mcp.naming)
        self.prompts: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.transport_used = ""
        self.connects = 0
        self.stderr_path = (log_dir / f"{config.name}.stderr.log") if log_dir else None
        self._client: Any = None
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._opened = False  # the holder got a session and waits for `_stop`
        self._relists: set[asyncio.Task[None]] = set()
        self._relist_again = False  # a list_changed arrived while a re-list was running

    # --- connecting -----------------------------------------------------------------------
    async def ensure_connected(self) -> bool:
        if self.state == CONNECTED and self._client is not None:  # the per-call fast path
            return True
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.state == CONNECTED and self._client is not None:
                return True
            if self.state in (DISABLED, UNTRUSTED, CLOSED):
                return False
            await self._drop()
            self.state = CONNECTING
            self.connects += 1
            try:
                await asyncio.wait_for(self._connect(), self.config.startup_timeout_s)
            except TimeoutError:
                await self._drop()
                self._fail(
                    f"no answer within {self.config.startup_timeout_s:g} s (startup timeout)"
                )
                return False
            except Exception as err:
                await self._drop()
                self._fail(describe_error(err))
                return False
            self.state, self.error = CONNECTED, ""
            return True

    def _fail(self, why: str) -> None:
        tail = self.stderr_tail()
        self.state = FAILED
        self.error = f"{why}; stderr: {tail}" if tail else why

    def stderr_tail(self) -> str:
        if self.stderr_path is None:
            return ""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - STDERR_TAIL))
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip()[:200] if lines else ""

    async def _connect(self) -> None:
        transports = ["http", "sse"] if self.config.transport == "auto" else [self.config.transport]
        errors = []
        for transport in transports:
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[Any] = loop.create_future()
            # Whoever stops waiting (a startup timeout) must not leave it "never retrieved".
            ready.add_done_callback(lambda f: None if f.cancelled() else f.exception())
            self._stop = asyncio.Event()
            self._holder = asyncio.create_task(self._hold(transport, ready, self._stop))
            try:
                self._client = await asyncio.shield(ready)
            except Exception as err:
                errors.append(f"{transport}: {describe_error(err)}")
                await self._drop()
                continue
            self.transport_used = transport
            await self._list_everything()
            return
        raise ConnectionError("; ".join(errors))

    async def _hold(self, transport: str, ready: asyncio.Future[Any], stop: asyncio.Event) -> None:
        try:
            async with self._open(transport) as client:
                ready.set_result(client)
                self._opened = True
                watcher = asyncio.create_task(self._watch_tool_list(client))
                try:
                    await stop.wait()
                finally:
                    watcher.cancel()
                    await asyncio.wait({watcher})
        except BaseException as err:
            if not ready.done():
                ready.set_exception(
                    err if isinstance(err, Exception) else ConnectionError(str(err))
                )
            elif not stop.is_set() and self.state == CONNECTED:
                self._client = None
                self._fail(f"connection lost ({describe_error(err)})")
            if isinstance(err, asyncio.CancelledError):
                raise
        finally:
            if not ready.done():
                ready.set_exception(ConnectionError("the server closed the connection"))

    @contextlib.asynccontextmanager
    async def _open(self, transport: str) -> AsyncIterator[Any]:
        from mcp import Client

        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            if transport == "stdio":
                from mcp.client.stdio import StdioServerParameters, stdio_client

                cwd = Path(cfg.cwd).expanduser() if cfg.cwd else self.root
                if not cwd.is_absolute():
                    cwd = self.root / cwd
                params = StdioServerParameters(
                    command=cfg.command, args=cfg.args, env=cfg.env or None, cwd=str(cwd)
                )
                errlog = stack.enter_context(self._stderr_file())
                stream: Any = stdio_client(params, errlog=errlog)
            elif transport == "sse":
                from mcp.client.sse import sse_client

                stream = sse_client(
                    cfg.url, headers=cfg.headers or None, timeout=cfg.startup_timeout_s
                )
            else:
                from mcp.client.streamable_http import streamable_http_client
                from mcp.shared._httpx_utils import create_mcp_http_client

                http = create_mcp_http_client(headers=cfg.headers or None)
                await stack.enter_async_context(http)
                stream = streamable_http_client(cfg.url, http_client=http)
            client = Client(
                stream,
                read_timeout_seconds=cfg.tool_timeout_s,
                cache=None,
                message_handler=self._on_message,
            )
            yield await stack.enter_async_context(client)

    async def _watch_tool_list(self, client: Any) -> None:
        """2026-era servers announce a changed tool list on a `subscriptions/listen` stream; older
        ones send a notification (`_on_message`). Either way the tools are listed again."""
        try:
            async with client.listen(tools_list_changed=True) as events:
                async for _event in events:
                    await self._relist()
        except Exception:  # a server without listen support: notifications cover it
            return

    async def _on_message(self, message: Any) -> None:
        if getattr(message, "method", "") != "notifications/tools/list_changed":
            return
        # One re-list running and at most one waiting: a server that floods the notification
        # started a task per message, and memory grew ~22 MB/s (found by a crash hunt).
        if self._relist_again:
            return
        if self._relists:
            self._relist_again = True
            return
        task = asyncio.get_running_loop().create_task(self._relist_until_quiet())
        self._relists.add(task)
        task.add_done_callback(self._relists.discard)

    async def _relist_until_quiet(self) -> None:
        while True:
            await self._relist()
            if not self._relist_again:
                return
            self._relist_again = False

    async def _relist(self) -> None:
        if self._client is None:
            return
        with contextlib.suppress(Exception):  # a failed relist keeps the old list
            await asyncio.wait_for(self._list_everything(), self.config.startup_timeout_s)

    def _stderr_file(self) -> Any:
        if self.stderr_path is None:
            return open(os.devnull, "w")
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        return open(self.stderr_path, "w", encoding="utf-8")

    async def _list_everything(self) -> None:
        client = self._client
        tools: dict[str, ToolInfo] = {}
        notes: list[str] = []
        cursor: str | None = None
        for _ in range(100):  # a paginator that never ends must not hang the connect
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                if not self.config.allows_tool(tool.name):
                    continue
                info = tool_info(self.config.name, tool)
                taken = tools.get(info.name)
                if taken is None:
                    tools[info.name] = info
                elif taken.tool != info.tool:  # `a.b` and `a_b` are both `mcp__s__a_b`
                    notes.append(clash_note(self.config, info, taken))
            cursor = page.next_cursor
            if not cursor:
                break
        self.tools, self.notes = tools, notes  # one assignment each: never half a list
        caps = client.server_capabilities
        if getattr(caps, "prompts", None):
            with contextlib.suppress(Exception):
                listed = await client.list_prompts()
                self.prompts = [
                    {
                        "name": p.name,
                        "description": p.description or "",
                        "arguments": [
                            {"name": a.name, "required": bool(a.required)}
                            for a in (p.arguments or [])
                        ],
                    }
                    for p in listed.prompts
                ]
        if getattr(caps, "resources", None):
            with contextlib.suppress(Exception):
                res = await client.list_resources()
                self.resources = [{"uri": str(r.uri), "name": r.name} for r in res.resources]

    async def _drop(self) -> None:
        """Close the current client (if any); the server process is stopped by the SDK."""
        holder, stop = self._holder, self._stop
        self._client, self._holder, self._stop = None, None, None
        if holder is None:
            return
        opened, self._opened = self._opened, False
        done: set[Any] = set()
        if opened and stop is not None:  # a live session: let it close stdin and end cleanly
            stop.set()
            # asyncio.wait, not wait_for: it never waits for a task that ignores cancellation.
            done, _ = await asyncio.wait({holder}, timeout=DROP_GRACE_S)
        if not done:  # still starting (a hung handshake): cancel; the SDK still kills the process
            holder.cancel()
            await asyncio.wait({holder}, timeout=DROP_KILL_S)

    async def close(self) -> None:
        await self._drop()
        if self.state not in (DISABLED, UNTRUSTED):
            self.state = CLOSED

    # --- calling --------------------------------------------------------------------------
    async def call(self, tool: str, arguments: dict[str, Any]) -> CallOutcome:
        name = self.config.name
        if not await self.ensure_connected():
            return CallOutcome(
                False,
                f"MCP server {name!r} is not available ({self.error}). "
                "Continue without this tool, or try again later: kcode reconnects on each call.",
            )
        client, timeout = self._client, self.config.tool_timeout_s
        try:
            # asyncio.timeout, not wait_for: no extra task per call (the SDK's own read timeout
            # fires first; this one is the backstop if a transport ignores it).
            async with asyncio.timeout(timeout + 2):
                result = await client.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except TimeoutError:
            return CallOutcome(False, f"{name}/{tool} did not answer within {timeout:g} s")
        except Exception as err:
            from mcp.shared.exceptions import MCPError

            if isinstance(err, MCPError) and err.code != _CONNECTION_CLOSED:
                if err.code == _REQUEST_TIMEOUT:
                    return CallOutcome(False, f"{name}/{tool} did not answer within {timeout:g} s")
                return CallOutcome(False, f"{name}/{tool} failed: {err.message}")
            # The transport is broken (crash mid-call, garbage, connection reset): reconnect next.
            why = describe_error(err)
            await self._drop()
            self._fail(f"connection lost during {tool} ({why})")
            return CallOutcome(
                False,
                f"MCP server {name!r} failed during {tool}: {why}. The server may have crashed; "
                "kcode reconnects on the next call.",
            )
        return render_result(result)

    async def get_prompt(self, prompt: str, arguments: dict[str, str]) -> CallOutcome:
        if not await self.ensure_connected():
            return CallOutcome(False, f"MCP server {self.config.name!r} is not available")
        try:
            result = await asyncio.wait_for(
                self._client.get_prompt(prompt, arguments), self.config.tool_timeout_s
            )
        except Exception as err:
            return CallOutcome(False, f"prompt {prompt} failed: {describe_error(err)}")
        parts = []
        for message in result.messages:
            text = getattr(message.content, "text", None)
            if isinstance(text, str):
                parts.append(text)
        return CallOutcome(True, "\n\n".join(parts))

    async def read_resource(self, uri: str) -> CallOutcome:
        if not await self.ensure_connected():
            return CallOutcome(False, f"MCP server {self.config.name!r} is not available")
        try:
            result = await asyncio.wait_for(
                self._client.read_resource(uri), self.config.tool_timeout_s
            )
        except Exception as err:
            return CallOutcome(False, f"reading {uri} failed: {describe_error(err)}")
        parts = []
        for content in result.contents:
            text = getattr(content, "text", None)
            parts.append(text if isinstance(text, str) else f"[binary content of {uri}]")
        return CallOutcome(True, "\n".join(parts))
