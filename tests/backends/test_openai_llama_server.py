"""The OpenAI backend against a real third-party server: llama-cpp-python's OpenAI-compatible
server (`python -m llama_cpp.server`) on 127.0.0.1, serving the tiny random-weight GGUF and the
real SmolLM2-135M-Instruct (the bundled model: a real BPE vocab and the GGUF's own chat template).

The tiny model's answers are noise, so the shared tests assert what does not depend on the weights: text streams and
the reply ends (this server sends no usage in streams), and a forced tool call (the server constrains it with its own grammar) comes back
as one call with parseable arguments that follow the tool's schema.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcode.backends.base import (
    BackendOptions,
    Delta,
    FinishChunk,
    TextChunk,
    ToolCallChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.backends.openai.api import OpenAIBackend
from kcode.messages import Message

from .real_models import smollm2
from .tiny_gguf import write_llama_gguf

pytestmark = [
    pytest.mark.llama,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("fastapi") is None
        or importlib.util.find_spec("uvicorn") is None
        or importlib.util.find_spec("sse_starlette") is None,
        reason="llama-cpp-python's server cannot be imported: pip install 'kcode[local]' "
        "(llama-cpp-python[server])",
    ),
]

MODE_TOOL = ToolSpec(
    "set_mode",
    "Switch the mode",
    {
        "type": "object",
        "properties": {"mode": {"enum": ["fast", "careful"]}, "verbose": {"type": "boolean"}},
        "required": ["mode", "verbose"],
    },
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"llama_cpp.server did not answer within 90 s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module", params=["tiny", "smollm2"])
def llama_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("llama-server")
    model = write_llama_gguf(folder / "tiny.gguf") if request.param == "tiny" else smollm2()
    port = free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_serving(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def collect(
    url: str, tools: list[ToolSpec], options: BackendOptions
) -> tuple[OpenAIBackend, list[Delta]]:
    backend = OpenAIBackend(url, "none", "tiny", max_retries=1)
    messages = [Message.system("You are a test."), Message.user("Which mode?")]
    try:
        deltas = [d async for d in backend.stream(messages, tools, options)]
    finally:
        await backend.aclose()
    return backend, deltas


async def test_chat_streams_text_and_reports_usage(llama_server: str) -> None:
    _, deltas = await collect(llama_server, [], BackendOptions(max_tokens=8, temperature=1.0))
    assert any(isinstance(d, TextChunk) and d.text for d in deltas)
    # This server sends no usage in streams (it ignores stream_options); the reply still ends.
    assert not any(isinstance(d, UsageChunk) and d.completion_tokens > 8 for d in deltas)
    assert isinstance(deltas[-1], FinishChunk) and deltas[-1].reason in ("stop", "length")


async def test_forced_tool_call_comes_back_as_one_schema_shaped_call(llama_server: str) -> None:
    options = BackendOptions(max_tokens=200, temperature=1.0, tool_choice="set_mode")
    _, deltas = await collect(llama_server, [MODE_TOOL], options)
    pieces = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert {p.index for p in pieces} == {0} and {p.name for p in pieces} - {None} == {"set_mode"}
    arguments = json.loads("".join(p.arguments for p in pieces))
    assert arguments["mode"] in ("fast", "careful") and isinstance(arguments["verbose"], bool)
    assert isinstance(deltas[-1], FinishChunk)


async def test_a_real_model_answers_without_turn_markers(
    llama_server: str, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["llama_server"] == "tiny":
        pytest.skip("the tiny model's weights are random: its text means nothing")
    backend = OpenAIBackend(llama_server, "none", "smollm2", max_retries=1)
    messages = [Message.system("You are brief."), Message.user("Say hello.")]
    try:
        options = BackendOptions(max_tokens=24, temperature=0.0)
        deltas = [d async for d in backend.stream(messages, [], options)]
    finally:
        await backend.aclose()
    text = "".join(d.text for d in deltas if isinstance(d, TextChunk))
    assert text.strip() and "<|im_end|>" not in text and "<|im_start|>" not in text
