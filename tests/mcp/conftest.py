"""Helpers for the MCP tests: real servers (tests/mcp/servers.py) over stdio and HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp SDK is not installed (pip install 'mcp>=2.3,<3')")

SERVERS = Path(__file__).with_name("servers.py")


def stdio_entry(mode: str, *extra: str, **fields: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(SERVERS), mode, *extra], **fields}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the test MCP server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the test MCP server did not listen on {port} within {timeout} s")


class HttpServer:
    def __init__(self, mode: str, kind: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVERS), mode, f"--{kind}", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, self.proc)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def http_server() -> Iterator[HttpServer]:
    server = HttpServer("basic", "http")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sse_server() -> Iterator[HttpServer]:
    server = HttpServer("basic", "sse")
    yield server
    server.stop()


def live_children() -> list[int]:
    """stdio servers (servers.py) this test process started and that still run (leak checks)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        http = b"--http" in cmdline or b"--sse" in cmdline  # the module's own HTTP servers
        if (
            str(SERVERS).encode() in cmdline
            and not http
            and stat[0] != "Z"
            and int(stat[1]) == os.getpid()
        ):
            out.append(int(entry.name))
    return out
