"""A lean HTTP/1.1 client for the one request kcode makes all the time: POST JSON, stream the reply.

Why not httpx2 for this: its layers (client, auth and redirect handling, transport, pool, h11,
anyio) cost ~3 ms of CPU per streamed chat reply here, on a 2-core machine; with 64 sub-agents
that CPU, not the model, set the wall-clock time. This client does only what a chat request
needs (keep-alive connections, Content-Length and chunked bodies, TLS with the caller's context,
connect and read timeouts) at a fraction of the cost. `HttpTransport` uses it only when no proxy
applies; with a proxy, httpx2 does the work.

Failures are raised as httpx2's own exceptions (ConnectError, ReadTimeout, RemoteProtocolError,
...), so the backend classifies both paths the same way.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
READ_SIZE = 64 * 1024


class _Stale(Exception):
    """A reused keep-alive connection turned out to be closed before any reply byte arrived."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: AsyncIterator[bytes]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    def close(self) -> None:
        self.writer.close()


class Http11Client:
    """One origin (scheme, host, port); idle connections are kept most-recently-used first."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout_s: float,
        connect_timeout_s: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        default_port = 443 if self.https else 80
        host_header = self.host if ":" not in self.host else f"[{self.host}]"
        if self.port != default_port:
            host_header = f"{host_header}:{self.port}"
        self._fixed_headers = "".join(
            f"{name}: {value}\r\n" for name, value in {"Host": host_header, **headers}.items()
        )
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.tls = tls
        self._idle: list[_Connection] = []
        self._generation = 0  # bumped by aclose: a connection busy then is closed, not kept

    @asynccontextmanager
    async def post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> AsyncIterator[Response]:
        """POST `body` and yield the response once its headers arrived; read `body` inside."""
        head = (
            f"POST {path} HTTP/1.1\r\n{self._fixed_headers}"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        while True:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                status, response_headers = await self._send(conn, head + body)
            except _Stale:
                conn.close()
                continue  # the server closed it while idle: the request never reached it
            except BaseException:
                conn.close()
                raise
            break
        done = False
        generation = self._generation
        reader = _BodyReader(conn, response_headers, self.timeout_s)
        try:
            yield Response(status, response_headers, reader.chunks())
            done = reader.finished
        finally:
            if done and reader.reusable and generation == self._generation:
                conn.reused = True
                self._idle.append(conn)
            else:
                conn.close()

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.tls if self.https else None,
                    server_hostname=self.host if self.https else None,
                    limit=MAX_HEADER_BYTES,
                )
        except TimeoutError as err:
            raise _httpx2().ConnectTimeout(
                f"no connection to {self.host}:{self.port} within {self.connect_timeout_s:g}s"
            ) from err
        except (OSError, ssl.SSLError) as err:
            raise _httpx2().ConnectError(str(err) or type(err).__name__) from err
        return _Connection(reader, writer)

    async def _send(self, conn: _Connection, request: bytes) -> tuple[int, dict[str, str]]:
        try:
            async with asyncio.timeout(self.timeout_s):
                conn.writer.write(request)
                await conn.writer.drain()
                head = await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError as err:
            raise _httpx2().ReadTimeout(f"no answer within {self.timeout_s:g}s") from err
        except asyncio.IncompleteReadError as err:
            if conn.reused and not err.partial:
                raise _Stale from err
            raise _httpx2().RemoteProtocolError(
                "Server disconnected without sending a response."
            ) from err
        except asyncio.LimitOverrunError as err:
            raise _httpx2().RemoteProtocolError("the response headers are too long") from err
        except (ConnectionError, OSError) as err:
            if conn.reused:
                raise _Stale from err
            raise _httpx2().ReadError(str(err) or type(err).__name__) from err
        return _parse_head(head)

    async def aclose(self) -> None:
        self._generation += 1
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _httpx2() -> Any:
    """httpx2, for its exception types: imported only when there is an error to raise, so the
    first request of a run does not wait for it (~60 ms)."""
    import httpx2

    return httpx2


def _is_status(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isdigit()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    # isascii: "²".isdigit() is true, and int() refuses it.
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _is_status(parts[1]):
        raise _httpx2().RemoteProtocolError(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _httpx2().RemoteProtocolError(f"malformed response header {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(parts[1]), headers


class _BodyReader:
    """The response body as it arrives: chunked, Content-Length, or until the server closes."""

    def __init__(self, conn: _Connection, headers: dict[str, str], timeout_s: float) -> None:
        self.conn = conn
        self.headers = headers
        self.timeout_s = timeout_s
        self.finished = False
        self.reusable = "close" not in headers.get("connection", "").lower()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                async for piece in self._chunked():
                    yield piece
            elif "content-length" in self.headers:
                async for piece in self._sized(int(self.headers["content-length"])):
                    yield piece
            else:
                self.reusable = False
                async for piece in self._until_close():
                    yield piece
        except TimeoutError as err:
            raise _httpx2().ReadTimeout(f"no data within {self.timeout_s:g}s") from err
        except asyncio.IncompleteReadError as err:
            raise _httpx2().RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ) from err
        except (ValueError, asyncio.LimitOverrunError) as err:
            raise _httpx2().RemoteProtocolError(f"malformed response body: {err}") from err
        except (ConnectionError, OSError) as err:
            raise _httpx2().ReadError(str(err) or type(err).__name__) from err
        self.finished = True

    async def _chunked(self) -> AsyncIterator[bytes]:
        reader = self.conn.reader
        while True:
            async with asyncio.timeout(self.timeout_s):
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailer fields, which we do not need
                    return
                data = await reader.readexactly(size + 2)
            yield data[:-2]

    async def _sized(self, length: int) -> AsyncIterator[bytes]:
        reader = self.conn.reader
        while length > 0:
            async with asyncio.timeout(self.timeout_s):
                data = await reader.read(min(length, READ_SIZE))
            if not data:
                raise asyncio.IncompleteReadError(b"", length)
            length -= len(data)
            yield data

    async def _until_close(self) -> AsyncIterator[bytes]:
        reader = self.conn.reader
        while True:
            async with asyncio.timeout(self.timeout_s):
                data = await reader.read(READ_SIZE)
            if not data:
                return
            yield data


def lean_client_suits(url: str, headers: dict[str, str]) -> bool:
    """Whether this client can make the request exactly as httpx2 would: plain http(s) with no
    proxy, no credentials in the URL (httpx2 turns them into Basic auth), a valid port, and header
    values it can send verbatim. Anything else goes through httpx2."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    try:
        _ = parts.port
    except ValueError:
        return False
    for name, value in headers.items():
        text = name + value
        if "\r" in text or "\n" in text or not text.isascii():
            return False
    return no_proxy_applies(url)


def no_proxy_applies(url: str) -> bool:
    """True when no proxy environment variable (HTTP(S)_PROXY, ALL_PROXY, minus NO_PROXY) covers
    `url`, as httpx2 reads them: then the lean client may go direct."""
    import urllib.request

    parts = urlsplit(url)
    proxies: dict[str, Any] = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return bool(bypass(parts.hostname or "", proxies))
