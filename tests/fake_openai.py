"""A fake OpenAI-compatible chat completions server over real HTTP, for tests and benchmarks.

Speaks the streaming wire format (SSE `chat.completion.chunk` objects, tool-call deltas,
`reasoning_content`, a final usage chunk, `data: [DONE]`), non-streaming replies and `GET /v1/models`,
and injects faults: HTTP errors with Retry-After, connection resets, streams cut mid-way.

    with FakeOpenAIServer([Reply.text("hi"), Reply.tool_call("grep", {"pattern": "x"})]) as srv:
        backend = OpenAIBackend(srv.base_url, "key", "fake-model")

A responder is a list of replies served in order, or a callable `(request_json) -> Reply`;
`ByConversation` routes parallel agents by their first user message. From another process:

    python -m tests.fake_openai --script replies.json [--port N]   # prints the base URL on stdout

The script is a JSON list of replies (fields of `Reply`, "text" for the answer), or an object
{"replies": [...], "default": {...}, "models": [...]}, or {"scripts": {"prefix": [...], "*": [...]}}
to route by the first user message like `ByConversation`.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fake_openai_checks import tool_pairing_problem
from tests.fake_openai_replies import ByConversation, Reply, _next_id, reply_from_json

__all__ = ["ByConversation", "FakeOpenAIServer", "RecordedRequest", "Reply"]

# Every server made in this process, for the check in tests/conftest.py (the list is emptied there).
CREATED: list[FakeOpenAIServer] = []

Responder = Sequence[Reply | dict[str, Any]] | Callable[[dict[str, Any]], Reply | dict[str, Any]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any] | None
    headers: dict[str, str]  # lower-cased names, without authorization
    arrived: float  # time.monotonic()
    in_flight: int  # chat requests in flight at arrival, this one included
    reply_index: int | None = None
    authorized: bool = False  # an Authorization header was present
    raw: bytes = b""  # the body exactly as it arrived (prompt-cache tests compare bytes)
    events_sent: int = 0  # SSE events written before the stream ended or the client left
    client_left: bool = False  # the client closed the connection before the stream's end


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    next_reply: int = 0
    connections: set[socket.socket] = field(default_factory=set)


class FakeOpenAIServer:
    def __init__(
        self,
        responder: Responder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("fake-model",),
        default: Reply | None = None,
        require_api_key: str | None = None,
        simulate_cache: bool = False,
        check_tool_pairing: bool = True,
    ) -> None:
        self._responder: Responder = responder if responder is not None else []
        # Refuse (HTTP 400) a request whose tool calls and results do not pair up, as OpenAI does
        # (tests/fake_openai_checks.py); every refusal is kept in `violations` for the test to see.
        self.check_tool_pairing = check_tool_pairing
        self.violations: list[str] = []
        self.violations_expected = False  # a test that sends broken histories on purpose sets it
        CREATED.append(self)  # tests/conftest.py fails a test whose servers saw a violation
        self._default = default
        self.models = list(models)
        self.require_api_key = require_api_key
        # Like a provider's prompt cache: a request's cached_tokens is the longest byte prefix it
        # shares with an earlier request's prompt, at 4 bytes a token (tests/fake_openai.py only).
        self.simulate_cache = simulate_cache
        self._prompts: list[bytes] = []
        self._state = _State()
        self._httpd = _Server((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        with self._state.lock:
            open_connections = list(self._state.connections)
        for conn in open_connections:  # idle keep-alive connections would linger otherwise
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests look at ----------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Chat completion requests in arrival order (GET /models is in `all_requests`)."""
        with self._state.lock:
            return [r for r in self._state.requests if r.path.endswith("/chat/completions")]

    @property
    def all_requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def in_flight(self) -> int:
        """Chat requests being answered right now (a responder may use it to play rate limiter)."""
        with self._state.lock:
            return self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        with self._state.lock:
            return self._state.max_in_flight

    # --- internals used by the handler -----------------------------------------------------------
    def _cached_tokens(self, raw: bytes) -> int | None:
        if not self.simulate_cache:
            return None
        from kcode.agents.prompt_cache import common_prefix, prompt_bytes

        prompt = prompt_bytes(raw)
        with self._state.lock:
            earlier = list(self._prompts)
            self._prompts.append(prompt)
        best = max((common_prefix(prompt, p) for p in earlier), default=0)
        return best // 4

    def _choose_reply(self, body: dict[str, Any]) -> tuple[int, Reply]:
        if callable(self._responder):
            with self._state.lock:
                index = self._state.next_reply
                self._state.next_reply += 1
            return index, _as_reply(self._responder(body))
        with self._state.lock:
            index = self._state.next_reply
            self._state.next_reply += 1
        if index < len(self._responder):
            return index, _as_reply(self._responder[index])
        if self._default is not None:
            return index, self._default
        total = len(self._responder)
        return index, Reply.fault(
            400, message=f"fake OpenAI server: script exhausted, no reply #{index + 1} of {total}"
        )


