"""The fake OpenAI server itself: wire format, routing, concurrency and the CLI mode."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kcode.backends.base import BackendOptions, TextChunk
from kcode.backends.openai.api import OpenAIBackend
from kcode.messages import Message
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply
from tests.fake_openai_replies import reply_from_json

REPO_ROOT = Path(__file__).resolve().parent.parent


def post(base_url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def sse_payloads(raw: bytes) -> list[str]:
    return [
        line[len("data: ") :] for line in raw.decode().splitlines() if line.startswith("data: ")
    ]


def ask(prompt: str, assistant_turns: int = 0) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    messages += [{"role": "assistant", "content": "..."}] * assistant_turns
    return {"model": "fake-model", "messages": messages}


def test_stream_is_openai_sse_with_usage_and_done() -> None:
    reply = Reply.tool_call("grep", {"pattern": "x"}, id="call_a", content="ok", usage=(5, 3))
    with FakeOpenAIServer([reply]) as server:
        body = {**ask("hi"), "stream": True, "stream_options": {"include_usage": True}}
        status, raw = post(server.base_url, body)
    assert status == 200
    payloads = sse_payloads(raw)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    head = chunks[2]["choices"][0]["delta"]["tool_calls"][0]
    assert head["id"] == "call_a"
    assert head["function"]["name"] == "grep"


def test_non_streaming_reply_and_model_list() -> None:
    with FakeOpenAIServer([Reply.text("plain", reasoning="why")], models=["a", "b"]) as server:
        status, raw = post(server.base_url, ask("hi"))
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as response:
            models = json.loads(response.read())
    assert status == 200
    message = json.loads(raw)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "plain", "reasoning_content": "why"}
    assert [m["id"] for m in models["data"]] == ["a", "b"]


def test_exhausted_script_answers_400_saying_so() -> None:
    with FakeOpenAIServer([Reply.text("one")]) as server:
        post(server.base_url, ask("hi"))
        status, raw = post(server.base_url, ask("hi"))
    assert status == 400
    assert "script exhausted" in json.loads(raw)["error"]["message"]


def test_by_conversation_routes_each_agent_to_its_own_script() -> None:
    responder = ByConversation(
        {"search:": [Reply.text("s1"), Reply.text("s2")], "*": [Reply.text("main1")]}
    )
    with FakeOpenAIServer(responder) as server:
        answers = [
            json.loads(post(server.base_url, body)[1])["choices"][0]["message"]["content"]
            for body in (ask("search: foo", 1), ask("do the task"), ask("search: foo"))
        ]
        status, _ = post(server.base_url, ask("do the task", 1))
    assert answers == ["s2", "main1", "s1"]
    assert status == 400  # the main script has one reply only


def test_reply_json_rejects_typos() -> None:
    with pytest.raises(ValueError, match="unknown reply fields"):
        reply_from_json({"txt": "hello"})
    assert reply_from_json({"text": "hello", "usage": [1, 2]}).content == "hello"


async def test_64_parallel_streams_are_served_concurrently() -> None:
    parallel = 64
    everyone_arrived = threading.Barrier(parallel, timeout=20)

    def responder(body: dict[str, Any]) -> Reply:
        everyone_arrived.wait()  # no reply until all 64 requests are in flight together
        return Reply.text(f"answer to {body['messages'][0]['content']}", chunk_chars=4)

    with FakeOpenAIServer(responder) as server:
        backend = OpenAIBackend(server.base_url, "k", "fake-model", max_concurrency=parallel)

        async def one(i: int) -> str:
            stream = backend.stream([Message.user(f"q{i}")], [], BackendOptions())
            return "".join([d.text async for d in stream if isinstance(d, TextChunk)])

        answers = await asyncio.gather(*(one(i) for i in range(parallel)))
        await backend.aclose()
        assert server.max_in_flight == parallel
    assert answers == [f"answer to q{i}" for i in range(parallel)]


def test_cli_mode_serves_a_json_script(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "from the script"}]), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--script", str(script)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        status, raw = post(base_url, {**ask("hi"), "stream": True})
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert status == 200
    chunks = [json.loads(p) for p in sse_payloads(raw)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "from the script"


def test_cli_mode_reports_a_bad_script(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text('[{"txet": "typo"}]', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "tests.fake_openai", "--script", str(script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "unknown reply fields" in result.stderr
