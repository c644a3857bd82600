"""Golden tests: raw model outputs of each family, streamed in arbitrary pieces -> expected deltas."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kcode.backends.base import Delta, ReasoningChunk, TextChunk, ToolCallChunk, ToolSpec
from kcode.backends.toolcall_formats import (
    FORMATS,
    HERMES,
    KIMI,
    LLAMA3,
    QWEN3_CODER,
    ToolCallFormat,
    ToolCallStreamParser,
    convert_parameter_value,
    detect_format,
)

from .sample_templates import TEMPLATES

TOOLS = [
    ToolSpec(
        "read_file",
        "Read a file",
        {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "offset": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "limit": {"type": "integer"},
            },
            "required": ["path"],
        },
    ),
    ToolSpec(
        "edit_file",
        "Edit",
        {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "edits": {"type": "array", "items": {"type": "object"}},
                "dry_run": {"type": "boolean"},
            },
        },
    ),
]


def run_parser(
    fmt: ToolCallFormat, pieces: list[str], *, in_reasoning: bool = False
) -> dict[str, Any]:
    parser = ToolCallStreamParser(fmt, TOOLS, starts_in_reasoning=in_reasoning)
    deltas: list[Delta] = []
    for piece in pieces:
        deltas += parser.feed(piece)
    deltas += parser.finish()
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    return {
        "text": "".join(d.text for d in deltas if isinstance(d, TextChunk)),
        "reasoning": "".join(d.text for d in deltas if isinstance(d, ReasoningChunk)),
        "calls": [(c.name, json.loads(c.arguments)) for c in calls],
        "indexes": [c.index for c in calls],
        "ids": [c.id for c in calls],
    }


def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


GOLDEN: list[tuple[ToolCallFormat, str, dict[str, Any]]] = [
    (
        HERMES,
        "<think>look first</think>\n\nLet me read it.\n<tool_call>\n"
        '{"name": "read_file", "arguments": {"path": "a.py", "limit": 5}}\n</tool_call>\n'
        '<tool_call>\n{"name": "edit_file", "arguments": "{\\"path\\": \\"b.py\\"}"}\n</tool_call>',
        {
            "text": "Let me read it.\n",
            "reasoning": "look first",
            "calls": [
                ("read_file", {"path": "a.py", "limit": 5}),
                ("edit_file", {"path": "b.py"}),
            ],
        },
    ),
    (
        QWEN3_CODER,
        "I will edit.\n<tool_call>\n<function=edit_file>\n<parameter=path>\nsrc/x <y>.py\n"
        '</parameter>\n<parameter=edits>\n[{"old_string": "a"}]\n</parameter>\n'
        "<parameter=dry_run>\nfalse\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n"
        "<function=read_file>\n<parameter=path>\n007\n</parameter>\n<parameter=offset>\n12\n"
        "</parameter>\n</function>\n</tool_call>",
        {
            "text": "I will edit.\n",
            "reasoning": "",
            "calls": [
                (
                    "edit_file",
                    {"path": "src/x <y>.py", "edits": [{"old_string": "a"}], "dry_run": False},
                ),
                ("read_file", {"path": "007", "offset": 12}),
            ],
        },
    ),
    (
        KIMI,
        "<think>plan</think>Checking.<|tool_calls_section_begin|><|tool_call_begin|>"
        'functions.read_file:0<|tool_call_argument_begin|>{"path": "ü.txt"}<|tool_call_end|>'
        "<|tool_call_begin|>functions.edit_file:1<|tool_call_argument_begin|>"
        '{"path": "z", "edits": []}<|tool_call_end|><|tool_calls_section_end|>',
        {
            "text": "Checking.",
            "reasoning": "plan",
            "calls": [("read_file", {"path": "ü.txt"}), ("edit_file", {"path": "z", "edits": []})],
        },
    ),
    (
        LLAMA3,
        '{"name": "read_file", "parameters": {"path": "main.c"}}',
        {"text": "", "reasoning": "", "calls": [("read_file", {"path": "main.c"})]},
    ),
    (
        LLAMA3,
        'Sure.<|python_tag|>{"name": "read_file", "parameters": {"path": "a"}}; '
        '{"name": "edit_file", "parameters": {"path": "b"}}',
        {
            "text": "Sure.",
            "reasoning": "",
            "calls": [("read_file", {"path": "a"}), ("edit_file", {"path": "b"})],
        },
    ),
    (
        HERMES,
        "Plain answer with a < sign and <b>html</b> and <tool_ that is not a call.",
        {
            "text": "Plain answer with a < sign and <b>html</b> and <tool_ that is not a call.",
            "reasoning": "",
            "calls": [],
        },
    ),
    (
        LLAMA3,
        '{"answer": 42} is JSON but not a call',
        {"text": '{"answer": 42} is JSON but not a call', "reasoning": "", "calls": []},
    ),
]


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(range(len(GOLDEN))), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_golden_outputs_parse_the_same_however_the_stream_is_split(
    case: int, cuts: list[int]
) -> None:
    fmt, raw, expected = GOLDEN[case]
    got = run_parser(fmt, split_at(raw, cuts))
    assert {k: got[k] for k in expected} == expected
    assert got["indexes"] == list(range(len(expected["calls"])))


def test_one_character_at_a_time_streams_text_before_the_call_is_complete() -> None:
    parser = ToolCallStreamParser(HERMES, TOOLS)
    streamed = "".join(
        d.text
        for ch in "Reading now. <tool_call>"
        for d in parser.feed(ch)
        if isinstance(d, TextChunk)
    )
    assert streamed == "Reading now. "  # the marker itself is never shown as text


def test_kimi_keeps_the_models_call_id() -> None:
    raw = (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:7"
        '<|tool_call_argument_begin|>{"path": "x"}<|tool_call_end|><|tool_calls_section_end|>'
    )
    assert run_parser(KIMI, [raw])["ids"] == ["functions.read_file:7"]


def test_reasoning_opened_by_the_prompt_is_split_off() -> None:
    got = run_parser(HERMES, ["still thinking</th", "ink>\n\nDone."], in_reasoning=True)
    assert (got["reasoning"], got["text"]) == ("still thinking", "Done.")


def test_malformed_call_comes_through_as_invalid_arguments() -> None:
    parser = ToolCallStreamParser(HERMES, TOOLS)
    deltas = parser.feed(
        '<tool_call>{"name": "read_file", "arguments": {"path": "a.py"</tool_call>'
    )
    deltas += parser.finish()
    (call,) = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert call.name == "read_file"
    try:
        json.loads(call.arguments)
        parsed = True
    except ValueError:
        parsed = False
    assert not parsed and '"path": "a.py"' in call.arguments


def test_call_cut_off_by_the_end_of_generation_is_still_reported() -> None:
    got = run_parser(HERMES, ['<tool_call>\n{"name": "read_file", "arguments": {"path": "a"}}\n'])
    assert got["calls"] == [("read_file", {"path": "a"})]


def test_qwen3_coder_values_follow_the_schema() -> None:
    assert convert_parameter_value("12", {"type": "string"}) == "12"
    assert convert_parameter_value("12", {"type": "integer"}) == 12
    assert convert_parameter_value("1.5", {"type": "number"}) == 1.5
    assert convert_parameter_value("True", {"type": "boolean"}) is True
    assert (
        convert_parameter_value("null", {"anyOf": [{"type": "integer"}, {"type": "null"}]}) is None
    )
    assert convert_parameter_value('{"a": 1}', None) == {"a": 1}
    assert convert_parameter_value("not json", {"type": "object"}) == "not json"


def test_format_is_detected_from_each_family_template() -> None:
    for name, (source, _end) in TEMPLATES.items():
        assert detect_format(source) is FORMATS[name]
    assert detect_format("{{ messages }}") is HERMES
