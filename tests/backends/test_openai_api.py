"""OpenAIBackend against the fake OpenAI server over real HTTP on 127.0.0.1.

Every test runs through both transports (our httpx2 SSE reader and the official SDK): they must
yield the same deltas and fail the same way."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from kcode.backends.base import (
    BackendError,
    BackendOptions,
    Delta,
    FinishChunk,
    ReasoningChunk,
    RetryNotice,
    TextChunk,
    ToolCallChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.backends.openai.api import OpenAIBackend
from kcode.messages import ImagePart, Message, ToolCall, ToolResult
from tests.fake_openai import FakeOpenAIServer, Reply

API_KEY = "sk-test-secret-key-1234567890"
GREP = ToolSpec(
    "grep",
    "Search files",
    {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},
)
PNG = b"\x89PNG\r\n\x1a\nfake-image-bytes"


@pytest.fixture(params=["http", "sdk"], autouse=True)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The transport every backend in the test uses (via the variable a user would set)."""
    name = str(request.param)
    monkeypatch.setenv("KCODE_OPENAI_TRANSPORT", name)
    return name


def make_backend(server: FakeOpenAIServer, model: str = "fake-model", **kw: Any) -> OpenAIBackend:
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    return OpenAIBackend(server.base_url, API_KEY, model, **kw)


async def collect(
    backend: OpenAIBackend,
    messages: Sequence[Message] = (Message.user("hello"),),
    tools: Sequence[ToolSpec] = (),
    options: BackendOptions | None = None,
) -> list[Delta]:
    stream: AsyncIterator[Delta] = backend.stream(messages, tools, options or BackendOptions())
    try:
        return [delta async for delta in stream]
    finally:
        await backend.aclose()


def current_reply(deltas: list[Delta]) -> list[Delta]:
    """What a consumer keeps: partial output before the last RetryNotice is void."""
    last_notice = max((i for i, d in enumerate(deltas) if isinstance(d, RetryNotice)), default=-1)
    return deltas[last_notice + 1 :]


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in current_reply(deltas) if isinstance(d, TextChunk))


def assemble_tool_calls(deltas: list[Delta]) -> list[dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for d in current_reply(deltas):
        if isinstance(d, ToolCallChunk):
            call = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = d.id or call["id"]
            call["name"] = d.name or call["name"]
            call["arguments"] += d.arguments
    return [
        {"id": c["id"], "name": c["name"], "arguments": json.loads(c["arguments"])}
        for _, c in sorted(calls.items())
    ]


def notices(deltas: list[Delta]) -> list[RetryNotice]:
    return [d for d in deltas if isinstance(d, RetryNotice)]


# --- streaming -----------------------------------------------------------------------------------


async def test_text_streams_in_pieces_and_ends_with_usage_then_finish() -> None:
    with FakeOpenAIServer([Reply.text("Hello from the fake model!", usage=(42, 7))]) as server:
        deltas = await collect(make_backend(server))
    assert text_of(deltas) == "Hello from the fake model!"
    assert sum(isinstance(d, TextChunk) for d in deltas) > 1
    assert deltas[-2:] == [UsageChunk(42, 7), FinishChunk("stop")]
    assert not notices(deltas)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_is_captured_from_either_field(field: str) -> None:
    reply = Reply.text("answer", reasoning="let me think about it", reasoning_field=field)
    with FakeOpenAIServer([reply]) as server:
        deltas = await collect(make_backend(server))
    reasoning = "".join(d.text for d in deltas if isinstance(d, ReasoningChunk))
    assert reasoning == "let me think about it"
    assert text_of(deltas) == "answer"


async def test_tool_call_arguments_split_across_chunks_reassemble() -> None:
    args = {"pattern": "def main", "path": "src", "context": 2}
    reply = Reply.tool_call("grep", args, id="call_1", arg_pieces=5)
    with FakeOpenAIServer([reply]) as server:
        deltas = await collect(make_backend(server), tools=[GREP])
    pieces = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert len(pieces) >= 5
    assert assemble_tool_calls(deltas) == [{"id": "call_1", "name": "grep", "arguments": args}]
    assert deltas[-1] == FinishChunk("tool_calls")


async def test_two_tool_calls_in_one_reply_keep_their_indexes() -> None:
    reply = Reply.multi_call(("grep", {"pattern": "a"}), ("read_file", {"path": "x.py"}))
    with FakeOpenAIServer([reply]) as server:
        deltas = await collect(make_backend(server), tools=[GREP])
    calls = assemble_tool_calls(deltas)
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("grep", {"pattern": "a"}),
        ("read_file", {"path": "x.py"}),
    ]
    assert calls[0]["id"] != calls[1]["id"]


