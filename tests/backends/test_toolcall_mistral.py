"""Mistral's `[TOOL_CALLS]` output (kcode/backends/llama/toolcall_mistral.py), both shapes, parsed
the same however the stream is split — by the local backend's parser and, for a server that
leaves the markup in `content`, by the OpenAI backend's content filter."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcode.backends.base import BackendOptions, Delta, TextChunk, ToolCallChunk
from kcode.backends.llama.llama_cpp import LlamaCppBackend
from kcode.backends.llama.toolcall_formats import MISTRAL, detect_format
from kcode.backends.openai.content_calls import ContentToolCalls
from kcode.messages import Message

from .real_models import needs_llama, smollm2
from .test_toolcall_formats import TOOLS, _every_split, run_parser, split_at

SHAPES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "v3 JSON list, two calls",
        'Checking.\n[TOOL_CALLS][{"name": "read_file", "arguments": {"path": "a]b.py"}}, '
        '{"name": "grep", "arguments": {"pattern": "x"}}]',
        {
            "text": "Checking.\n",
            "calls": [("read_file", {"path": "a]b.py"}), ("grep", {"pattern": "x"})],
        },
    ),
    (
        "v11 name[ARGS], two calls, prose after",
        '[TOOL_CALLS]read_file[ARGS]{"path": "a.py", "limit": 5}'
        '[TOOL_CALLS]grep[ARGS]{"pattern": "[TOOL_CALLS]"} and done.',
        {
            "text": "and done.",
            "calls": [
                ("read_file", {"path": "a.py", "limit": 5}),
                ("grep", {"pattern": "[TOOL_CALLS]"}),
            ],
        },
    ),
    (
        "v11 with [CALL_ID]",
        '[TOOL_CALLS]edit_file[CALL_ID]aB3dE6gH9[ARGS]{"path": "b.py", "edits": []}',
        {"text": "", "calls": [("edit_file", {"path": "b.py", "edits": []})]},
    ),
    (
        "prose mentioning [TOOL and [ARGS] is text",
        "Use [TOOL] or [ARGS] in docs.",
        {"text": "Use [TOOL] or [ARGS] in docs.", "calls": []},
    ),
]


@pytest.mark.parametrize("case", SHAPES, ids=[c[0] for c in SHAPES])
def test_mistral_calls_parse_at_every_chunk_boundary(case: tuple[str, str, dict[str, Any]]) -> None:
    _name, raw, expected = case
    for pieces in [[raw], list(raw), *_every_split(raw)]:
        got = run_parser(MISTRAL, pieces)
        assert {k: got[k] for k in expected} == expected, pieces
        assert got["indexes"] == list(range(len(expected["calls"])))


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(range(len(SHAPES))), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_mistral_calls_parse_the_same_however_split(case: int, cuts: list[int]) -> None:
    _name, raw, expected = SHAPES[case]
    got = run_parser(MISTRAL, split_at(raw, cuts))
    assert {k: got[k] for k in expected} == expected


def test_call_id_from_the_model_is_kept() -> None:
    raw = '[TOOL_CALLS]read_file[CALL_ID]aB3dE6gH9[ARGS]{"path": "a"}'
    assert run_parser(MISTRAL, [raw])["ids"] == ["aB3dE6gH9"]


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ('[TOOL_CALLS]read_file[ARGS]{"path": "a.py"', "read_file"),  # cut off
        ("[TOOL_CALLS]read_file[ARGS]path=a.py", "read_file"),  # not JSON
        ("[TOOL_CALLS]read file please", "read"),  # no [ARGS]
        ('[TOOL_CALLS][{"name": "read_file", "arguments": {"path": ', "read_file"),
        ("[TOOL_CALLS]", ""),
    ],
)
def test_malformed_mistral_calls_are_reported_not_dropped(raw: str, name: str) -> None:
    for pieces in [[raw], list(raw)]:
        from kcode.backends.llama.toolcall_formats import ToolCallStreamParser

        parser = ToolCallStreamParser(MISTRAL, TOOLS)
        deltas = [d for p in pieces for d in parser.feed(p)] + parser.finish()
        calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
        assert len(calls) == 1 and calls[0].name == name, (raw, deltas)
        assert not any(isinstance(d, TextChunk) and "[TOOL_CALLS]" in d.text for d in deltas)


def test_mistral_templates_are_detected() -> None:
    assert detect_format("{{- '[TOOL_CALLS]' + tool_calls|tojson }}") is MISTRAL


def test_content_filter_reads_mistral_markup_in_auto_and_by_name() -> None:
    raw = 'On it.\n[TOOL_CALLS]read_file[ARGS]{"path": "a.py"}'
    for setting in ("auto", "mistral"):
        for pieces in [[raw], list(raw)]:
            reader = ContentToolCalls(setting, TOOLS)
            deltas = [d for p in pieces for d in reader.read([TextChunk(p)])]
            tail, reason = reader.finish("stop")
            deltas += tail
            assert reason == "tool_calls"
            calls = [(d.name, d.arguments) for d in deltas if isinstance(d, ToolCallChunk)]
            text = "".join(d.text for d in deltas if isinstance(d, TextChunk))
            assert calls == [("read_file", '{"path": "a.py"}')], (setting, deltas)
            assert text.strip() == "On it.", (setting, text)


@needs_llama
@pytest.mark.llama
def test_tool_format_mistral_forces_and_reads_a_call_through_a_real_vocab() -> None:
    """tool_format reaches the local backend: SmolLM2, told its calls are Mistral's, is held to
    `[TOOL_CALLS]NAME[ARGS]{...}` by the grammar and the call comes back parsed."""
    backend = LlamaCppBackend(smollm2(), n_threads=1, n_ctx=2048, tool_format="mistral")
    messages = [Message.system("You edit files."), Message.user("Read a.py")]

    async def run() -> list[Delta]:
        try:
            options = BackendOptions(tool_choice="required", temperature=0.0, max_tokens=60)
            return [d async for d in backend.stream(messages, TOOLS[:1], options)]
        finally:
            await backend.aclose()

    deltas = asyncio.run(run())
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert [c.name for c in calls] == ["read_file"], deltas
    assert isinstance(json.loads(calls[0].arguments)["path"], str)
    assert not any(isinstance(d, TextChunk) and "[TOOL_CALLS]" in d.text for d in deltas)
