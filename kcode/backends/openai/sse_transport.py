"""Chat completions over plain HTTP: POST, read the server-sent events, yield plain chunk dicts.

This is the transport `OpenAIBackend` uses by default. It needs only `httpx2` (~60 ms to import),
where `import openai` costs 1-2.5 s on a loaded machine: that is the difference between the first
request leaving at once and leaving seconds after launch. Direct connections (no proxy, the common
case) skip even httpx2's layers for chat requests: `http11.Http11Client` streams a reply for about
a quarter of the CPU, which is what limits a wide fan-out of sub-agents on a small machine.

Every transport reports failures in the same small vocabulary, so the backend classifies them in
one place: `StatusError` (the server answered with an error status), `StreamErrorEvent` (an error
object inside the stream), `MalformedStream` (a chunk that is not JSON) and httpx2's own
`TransportError` family (could not connect, timed out, connection dropped).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from kcode.safety.json_input import loads_json

if TYPE_CHECKING:
    import ssl

    import httpx2

    from kcode.backends.openai.http11 import Http11Client

Chunk = dict[str, Any]


class StatusError(Exception):
    """The server answered with an HTTP error status. `error` is the body's error object."""

    def __init__(
        self, status: int, headers: Mapping[str, str], error: dict[str, Any], text: str = ""
    ) -> None:
        self.status = status
        self.headers = headers
        self.error = error
        self.message = str(error.get("message") or text.strip()[:200] or f"HTTP {status}")
        super().__init__(f"HTTP {status}: {self.message}")


class StreamErrorEvent(Exception):
    """The server reported an error inside an otherwise healthy stream."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# A chunk of a chat stream is a few hundred bytes; one this big is not a chat stream.
MAX_EVENT_CHARS = 16 * 1024 * 1024


class MalformedStream(Exception):
    """An event's data was neither JSON nor [DONE]: a proxy mangled the stream, or it is not SSE."""


