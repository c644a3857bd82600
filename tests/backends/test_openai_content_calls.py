"""OpenAIBackend against the fake OpenAI server when the server leaves tool-call markup in
`content` (a llama.cpp server without --jinja, vLLM without --tool-call-parser...).

Both transports (our SSE reader and the official SDK) run every test."""

from __future__ import annotations

import json
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
)
from kcode.backends.openai.api import OpenAIBackend
from kcode.messages import Message
from tests.backends.test_content_calls import (
    HERMES_CALL,
    KIMI_CALL,
    LLAMA_CALL,
    ORDINARY,
    QWEN_BARE_CALL,
    QWEN_CALL,
    TOOLS,
)
from tests.fake_openai import FakeOpenAIServer, Reply
from tests.fake_openai_replies import FakeToolCall

READ_A = ("read_file", {"path": "a.py"})


@pytest.fixture(params=["http", "sdk"], autouse=True)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name = str(request.param)
    monkeypatch.setenv("KCODE_OPENAI_TRANSPORT", name)
    return name


async def collect(
    server: FakeOpenAIServer, tools: Sequence[ToolSpec] = TOOLS, **kw: Any
) -> list[Delta]:
    backend = OpenAIBackend(
        server.base_url, "sk-test", "fake-model", backoff_base_s=0.01, backoff_max_s=0.02, **kw
    )
    stream: AsyncIterator[Delta] = backend.stream([Message.user("hi")], tools, BackendOptions())
    try:
        deltas = [delta async for delta in stream]
    finally:
        await backend.aclose()
    last_notice = max((i for i, d in enumerate(deltas) if isinstance(d, RetryNotice)), default=-1)
    return deltas[last_notice + 1 :]  # what a consumer keeps after a restarted reply


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextChunk))


def calls_of(deltas: list[Delta]) -> list[tuple[str, dict[str, Any]]]:
    """Assembled as the loop assembles them: pieces grouped by index."""
    calls: dict[int, dict[str, str]] = {}
    for d in deltas:
        if isinstance(d, ToolCallChunk):
            slot = calls.setdefault(d.index, {"name": "", "arguments": ""})
            slot["name"] += d.name or ""
            slot["arguments"] += d.arguments
    return [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]


def finish_of(deltas: list[Delta]) -> str:
    finishes = [d.reason for d in deltas if isinstance(d, FinishChunk)]
    assert len(finishes) == 1
    return finishes[0]


def awkward(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize(
    ("prose", "markup", "expected"),
    [
        ("Let me look.\n", HERMES_CALL, [READ_A]),
        ("Sure.\n", QWEN_CALL, [("read_file", {"path": "a.py", "limit": 5})]),
        ("", QWEN_BARE_CALL, [READ_A]),
        ("Reading it.\n", KIMI_CALL, [READ_A]),
        ("", f"{LLAMA_CALL}; {LLAMA_CALL}", [READ_A, READ_A]),
    ],
    ids=["hermes", "qwen3-coder", "qwen3-coder-bare", "kimi", "llama3-two-calls"],
)
@pytest.mark.parametrize("size", [1, 3, 7])
async def test_markup_in_content_becomes_tool_calls(
    prose: str, markup: str, expected: list[Any], size: int
) -> None:
    with FakeOpenAIServer([Reply.pieces(*awkward(prose + markup, size))]) as srv:
        deltas = await collect(srv)
    assert text_of(deltas) == prose
    assert calls_of(deltas) == expected
    assert finish_of(deltas) == "tool_calls"


async def test_ordinary_text_with_angle_brackets_streams_unchanged() -> None:
    with FakeOpenAIServer([Reply.pieces(*awkward(ORDINARY, 5))]) as srv:
        deltas = await collect(srv)
    assert text_of(deltas) == ORDINARY
    assert calls_of(deltas) == [] and finish_of(deltas) == "stop"


async def test_native_tool_calls_are_unaffected_and_win() -> None:
    native = [FakeToolCall("read_file", {"path": "b.py"})]
    replies = [
        Reply(content="Checking.", tool_calls=native),
        # A server that parsed the call itself and also echoed markup: the native call alone.
        Reply(content=f"Checking.\n{HERMES_CALL}", tool_calls=native, chunk_chars=4),
    ]
    with FakeOpenAIServer(replies) as srv:
        first = await collect(srv)
        second = await collect(srv)
    for deltas in (first, second):
        assert calls_of(deltas) == [("read_file", {"path": "b.py"})]
        assert text_of(deltas) == ("Checking." if deltas is first else "Checking.\n")
        assert finish_of(deltas) == "tool_calls"


async def test_reasoning_content_is_untouched() -> None:
    reply = Reply(reasoning="think <tool_call> here", content=HERMES_CALL, chunk_chars=2)
    with FakeOpenAIServer([reply]) as srv:
        deltas = await collect(srv)
    assert "".join(d.text for d in deltas if isinstance(d, ReasoningChunk)) == (
        "think <tool_call> here"
    )
    assert calls_of(deltas) == [READ_A] and text_of(deltas) == ""


async def test_a_stream_cut_inside_markup_restarts_cleanly() -> None:
    content = f"Let me look.\n{HERMES_CALL}"
    replies = [Reply.cut(content, after=4, chunk_chars=6), Reply.text(content, chunk_chars=6)]
    with FakeOpenAIServer(replies) as srv:
        deltas = await collect(srv)
    assert text_of(deltas) == "Let me look.\n"
    assert calls_of(deltas) == [READ_A]


async def test_tool_format_setting_none_and_named() -> None:
    think = "<think>plan</think>Sure: "
    with FakeOpenAIServer([Reply.text(HERMES_CALL), Reply.text(think + HERMES_CALL)]) as srv:
        verbatim = await collect(srv, tool_format="none")
        named = await collect(srv, tool_format="hermes")
    assert text_of(verbatim) == HERMES_CALL and calls_of(verbatim) == []
    assert text_of(named) == "Sure: " and calls_of(named) == [READ_A]
    assert "".join(d.text for d in named if isinstance(d, ReasoningChunk)) == "plan"


async def test_no_tools_in_the_request_means_no_parsing() -> None:
    with FakeOpenAIServer([Reply.text(HERMES_CALL)]) as srv:
        deltas = await collect(srv, tools=())
    assert text_of(deltas) == HERMES_CALL and calls_of(deltas) == []


def test_an_unknown_tool_format_is_a_config_error() -> None:
    with pytest.raises(BackendError) as caught:
        OpenAIBackend("http://127.0.0.1:9/v1", "k", "m", tool_format="xml")
    assert caught.value.kind == "config" and "tool_format 'xml'" in caught.value.message
