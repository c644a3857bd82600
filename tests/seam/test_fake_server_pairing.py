"""Issue #12 item 8: the fake OpenAI server refuses a history whose tool calls and results do not
pair up (HTTP 400 with a clear message), as OpenAI does and as Codex's test server checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAIServer, Reply
from tests.fake_openai_checks import tool_pairing_problem
from tests.test_fake_openai import post


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "grep", "arguments": "{}"}}


def _assistant(*ids: str) -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_calls": [_call(i) for i in ids]}


def _result(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "ok"}


USER = {"role": "user", "content": "go"}


@pytest.mark.parametrize(
    "messages",
    [
        [USER],
        [USER, _assistant("a", "b"), _result("b"), _result("a"), {"role": "assistant", "content": "x"}],
        [USER, _assistant("a"), _result("a"), USER, _assistant("c"), _result("c")],
    ],
)  # fmt: skip
def test_paired_histories_pass(messages: list[dict[str, Any]]) -> None:
    assert tool_pairing_problem(messages) is None


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        ([USER, _assistant("a", "b"), _result("a")], "no result for 'b'"),
        ([USER, _assistant("a"), USER], "no result for 'a'"),
        ([USER, _result("z")], "no preceding assistant message"),
        ([USER, _assistant("a"), _result("a"), _result("a")], "answered twice"),
        ([USER, _assistant("a", "a")], "repeats the tool call id 'a'"),
    ],
)  # fmt: skip
def test_broken_histories_are_named(messages: list[dict[str, Any]], says: str) -> None:
    problem = tool_pairing_problem(messages)
    assert problem is not None and says in problem


def test_the_server_answers_400_and_serves_no_reply() -> None:
    broken = {"model": "fake-model", "messages": [USER, _assistant("call_7")]}
    with FakeOpenAIServer([Reply.text("one")]) as server:
        server.violations_expected = True
        status, raw = post(server.base_url, broken)
        assert status == 400
        message = json.loads(raw)["error"]["message"]
        assert "tool messages responding to each 'tool_call_id'" in message and "call_7" in message
        assert server.violations == [message.removeprefix("fake OpenAI server: ")]
        ok, _ = post(server.base_url, {"model": "fake-model", "messages": [USER]})
        assert ok == 200, "the refused request did not use up the script"
    with FakeOpenAIServer([Reply.text("one")], check_tool_pairing=False) as server:
        assert post(server.base_url, broken)[0] == 200