async def test_malformed_arguments_pass_through_untouched() -> None:
    reply = Reply.tool_call("grep", {"pattern": "x"}, malformed_args=True)
    with FakeOpenAIServer([reply]) as server:
        deltas = await collect(make_backend(server), tools=[GREP])
    raw = "".join(d.arguments for d in deltas if isinstance(d, ToolCallChunk))
    assert raw == '{"pattern": "x"'


# --- the request on the wire ---------------------------------------------------------------------


async def test_request_body_carries_tools_usage_images_and_reasoning(transport: str) -> None:
    call = ToolCall("call_7", "grep", {"pattern": "TODO"})
    conversation = [
        Message.system("You are kcode."),
        Message.user("fix this", images=(ImagePart(PNG),)),
        Message.assistant("", tool_calls=(call,), reasoning="I should grep first"),
        Message.tool(ToolResult("call_7", True, "a.py:3: TODO", images=(ImagePart(PNG),))),
    ]
    with FakeOpenAIServer([Reply.text("done")]) as server:
        await collect(
            make_backend(server), conversation, [GREP], BackendOptions(tool_choice="grep")
        )
        body = server.requests[0].body
    assert body is not None
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["tools"][0]["function"]["name"] == "grep"
    assert body["tools"][0]["function"]["parameters"] == GREP.parameters
    assert body["tool_choice"] == {"type": "function", "function": {"name": "grep"}}
    system, user, assistant, tool, tool_images = body["messages"]
    assert system == {"role": "system", "content": "You are kcode."}
    data_url = ImagePart(PNG).data_url()
    assert {"type": "image_url", "image_url": {"url": data_url}} in user["content"]
    assert assistant["reasoning_content"] == "I should grep first"
    assert assistant["tool_calls"][0]["function"] == {
        "name": "grep",
        "arguments": json.dumps({"pattern": "TODO"}),
    }
    assert tool == {"role": "tool", "tool_call_id": "call_7", "content": "a.py:3: TODO"}
    assert tool_images["role"] == "user"
    assert tool_images["content"][-1] == {"type": "image_url", "image_url": {"url": data_url}}
    assert "authorization" not in server.requests[0].headers
    assert server.requests[0].authorized
    if transport == "http":  # servers' logs show who called
        assert server.requests[0].headers["user-agent"].startswith("kcode/")


@pytest.mark.parametrize(
    ("model", "thinking", "expected"),
    [
        ("kimi-k2.5", True, {"type": "enabled"}),
        ("kimi-k2.5", False, {"type": "disabled"}),
        ("kimi-k2.5", None, None),
        ("gpt-4o", True, None),
    ],
)
async def test_thinking_switch_is_sent_to_kimi_models_only(
    model: str, thinking: bool | None, expected: dict[str, str] | None
) -> None:
    with FakeOpenAIServer([Reply.text("ok")]) as server:
        await collect(make_backend(server, model), options=BackendOptions(thinking=thinking))
        body = server.requests[0].body
    assert body is not None
    assert body["model"] == model
    assert body.get("thinking") == expected


# --- retries -------------------------------------------------------------------------------------


async def test_rate_limit_with_retry_after_is_announced_then_succeeds() -> None:
    with FakeOpenAIServer([Reply.fault(429, retry_after=0.2), Reply.text("ok")]) as server:
        deltas = await collect(make_backend(server))
    [notice] = notices(deltas)
    assert notice.attempt == 1
    assert notice.delay_s >= 0.2
    assert "429" in notice.reason
    assert text_of(deltas) == "ok"


@pytest.mark.parametrize(
    "fault",
    [Reply.fault(500), Reply.fault(503), Reply.connection_reset()],
    ids=["500", "503", "reset"],
)
async def test_server_errors_and_resets_are_retried(fault: Reply) -> None:
    with FakeOpenAIServer([fault, Reply.text("recovered")]) as server:
        deltas = await collect(make_backend(server))
        assert len(server.requests) == 2
    assert len(notices(deltas)) == 1
    assert text_of(deltas) == "recovered"


