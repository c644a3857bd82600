"""The lean HTTP/1.1 path of the chat transport: line splitting, keep-alive reuse, a connection the
server closed while idle, and the fallback to httpx2 when a proxy applies."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kcode.backends.openai.http11 import lean_client_suits, no_proxy_applies
from kcode.backends.openai.sse_transport import HttpTransport, LineSplitter
from tests.fake_openai import FakeOpenAIServer, Reply


def test_lines_end_at_crlf_lf_or_cr_even_split_across_reads() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"data: a\r") == []
    assert splitter.feed(b"\ndata: b\n\rdata: \xc3") == ["data: a", "data: b", ""]
    assert splitter.feed(b"\xa9\r\n\r\n") == ["data: \u00e9", ""]


@pytest.fixture
def closing_server() -> Iterator[tuple[str, list[int]]]:
    """Answers each request on a connection, then closes it without saying so (no
    `Connection: close`): the client finds out only when it reuses the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []
    body = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    body += b"data: [DONE]\n\n"

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                conn.settimeout(10)  # a client that stalls must not hang this thread forever
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:  # the client left mid-request: recv would return b"" forever
                        return
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    rest += chunk
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", accepted
    finally:
        listener.close()


async def test_a_connection_closed_while_idle_is_replaced_not_reported(
    closing_server: tuple[str, list[int]],
) -> None:
    url, accepted = closing_server
    transport = HttpTransport(url, "key", timeout_s=10)
    try:
        for _ in range(3):
            chunks = [c async for c in transport.stream_chunks({"model": "m"})]
            assert chunks[0]["choices"][0]["delta"]["content"] == "hi"
    finally:
        await transport.aclose()
    assert len(accepted) == 3


async def test_keep_alive_connections_are_reused() -> None:
    with FakeOpenAIServer(default=Reply.text("hello")) as server:
        transport = HttpTransport(server.base_url, "key", timeout_s=10)
        try:
            for _ in range(4):
                texts = [
                    c["choices"][0]["delta"].get("content", "")
                    async for c in transport.stream_chunks({"model": "m", "stream": True})
                    if c.get("choices")
                ]
                assert "".join(texts) == "hello"
            assert len(server._state.connections) == 1  # all four on one connection
        finally:
            await transport.aclose()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_a_proxy_in_the_environment_sends_requests_through_httpx2(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    monkeypatch = no_proxy_env
    assert no_proxy_applies("http://127.0.0.1:8080/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert no_proxy_applies("http://127.0.0.1:8080/v1")
    assert not no_proxy_applies("https://api.example.com/v1")
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    assert no_proxy_applies("https://api.example.com/v1")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.example:3128")
    assert not no_proxy_applies("http://127.0.0.1:8080/v1")
    transport = HttpTransport("http://127.0.0.1:8080/v1", "key", timeout_s=10)
    assert transport._lean_client() is None


def test_credentials_in_the_url_or_odd_headers_go_through_httpx2(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    assert lean_client_suits("http://127.0.0.1:8080/v1", {"Authorization": "Bearer k"})
    assert not lean_client_suits("http://user:pw@127.0.0.1:8080/v1", {})
    assert not lean_client_suits("http://127.0.0.1:8080/v1", {"X-Team": "\u00e9quipe"})
    assert not lean_client_suits("http://127.0.0.1:8080/v1", {"X-A": "a\r\nX-B: b"})
    assert not lean_client_suits("unix:///tmp/sock", {})
