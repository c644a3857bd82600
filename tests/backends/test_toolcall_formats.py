"""Golden tests: raw model outputs of each family, streamed in arbitrary pieces -> expected deltas."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcode.backends.base import Delta, ReasoningChunk, TextChunk, ToolCallChunk, ToolSpec
from kcode.backends.llama.toolcall_formats import (
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


# Shapes real models write that the textbook formats leave out (issue #13).
REAL_SHAPES: list[tuple[str, ToolCallFormat, str, bool, dict[str, Any]]] = [
    (
        "kimi call inside a <think> that is never closed",
        KIMI,
        "<think>The user wants a.py, I should read it."
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0"
        '<|tool_call_argument_begin|>{"path": "a.py"}<|tool_call_end|><|tool_calls_section_end|>',
        False,
        {
            "text": "",
            "reasoning": "The user wants a.py, I should read it.",
            "calls": [("read_file", {"path": "a.py"})],
        },
    ),
    (
        "kimi K2.5: reasoning opened by the prompt, two calls, no section, a late </think>",
        KIMI,
        "Two files to read.<|tool_call_begin|>functions.read_file:0<|tool_call_argument_begin|>"
        '{"path": "a"}<|tool_call_end|><|tool_call_begin|>functions.read_file:1'
        '<|tool_call_argument_begin|>{"path": "b"}<|tool_call_end|></think>',
        True,
        {
            "text": "",
            "reasoning": "Two files to read.",
            "calls": [("read_file", {"path": "a"}), ("read_file", {"path": "b"})],
        },
    ),
    (
        "qwen3-coder <function=...> without the opening <tool_call>",
        QWEN3_CODER,
        "Let me look.\n<function=read_file>\n<parameter=path>\nsrc/main.py\n</parameter>\n"
        "<parameter=limit>\n20\n</parameter>\n</function>\n</tool_call>\n"
        "<function=edit_file>\n<parameter=path>\nb.py\n</parameter>\n</function>",
        False,
        {
            "text": "Let me look.\n",
            "reasoning": "",
            "calls": [
                ("read_file", {"path": "src/main.py", "limit": 20}),
                ("edit_file", {"path": "b.py"}),
            ],
        },
    ),
    (
        "llama 3 JSON call followed by a sentence of prose",
        LLAMA3,
        '{"name": "read_file", "parameters": {"path": "main.c", "limit": 5}} '
        "I will read main.c to find the entry point.",
        False,
        {
            "text": "I will read main.c to find the entry point.",
            "reasoning": "",
            "calls": [("read_file", {"path": "main.c", "limit": 5})],
        },
    ),
    (
        "several <|python_tag|> calls in one answer, some separated by ;",
        LLAMA3,
        'Reading both.<|python_tag|>{"name": "read_file", "parameters": {"path": "a"}}'
        '<|python_tag|>{"name": "read_file", "parameters": {"path": "b}"}};'
        '<|python_tag|>{"name": "edit_file", "parameters": {"path": "c", "edits": []}}',
        False,
        {
            "text": "Reading both.",
            "reasoning": "",
            "calls": [
                ("read_file", {"path": "a"}),
                ("read_file", {"path": "b}"}),
                ("edit_file", {"path": "c", "edits": []}),
            ],
        },
    ),
]


def _every_split(text: str) -> list[list[str]]:
    return [[text[:i], text[i:]] for i in range(len(text) + 1)]


@pytest.mark.parametrize("case", REAL_SHAPES, ids=[c[0] for c in REAL_SHAPES])
def test_real_output_shapes_parse_at_every_chunk_boundary(
    case: tuple[str, ToolCallFormat, str, bool, dict[str, Any]],
) -> None:
    _name, fmt, raw, in_reasoning, expected = case
    for pieces in [[raw], list(raw), *_every_split(raw)]:
        got = run_parser(fmt, pieces, in_reasoning=in_reasoning)
        assert {k: got[k] for k in expected} == expected, pieces
        assert got["indexes"] == list(range(len(expected["calls"])))


@settings(max_examples=80, deadline=None)
@given(
    case=st.sampled_from(range(len(REAL_SHAPES))),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_real_output_shapes_parse_the_same_however_the_stream_is_split(
    case: int, cuts: list[int]
) -> None:
    _name, fmt, raw, in_reasoning, expected = REAL_SHAPES[case]
    got = run_parser(fmt, split_at(raw, cuts), in_reasoning=in_reasoning)
    assert {k: got[k] for k in expected} == expected


MALFORMED = [
    (LLAMA3, '<|python_tag|>{"name": "read_file", "parameters": {"path": "a.py"', "read_file"),
    (LLAMA3, '{"name": "read_file", "parameters": {"path": "a.py",}}', "read_file"),
    (LLAMA3, '<|python_tag|>brave_search.call(query="kcode")', ""),
    (
        KIMI,
        "<|tool_call_begin|>functions.read_file:0<|tool_call_argument_begin|>{path: a}",
        "read_file",
    ),
    (KIMI, "<think>hm<|tool_call_begin|>functions.edit_file:0<|tool_call_end|>", "edit_file"),
    (QWEN3_CODER, "<function=read_file>\n<parameter=path>\na.py", "read_file"),
    (HERMES, '<tool_call>{"name": "read_file", "arguments": {"path": ', "read_file"),
]


@pytest.mark.parametrize(("fmt", "raw", "name"), MALFORMED)
def test_malformed_calls_come_back_as_calls_with_invalid_arguments(
    fmt: ToolCallFormat, raw: str, name: str
) -> None:
    for pieces in [[raw], list(raw)]:
        parser = ToolCallStreamParser(fmt, TOOLS)
        deltas = [d for piece in pieces for d in parser.feed(piece)] + parser.finish()
        calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
        assert len(calls) == 1 and calls[0].name == name
        if fmt is not QWEN3_CODER:  # Qwen3-Coder's cut-off value is still a value
            with pytest.raises(ValueError):
                json.loads(calls[0].arguments)


FRAGMENTS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<function=read_file>",
    "<parameter=path>",
    "</parameter>",
    "</function>",
    "<|python_tag|>",
    "<|tool_calls_section_begin|>",
    "<|tool_call_begin|>",
    "functions.read_file:0",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
    "<|tool_calls_section_end|>",
    '{"name": "read_file", "parameters": {"path": "x"}}',
    '{"name": "read_file", "arguments": {"path": "y"}}',
    '{"path": "z"}',
    "{",
    "}",
    '"',
    ";",
    "\n",
    " prose ",
    "<",
    "ü",
]


@settings(max_examples=150, deadline=None)
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    parts=st.lists(st.sampled_from(FRAGMENTS), max_size=14),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
    in_reasoning=st.booleans(),
)
def test_any_output_parses_without_crashing_and_independently_of_chunking(
    fmt: str, parts: list[str], cuts: list[int], in_reasoning: bool
) -> None:
    raw = "".join(parts)

    def parse(pieces: list[str]) -> tuple[str, str, list[tuple[str | None, str]]]:
        parser = ToolCallStreamParser(FORMATS[fmt], TOOLS, starts_in_reasoning=in_reasoning)
        deltas = [d for piece in pieces for d in parser.feed(piece)] + parser.finish()
        return (
            "".join(d.text for d in deltas if isinstance(d, TextChunk)),
            "".join(d.text for d in deltas if isinstance(d, ReasoningChunk)),
            [(d.name, d.arguments) for d in deltas if isinstance(d, ToolCallChunk)],
        )

    assert parse(split_at(raw, cuts)) == parse([raw])