async def test_stream_cut_midway_restarts_the_reply_with_a_notice() -> None:
    cut = Reply.cut("This reply will be cut short", after=3)
    with FakeOpenAIServer([cut, Reply.text("complete answer")]) as server:
        deltas = await collect(make_backend(server))
    [notice] = notices(deltas)
    assert "stream cut; restarting the reply" in notice.reason
    partial = [d for d in deltas[: deltas.index(notice)] if isinstance(d, TextChunk)]
    assert partial, "the cut reply had started streaming"
    assert text_of(deltas) == "complete answer"
    assert deltas[-1] == FinishChunk("stop")


async def test_gives_up_after_max_retries_with_a_server_error() -> None:
    with FakeOpenAIServer([Reply.fault(500)] * 3) as server:
        backend = make_backend(server, max_retries=2)
        with pytest.raises(BackendError) as info:
            await collect(backend)
        assert len(server.requests) == 3
    assert info.value.kind == "server"
    assert "3 attempts" in info.value.message


# --- errors that are not retried -----------------------------------------------------------------


async def test_bad_key_is_an_auth_error_that_never_shows_the_key() -> None:
    with FakeOpenAIServer(require_api_key="the-right-key") as server:
        with pytest.raises(BackendError) as info:
            await collect(make_backend(server))
        assert len(server.requests) == 1
    assert info.value.kind == "auth"
    assert "KCODE_API_KEY" in info.value.message
    assert API_KEY not in info.value.message
    assert API_KEY not in str(info.value)


async def test_unknown_model_lists_the_available_ones() -> None:
    fault = Reply.fault(404, message="The model `nope` does not exist")
    with (
        FakeOpenAIServer([fault], models=["kimi-k2.5", "fake-model"]) as server,
        pytest.raises(BackendError) as info,
    ):
        await collect(make_backend(server, "nope"))
    assert info.value.kind == "model_not_found"
    assert "'nope'" in info.value.message
    assert "--model" in info.value.message
    assert "kimi-k2.5" in info.value.message


async def test_bad_request_carries_the_server_message() -> None:
    fault = Reply.fault(400, message="messages[3]: content must be a string")
    with FakeOpenAIServer([fault]) as server:
        with pytest.raises(BackendError) as info:
            await collect(make_backend(server))
        assert len(server.requests) == 1
    assert info.value.kind == "bad_request"
    assert "content must be a string" in info.value.message


async def test_unreachable_server_after_retries() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAIBackend(
        f"http://127.0.0.1:{port}/v1", API_KEY, "m", max_retries=2, backoff_base_s=0.01
    )
    deltas: list[Delta] = []
    with pytest.raises(BackendError) as info:
        async for delta in backend.stream([Message.user("hi")], [], BackendOptions()):
            deltas.append(delta)
    await backend.aclose()
    assert info.value.kind == "unreachable"
    assert f"127.0.0.1:{port}" in info.value.message
    assert "--base-url" in info.value.message
    # Refused on loopback: nothing listens there, so one quick retry, not max_retries (issue #14).
    assert len(notices(deltas)) == 1


# --- concurrency ---------------------------------------------------------------------------------


async def test_limiter_caps_requests_in_flight() -> None:
    slow = Reply.text("slow answer", delay_s=0.05, chunk_delay_s=0.01)
    with FakeOpenAIServer(default=slow) as server:
        backend = make_backend(server, max_concurrency=3)
        results = await asyncio.gather(*(collect_without_closing(backend) for _ in range(12)))
        await backend.aclose()
        assert len(server.requests) == 12
        assert server.max_in_flight <= 3
    assert all(text_of(r) == "slow answer" for r in results)


async def test_rate_limits_halve_the_concurrency() -> None:
    # 8 requests at once all get a 429: the cap halves once (8 -> 4), not once per 429, and grows
    # back by one after a window of successes, so the retries never run 8 at a time again.
    replies = [Reply.fault(429, retry_after=0.01, delay_s=0.2)] * 8 + [
        Reply.text("ok", delay_s=0.05)
    ] * 8
    with FakeOpenAIServer(replies) as server:
        backend = make_backend(server, max_concurrency=8)
        results = await asyncio.gather(*(collect_without_closing(backend) for _ in range(8)))
        await backend.aclose()
        first, retried = server.requests[:8], server.requests[8:]
    assert max(r.in_flight for r in first) == 8
    assert 4 <= max(r.in_flight for r in retried) <= 5
    assert all(text_of(r) == "ok" for r in results)


async def collect_without_closing(backend: OpenAIBackend) -> list[Delta]:
    stream = backend.stream([Message.user("hello")], [], BackendOptions())
    return [delta async for delta in stream]
