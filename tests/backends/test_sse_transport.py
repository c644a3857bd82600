"""Odd but legal event streams, read the same way by our SSE reader and by the openai SDK.

A tiny HTTP server on 127.0.0.1 answers every POST with a fixed raw body, so the tests control the
bytes exactly: comments, CRLF line endings, multi-line data, error events, junk after [DONE].
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcode.backends.base import (
    BackendError,
    BackendOptions,
    Delta,
    FinishChunk,
    ReasoningChunk,
    TextChunk,
    UsageChunk,
)
from kcode.backends.openai.api import OpenAIBackend
from kcode.backends.openai.sse_transport import (
    MAX_EVENT_CHARS,
    LineSplitter,
    MalformedStream,
    SSEDecoder,
)
from kcode.messages import Message
from tests.fake_openai import FakeOpenAIServer, Reply

REPO = Path(__file__).resolve().parents[2]


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    return json.dumps({**body, **extra})


class RawServer:
    """Answers every POST with `body`, byte for byte."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.body = b""


class SSEHandler(BaseHTTPRequestHandler):
    """Reads the request, answers 200 with an event-stream header; subclasses write the body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def start_stream(self, length: int | None = None) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A loopback HTTP server with `handler`; yields its /v1 base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    raw: RawServer | None = None

    class Handler(SSEHandler):
        def do_POST(self) -> None:
            assert raw is not None
            self.start_stream(len(raw.body))
            self.wfile.write(raw.body)

    with serving(Handler) as url:
        raw = RawServer(url)
        yield raw


async def run(server: RawServer, transport: str, max_retries: int = 0) -> list[Delta]:
    backend = OpenAIBackend(server.url, "sk-x", "m", max_retries=max_retries, transport=transport)
    try:
        stream = backend.stream([Message.user("hi")], [], BackendOptions())
        return [delta async for delta in stream]
    finally:
        await backend.aclose()


BOTH = pytest.mark.parametrize("transport", ["http", "sdk"])


@BOTH
async def test_comments_crlf_multiline_data_and_junk_after_done(
    raw_server: RawServer, transport: str
) -> None:
    first = chunk({"role": "assistant", "reasoning_content": "hmm"})
    split = chunk({"content": "Hello, world"}).replace(', "delta"', '\r\ndata: , "delta"', 1)
    raw_server.body = (
        ": keep-alive\r\n\r\n"
        f"data: {first}\r\n\r\n"
        f"data: {split}\r\n\r\n"
        f"data:{chunk({}, 'stop', usage={'prompt_tokens': 5, 'completion_tokens': 2})}\n\n"
        "data: [DONE]\n\n"
        "data: this is not JSON and comes after the end\n\n"
    ).encode()
    deltas = await run(raw_server, transport)
    assert deltas == [
        ReasoningChunk("hmm"),
        TextChunk("Hello, world"),
        UsageChunk(5, 2),
        FinishChunk("stop"),
    ]


@BOTH
async def test_an_error_event_inside_the_stream_fails_with_its_message(
    raw_server: RawServer, transport: str
) -> None:
    error = {"error": {"message": "the upstream model crashed", "type": "server_error"}}
    raw_server.body = (
        f"data: {chunk({'content': 'par'})}\n\nevent: error\ndata: {json.dumps(error)}\n\n"
    ).encode()
    with pytest.raises(BackendError) as info:
        await run(raw_server, transport)
    assert info.value.kind == "server"
    assert "the upstream model crashed" in info.value.message


@BOTH
async def test_a_non_json_event_is_a_server_error_not_a_crash(
    raw_server: RawServer, transport: str
) -> None:
    raw_server.body = b"data: <html>502 Bad Gateway</html>\n\n"
    with pytest.raises(BackendError) as info:
        await run(raw_server, transport)
    assert info.value.kind == "server"
    assert "JSON" in info.value.message


@BOTH
async def test_done_without_a_finish_reason_counts_as_a_cut_stream(
    raw_server: RawServer, transport: str
) -> None:
    raw_server.body = f"data: {chunk({'content': 'half an ans'})}\n\ndata: [DONE]\n\n".encode()
    with pytest.raises(BackendError) as info:
        await run(raw_server, transport, max_retries=1)
    assert info.value.kind == "server"
    assert "2 attempts" in info.value.message


def test_unknown_transport_is_a_config_error() -> None:
    with pytest.raises(BackendError) as info:
        OpenAIBackend("http://127.0.0.1:9/v1", "k", "m", transport="grpc")
    assert info.value.kind == "config"
    assert "http or sdk" in info.value.message


def test_decoder_joins_data_lines_and_skips_comments_and_other_fields() -> None:
    decoder = SSEDecoder()
    lines = [": ping", "id: 7", "retry: 100", "event: delta", "data: a", "data:b", "data:  c", ""]
    assert [decoder.feed(line) for line in lines][-1] == ("delta", "a\nb\n c")
    assert decoder.feed("") is None  # a blank line with nothing pending is no event


def test_the_default_transport_never_imports_the_sdk() -> None:
    script = (
        "import asyncio, sys\n"
        "from kcode.backends.openai.api import OpenAIBackend\n"
        "from kcode.backends.base import BackendOptions\n"
        "from kcode.messages import Message\n"
        "async def main():\n"
        "    b = OpenAIBackend(sys.argv[1], 'k', 'm')\n"
        "    text = [d async for d in b.stream([Message.user('hi')], [], BackendOptions())]\n"
        "    await b.aclose()\n"
        "    print(len(text), 'openai' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    with FakeOpenAIServer([Reply.text("fine")]) as server:
        out = subprocess.run(
            [sys.executable, "-c", script, server.base_url],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "KCODE_OPENAI_TRANSPORT": ""},
            check=True,
        )
    count, imported = out.stdout.split()
    assert int(count) >= 2
    assert imported == "False"


@given(
    st.binary(max_size=60).map(lambda b: bytes(b"ab\r\n"[x % 4] for x in b)),
    st.lists(st.integers(1, 7), max_size=30),
)
def test_lines_are_the_same_however_the_reads_cut_them(data: bytes, cuts: list[int]) -> None:
    """CRLF, LF and lone CR end a line (a CR at a read's end may be half a CRLF); the pieces of
    an unfinished line are held, not re-joined per read."""
    expected = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")[:-1]
    splitter, lines, start = LineSplitter(), [], 0
    for size in [*cuts, len(data)]:
        lines += splitter.feed(data[start : start + size])
        start += size
    lines += splitter.feed(b"x\n")  # ends whatever line is open
    assert lines[:-1] == [line.decode() for line in expected]


def test_a_line_or_event_too_big_for_a_chat_stream_is_malformed() -> None:
    splitter = LineSplitter()
    piece = b"x" * (1 << 20)
    with pytest.raises(MalformedStream):
        for _ in range(MAX_EVENT_CHARS // len(piece) + 2):
            splitter.feed(piece)
    decoder = SSEDecoder()
    with pytest.raises(MalformedStream):
        for _ in range(MAX_EVENT_CHARS // len(piece) + 2):
            decoder.feed("data: " + "y" * len(piece))


async def test_a_stream_of_only_keep_alive_comments_is_a_stall_not_a_hang() -> None:
    """Every comment restarts the read timeout; a server that sends nothing else would hold a
    `-p` run for ever. No event within the timeout is a stalled stream: a retryable server
    error, then a clear failure."""
    import asyncio
    import time

    stop = threading.Event()

    class Drip(SSEHandler):
        def do_POST(self) -> None:
            self.start_stream()
            while not stop.is_set():
                try:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)

    with serving(Drip) as url:
        backend = OpenAIBackend(url, "sk-x", "m", max_retries=0, timeout_s=0.5)
        try:
            with pytest.raises(BackendError) as err:
                stream = backend.stream([Message.user("hi")], [], BackendOptions())
                await asyncio.wait_for(anext(stream), timeout=30)  # the bound: never reached
            assert "keep-alive" in err.value.message
        finally:
            stop.set()
            await backend.aclose()
