"""Values a broken or hostile OpenAI-compatible server sends, found by driving the real binary
against hand-written servers: each ended the run with "internal error" (or printed NaN or
Infinity into the JSON output). Here at the unit that reads them; tests/e2e has the end-to-end
runs."""

from __future__ import annotations

import json
import math

import pytest

from kcode.backends.openai.chat_chunks import MAX_COUNT, deltas_of, usage_of
from kcode.backends.openai.retry import parse_retry_after
from kcode.ui.tool_lines import todo_text, tool_label, tool_outcome


@pytest.mark.parametrize(
    ("call", "expected_id", "expected_name"),
    [
        ({"id": 7, "function": {"name": "read_file"}}, "7", "read_file"),
        ({"id": {"x": 1}, "function": {"name": 5}}, None, None),
        ({"id": "", "function": {"name": {"a": 1}}}, None, None),
    ],
)
def test_call_ids_and_names_of_the_wrong_type(
    call: dict[str, object], expected_id: str | None, expected_name: str | None
) -> None:
    (delta,) = deltas_of({"tool_calls": [{"index": 0, **call}]})
    assert (delta.id, delta.name) == (expected_id, expected_name)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value", [math.inf, -math.inf, math.nan, 10**400, 1e308, -50, "12abc", "²", True, [1], None]
)
def test_token_counts_are_finite_and_bounded(value: object) -> None:
    usage = usage_of(
        {
            "prompt_tokens": value,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": value},
            "completion_tokens_details": {"reasoning_tokens": value},
        }
    )
    assert usage is not None
    for count in (usage.prompt_tokens, usage.cached_tokens, usage.reasoning_tokens):
        assert isinstance(count, int) and 0 <= count <= MAX_COUNT
    json.dumps(usage.__dict__, allow_nan=False)  # what the JSON output will print


def test_numeric_strings_still_count() -> None:
    usage = usage_of({"prompt_tokens": "120", "completion_tokens": 7})
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (120, 7)


@pytest.mark.parametrize("header", ["retry-after", "retry-after-ms"])
def test_a_nan_retry_after_is_no_retry_after(header: str) -> None:
    assert parse_retry_after({header: "NaN"}) is None
    assert parse_retry_after({header: "nan"}) is None
    assert parse_retry_after({"retry-after": "-3"}) == 0.0


def test_a_status_line_with_non_ascii_digits_is_a_protocol_error() -> None:
    import httpx2

    from kcode.backends.openai.http11 import _parse_head

    with pytest.raises(httpx2.RemoteProtocolError):
        _parse_head("HTTP/1.1 ²²² OK\r\nContent-Length: 0".encode("latin-1"))
    assert _parse_head(b"HTTP/1.1 200 OK\r\nX: y")[0] == 200


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("run_tests", {"paths": [1, 2]}),
        ("spawn_agents", {"tasks": 5}),
        ("todo_write", {"items": 3}),
        ("grep", {"pattern": ["a"], "path": 5}),
        ("apply_patch", {"patch": None}),
        ("read_file", "not even a dict"),
    ],
)
def test_display_lines_of_calls_with_arguments_of_the_wrong_shape(name: str, args: object) -> None:
    """Shown before (or without) validation, and replayed from the session log on every resume:
    a TypeError here ended the turn, and made the session impossible to resume in the REPL."""
    label = tool_label(name, args)  # type: ignore[arg-type]
    assert label.startswith(name)


def test_outcome_and_todo_lines_of_data_of_the_wrong_shape() -> None:
    assert tool_outcome("read_file", True, "a\nb", {"lines": "many"}) == "done"
    assert tool_outcome("shell", True, "x", "not a dict") == "exit None, 0 lines"  # type: ignore[arg-type]
    assert "ok" in todo_text([{"text": "ok"}, "junk", 5]).plain  # type: ignore[list-item]