def error_object(body: Any) -> dict[str, Any]:
    """The `{"message", "type", "code"}` object of an OpenAI-style error body, or {}."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        return inner if isinstance(inner, dict) else {"message": str(inner)}
    return {}


class SSEDecoder:
    """Lines in, events out (the WHATWG server-sent events rules that chat streams use).

    `feed` takes one line without its line ending and returns `(event, data)` when a blank line
    completes an event. Comment lines (`: keep-alive`) are skipped; several `data:` lines make one
    event joined by newlines; `id` and `retry` carry nothing we need. (httpx2's `EventSource`
    refuses any response not labelled exactly text/event-stream, which the SDK reads anyway.)
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self._size = 0
        self._event = ""

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = (self._event, "\n".join(self._data))
            self._data, self._size, self._event = [], 0, ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._size += len(value)
            if self._size > MAX_EVENT_CHARS:
                raise MalformedStream(f"an event of over {MAX_EVENT_CHARS:,} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def decode_event(event: str, data: str) -> Chunk | None:
    """One event's chunk dict, or None for the `[DONE]` that ends the stream."""
    if data.strip() == "[DONE]":
        return None
    try:
        chunk = loads_json(data)
    except ValueError:
        raise MalformedStream(f"the stream carried a non-JSON event: {data[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise MalformedStream(f"the stream carried a non-object event: {data[:80]!r}")
    if event == "error" or chunk.get("error"):
        message = error_object(chunk).get("message") or "the server reported a stream error"
        raise StreamErrorEvent(str(message))
    return chunk


class LineSplitter:
    """Bytes in, lines out (without their endings), as SSE defines them: a line ends at CRLF, LF
    or a lone CR, and the text is UTF-8. Cheaper than httpx2's text and line layers, which cost
    two more async generators and a decoder per network read."""

    def __init__(self) -> None:
        # The unfinished line, in pieces: joined once its end arrives, not on every read (a long
        # line re-joined per 64 KB read cost quadratic time: 22 s of CPU for 40 MB).
        self._pending: list[bytes] = []
        self._pending_size = 0

    def feed(self, data: bytes) -> list[str]:
        held_cr = bool(self._pending) and self._pending[-1].endswith(b"\r")
        if b"\n" not in data and b"\r" not in data and not held_cr:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size > MAX_EVENT_CHARS:
                raise MalformedStream(f"a line of over {MAX_EVENT_CHARS:,} bytes")
            return []
        if self._pending:
            data = b"".join([*self._pending, data])
        held = b""
        if b"\r" in data:
            if data.endswith(b"\r"):  # perhaps the first half of a CRLF split across reads
                data, held = data[:-1], b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *complete, rest = data.split(b"\n")
        rest += held
        self._pending, self._pending_size = ([rest], len(rest)) if rest else ([], 0)
        return [line.decode("utf-8", "replace") for line in complete]


def _raise_status(status: int, headers: Mapping[str, str], raw_body: bytes) -> NoReturn:
    raw = raw_body.decode("utf-8", "replace")
    try:
        parsed: Any = loads_json(raw)
    except ValueError:
        parsed = None
    raise StatusError(status, headers, error_object(parsed), raw)


class HttpTransport:
    """POST /chat/completions with `stream: true`, each request on a leased httpx2 client."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        extra_headers: Mapping[str, str] | None = None,
        user_agent: str = "kcode",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"User-Agent": user_agent, **(extra_headers or {})}
        if api_key:  # local servers take no key; sending "Bearer " would only confuse them
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout_s = timeout_s
        self._tls: ssl.SSLContext | None = None  # built once, shared by every client
        self._idle: list[httpx2.AsyncClient] = []
        self._generation = 0  # bumped by aclose: a client leased before it is closed on return
        self._lean: Http11Client | None = None
        self._lean_checked = False

    def _new_client(self) -> httpx2.AsyncClient:
        import httpx2

        if self._tls is None:
            self._tls = self._tls_context()
        return httpx2.AsyncClient(
            headers=self._headers,
            timeout=httpx2.Timeout(self._timeout_s, connect=min(self._timeout_s, 10.0)),
            verify=self._tls,
            # One request at a time per client (see `_lease`): a second connection is never needed.
            limits=httpx2.Limits(max_connections=1, max_keepalive_connections=1),
        )

    @contextlib.asynccontextmanager
    async def _lease(self) -> AsyncIterator[httpx2.AsyncClient]:
        """A client of our own for one request, reused afterwards (most recently used first).

        Why not one shared client: httpx2's pool checks every open connection on each request and
        on each response end, through several layers of calls per connection; with 64 agents
        streaming that was ~2.5 ms of CPU per model call, the largest part of kcode's overhead.
        Clients that each hold one keep-alive connection make that check O(1): the free list
        here is the pool. The number of clients grows to the peak number of requests in flight.
        """
        client = self._idle.pop() if self._idle else self._new_client()
        generation = self._generation
        try:
            yield client
        finally:
            if generation == self._generation:
                self._idle.append(client)
            else:
                await client.aclose()

    def _tls_context(self) -> ssl.SSLContext:
        """The system trust store for https (httpx2's default context, built once and shared by
        every client). A plain-http server never needs TLS, and loading the trust store costs
        50-250 ms before the first request, so it gets a context that verifies as strictly but
        trusts no one: any TLS it ever meets fails, closed."""
        import ssl

        if urlsplit(self.base_url).scheme != "http":
            import httpx2

            return httpx2.create_ssl_context()
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    def _lean_client(self) -> Http11Client | None:
        """The lean HTTP/1.1 client, when it suits the URL and headers (decided once)."""
        if not self._lean_checked:
            self._lean_checked = True
            from kcode.backends.openai.http11 import Http11Client, lean_client_suits

            url = self.base_url
            if lean_client_suits(url, self._headers):
                self._tls = self._tls or self._tls_context()
                self._lean = Http11Client(
                    url,
                    self._headers,
                    timeout_s=self._timeout_s,
                    connect_timeout_s=min(self._timeout_s, 10.0),
                    tls=self._tls,
                )
        return self._lean

    async def stream_chunks(self, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        lean = self._lean_client()
        pieces_of = self._stream_httpx(body) if lean is None else self._stream_lean(lean, body)
        decoder = SSEDecoder()
        lines = LineSplitter()
        # The read timeout restarts with every byte, so a server that sends only `: keep-alive`
        # comments would hold the run for ever (a -p run in CI too): no event within the
        # timeout is a stalled stream, which the backend retries like a timeout.
        last_event = time.monotonic()
        async with contextlib.aclosing(pieces_of) as pieces:
            async for piece in pieces:
                for line in lines.feed(piece):
                    event = decoder.feed(line)
                    if event is None:
                        continue
                    last_event = time.monotonic()
                    chunk = decode_event(*event)
                    if chunk is None:
                        # Read the (empty) rest of the body after [DONE]: a connection whose
                        # body was left unread is closed, so every request would open a new one.
                        async for _ in pieces:
                            pass
                        return
                    yield chunk
                if time.monotonic() - last_event > self._timeout_s:
                    raise MalformedStream(
                        f"no data for {self._timeout_s:g}s, only keep-alive comments"
                    )

    async def _stream_lean(
        self, lean: Http11Client, body: dict[str, Any]
    ) -> AsyncGenerator[bytes, None]:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        path = f"{urlsplit(self.base_url).path}/chat/completions"
        headers = {"Accept": "text/event-stream"}
        async with lean.post(path, data.encode("utf-8"), headers) as response:
            if response.status >= 400:
                raw = b"".join([piece async for piece in response.body])
                _raise_status(response.status, response.headers, raw)
            async for piece in response.body:
                yield piece

    async def _stream_httpx(self, body: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        url = f"{self.base_url}/chat/completions"
        headers = {"Accept": "text/event-stream"}
        async with (
            self._lease() as client,
            client.stream("POST", url, json=body, headers=headers) as response,
        ):
            if response.status_code >= 400:
                _raise_status(response.status_code, response.headers, await response.aread())
            async for piece in response.aiter_bytes():
                yield piece

    async def list_model_ids(self, timeout_s: float) -> list[str]:
        async with self._lease() as client:
            response = await client.get(f"{self.base_url}/models", timeout=timeout_s)
        response.raise_for_status()
        listing = loads_json(response.content)
        data = (listing.get("data") if isinstance(listing, dict) else None) or []
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def aclose(self) -> None:
        """Close every idle client now; a client still streaming closes when its request ends."""
        self._generation += 1
        if self._lean is not None:
            await self._lean.aclose()
        idle, self._idle = self._idle, []
        for client in idle:
            await client.aclose()