def _as_reply(value: Reply | dict[str, Any]) -> Reply:
    return value if isinstance(value, Reply) else reply_from_json(value)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 64 agents connecting at once must not overflow the accept backlog
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-reply (cancelled turns, fault tests) are expected: no traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Send each SSE event at once, as real servers do: with Nagle's algorithm on, an event written
    # while the previous one is unacknowledged waits for the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    fake: FakeOpenAIServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    def setup(self) -> None:
        super().setup()
        with self.fake._state.lock:
            self.fake._state.connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._state.lock:
            self.fake._state.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    # --- routing ---------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in self.fake.models
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error_json(404, f"no route {self.path}", "not_found")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._record(None)
            self._send_error_json(400, "request body is not JSON", "invalid_request_error")
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._record(body)
            self._send_error_json(404, f"no route {self.path}", "not_found")
            return
        state = self.fake._state
        with state.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        self._counted_in_flight = True
        try:
            record = self._record(body)
            record.raw = raw
            self._record_now = record
            wanted_key = self.fake.require_api_key
            if (
                wanted_key is not None
                and self.headers.get("Authorization") != f"Bearer {wanted_key}"
            ):
                self._send_error_json(401, "Incorrect API key provided", "invalid_api_key")
                return
            problem = tool_pairing_problem(body.get("messages"))
            if problem is not None and self.fake.check_tool_pairing:
                with state.lock:
                    self.fake.violations.append(problem)
                sys.stderr.write(f"fake OpenAI server: refused a request: {problem}\n")
                self._send_error_json(
                    400, f"fake OpenAI server: {problem}", "invalid_request_error"
                )
                return
            index, reply = self.fake._choose_reply(body)
            record.reply_index = index
            self._serve_reply(body, reply, self.fake._cached_tokens(raw))
        finally:
            self._leave_in_flight()

    def _leave_in_flight(self) -> None:
        """Called before the last bytes go out, so a client that saw the end of its reply and sent
        the next request can never find this one still counted: max_in_flight is exact."""
        if getattr(self, "_counted_in_flight", False):
            self._counted_in_flight = False
            with self.fake._state.lock:
                self.fake._state.in_flight -= 1

    def _record(self, body: dict[str, Any] | None) -> RecordedRequest:
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        state = self.fake._state
        with state.lock:
            record = RecordedRequest(
                method=self.command,
                path=self.path,
                body=body,
                headers=headers,
                arrived=time.monotonic(),
                in_flight=state.in_flight,
                authorized="Authorization" in self.headers,
            )
            state.requests.append(record)
        return record

    # --- replies ---------------------------------------------------------------------------------
    def _serve_reply(self, body: dict[str, Any], reply: Reply, cached: int | None = None) -> None:
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.reset:
            self._reset_connection()
            return
        if reply.status is not None and reply.status >= 400:
            headers = {}
            if reply.retry_after is not None:
                headers["Retry-After"] = f"{reply.retry_after:g}"
            code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
            self._send_error_json(
                reply.status,
                reply.message or f"fake fault {reply.status}",
                code.get(reply.status, "server_error"),
                headers,
            )
            return
        model = str(body.get("model", "fake-model"))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(reply, model, body, include_usage, cached)
        else:
            self._send_json(200, reply.completion(model, body))

    def _stream(
        self,
        reply: Reply,
        model: str,
        body: dict[str, Any],
        include_usage: bool,
        cached: int | None = None,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = _sse_events(reply, model, body, include_usage, cached)
        record = self._record_now
        for sent, event in enumerate(events):
            if reply.cut_after is not None and sent >= reply.cut_after:
                self._cut_connection()
                return
            if sent and reply.chunk_delay_s:
                time.sleep(reply.chunk_delay_s)
            if reply.garbage is not None and sent == reply.garbage_after:
                self._write_chunk(b"data: " + reply.garbage.encode() + b"\n\n")
            if sent == len(events) - 1:
                self._leave_in_flight()
            try:
                self._write_chunk(event)
            except OSError:  # the client went away; nothing more to do
                self.close_connection = True
                record.client_left = True
                return
            record.events_sent = sent + 1
        self._write_chunk(b"")  # end of the chunked body

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _cut_connection(self) -> None:
        """Drop the connection mid-body: no [DONE], no terminating chunk."""
        self._leave_in_flight()
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _reset_connection(self) -> None:
        """Close with a TCP RST and no response at all, as a crashed proxy would."""
        self._leave_in_flight()
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._leave_in_flight()
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error_json(
        self, status: int, message: str, code: str, headers: dict[str, str] | None = None
    ) -> None:
        error = {"message": message, "type": "fake_error", "param": None, "code": code}
        self._send_json(status, {"error": error}, headers)


def _sse_events(
    reply: Reply,
    model: str,
    body: dict[str, Any],
    include_usage: bool,
    cached_tokens: int | None = None,
) -> list[bytes]:
    """The reply's SSE events, the same bytes `Reply.stream_chunks` would give, but encoded once
    per reply and model: later requests only put in their own id, time and usage. (The server
    shares the machine's cores with the client the benchmarks measure; it should cost little.)"""
    key = (id(reply), model, include_usage)
    cached = _EVENT_TEMPLATES.get(key)
    if cached is None or cached[0] is not reply:
        chunks = reply.stream_chunks(model, body, include_usage, cached_tokens)
        events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
        _EVENT_TEMPLATES[key] = (reply, events, str(chunks[0]["id"]), int(chunks[0]["created"]))
        return [*events, _DONE]
    _, template, template_id, template_created = cached
    reply_id = f"chatcmpl-fake-{_next_id()}"
    swaps = [
        (f'"id": "{template_id}"', f'"id": "{reply_id}"'),
        (f'"created": {template_created},', f'"created": {int(time.time())},'),
        (f'"id": "call_{template_id[-6:]}_', f'"id": "call_{reply_id[-6:]}_'),
    ]
    events = []
    for event in template:
        for old, new in swaps:
            event = event.replace(old.encode(), new.encode())
        events.append(event)
    if include_usage:
        head, _, _ = events[-1].rpartition(b'"usage": ')
        usage = json.dumps(reply._usage(body, cached_tokens)).encode()
        events[-1] = head + b'"usage": ' + usage + b"}\n\n"
    return [*events, _DONE]


_DONE = b"data: [DONE]\n\n"
# (reply id, model, include_usage) -> (reply, events, their reply id, their created time)
_EVENT_TEMPLATES: dict[tuple[int, str, bool], tuple[Reply, list[bytes], str, int]] = {}


def _load_script(path: Path) -> tuple[Responder, Reply | None, list[str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return [reply_from_json(r) for r in data], None, ["fake-model"]
    if not isinstance(data, dict):
        raise ValueError("the script must be a JSON list of replies or an object")
    default = reply_from_json(data["default"]) if "default" in data else None
    models = list(data.get("models", ["fake-model"]))
    if "scripts" in data:
        scripts = {k: [reply_from_json(r) for r in v] for k, v in data["scripts"].items()}
        return ByConversation(scripts, default=default), None, models
    return [reply_from_json(r) for r in data.get("replies", [])], default, models


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve scripted OpenAI chat replies over HTTP.")
    parser.add_argument("--script", type=Path, required=True, help="JSON list of replies")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--simulate-cache", action="store_true", help="report cached_tokens from shared prefixes"
    )
    args = parser.parse_args(argv)
    try:
        responder, default, models = _load_script(args.script)
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"fake_openai: cannot load {args.script}: {err}", file=sys.stderr)
        return 2
    server = FakeOpenAIServer(
        responder,
        host=args.host,
        port=args.port,
        models=models,
        default=default,
        simulate_cache=args.simulate_cache,
    )
    server.start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
