"""Tool-call markup in an OpenAI-compatible server's `content` (kcode/backends/openai/content_calls.py).

The filter is fed the deltas the chunk reader makes, split at every possible place; the calls it
finds must be the ones the local backend's parser finds in the same text (one implementation)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kcode.backends.base import Delta, ReasoningChunk, TextChunk, ToolCallChunk, ToolSpec
from kcode.backends.llama.toolcall_formats import (
    CALL_START_MARKERS,
    HERMES,
    KIMI,
    LLAMA3,
    QWEN3_CODER,
    ToolCallFormat,
    parse_complete,
)
from kcode.backends.openai.content_calls import ContentToolCalls, check_tool_format

READ = ToolSpec(
    "read_file",
    "Read a file",
    {
        "type": "object",
        "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["path"],
    },
)
TOOLS = (READ,)

HERMES_CALL = '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>'
QWEN_CALL = (
    "<tool_call>\n<function=read_file>\n<parameter=path>\na.py\n</parameter>\n"
    "<parameter=limit>\n5\n</parameter>\n</function>\n</tool_call>"
)
QWEN_BARE_CALL = "<function=read_file>\n<parameter=path>\na.py\n</parameter>\n</function>"
KIMI_CALL = (
    "<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0"
    '<|tool_call_argument_begin|>{"path": "a.py"}<|tool_call_end|><|tool_calls_section_end|>'
)
LLAMA_CALL = '<|python_tag|>{"name": "read_file", "parameters": {"path": "a.py"}}'

# (prose before the markup, the markup and what follows it, the format reading it, text shown)
CASES: dict[str, tuple[str, str, ToolCallFormat, str]] = {
    "hermes": ("Let me look.\n", HERMES_CALL, HERMES, "Let me look.\n"),
    "hermes-two-calls-then-prose": (
        "",
        f"{HERMES_CALL}\n{HERMES_CALL}\nThat is all.",
        HERMES,
        "That is all.",
    ),
    "qwen3-coder": ("Sure.\n", f"{QWEN_CALL}\nDone.", QWEN3_CODER, "Sure.\nDone."),
    "qwen3-coder-bare-function": ("  ", QWEN_BARE_CALL, QWEN3_CODER, "  "),
    "kimi": ("Reading it.\n", KIMI_CALL, KIMI, "Reading it.\n"),
    "llama3-python-tag": ("", LLAMA_CALL, LLAMA3, ""),
}


def run(content_pieces: list[str], tool_format: str = "auto", tools: Any = TOOLS) -> list[Delta]:
    markup = ContentToolCalls(tool_format, tools)
    out: list[Delta] = []
    for piece in content_pieces:
        out.extend(markup.read([TextChunk(piece)]))
    tail, reason = markup.finish("stop")
    return [*out, *tail, ReasoningChunk(f"finish={reason}")]  # the reason, kept for asserts


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextChunk))


def calls_of(deltas: list[Delta]) -> list[tuple[int, str | None, Any]]:
    return [
        (d.index, d.name, json.loads(d.arguments)) for d in deltas if isinstance(d, ToolCallChunk)
    ]


def finish_of(deltas: list[Delta]) -> str:
    last = deltas[-1]
    assert isinstance(last, ReasoningChunk)
    return last.text.removeprefix("finish=")


def splits(text: str) -> list[list[str]]:
    """Every way to cut the text in two, plus one character at a time."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_markup_becomes_the_calls_the_local_parser_finds_at_every_split(case: str) -> None:
    prose, markup, tool_format, shown = CASES[case]
    content = prose + markup
    # The reference: the local backend's parser on the markup and what follows it.
    expected = calls_of(parse_complete(markup, tool_format, TOOLS))
    assert expected
    for pieces in splits(content):
        deltas = run(pieces)
        assert text_of(deltas) == shown, pieces
        assert calls_of(deltas) == expected, pieces
        assert finish_of(deltas) == "tool_calls"


def test_qwen3_coder_values_follow_the_tool_schema() -> None:
    deltas = run([QWEN_CALL])
    assert calls_of(deltas) == [(0, "read_file", {"path": "a.py", "limit": 5})]


ORDINARY = (
    "if a < b and c<d:\n"
    "    return x <= 3\n"
    "<b>bold</b> and <tool> and <|im_end|> and <functional>\n"
    "<t\n"
    "Use `<tool_call>` tags, or write <tool_call> mid-line; <|python_tag|> too.\n"
    "> <tool_call>{}</tool_call>\n"
    "```xml\n"
    '<tool_call>\n{"name": "read_file", "arguments": {"path": "x"}}\n</tool_call>\n'
    "```\n"
    "~~~\n<function=read_file>\n~~~\n"
    "The end <"
)


def test_ordinary_text_with_angle_brackets_and_quoted_markup_is_unchanged() -> None:
    for pieces in splits(ORDINARY):
        deltas = run(pieces)
        assert text_of(deltas) == ORDINARY
        assert calls_of(deltas) == []
        assert finish_of(deltas) == "stop"


def test_text_is_held_back_only_at_a_line_start_that_may_become_a_marker() -> None:
    """No added latency: everything streams at once except a possible marker prefix at a
    line start, which waits for the next chunk."""
    markers = list(CALL_START_MARKERS)
    markup = ContentToolCalls("auto", TOOLS)
    sent, shown = "", ""
    for char in ORDINARY:
        sent += char
        shown += text_of(markup.read([TextChunk(char)]))
        held = sent[len(shown) :]
        assert sent.startswith(shown)
        if held:
            assert sent[: len(shown)].endswith("\n") or not shown
            assert any(m.startswith(held.lstrip(" \t")) for m in markers), held
    assert text_of(markup.finish("stop")[0]) == sent[len(shown) :]


def test_a_marker_after_a_closed_fence_is_a_call_again() -> None:
    content = f"```\n{HERMES_CALL}\n```\nNow for real:\n{HERMES_CALL}"
    deltas = run([content])
    assert text_of(deltas) == f"```\n{HERMES_CALL}\n```\nNow for real:\n"
    assert calls_of(deltas) == [(0, "read_file", {"path": "a.py"})]


def test_a_fence_with_an_info_string_does_not_close_the_block() -> None:
    content = f"```\ntext\n```python\n{HERMES_CALL}\n```\n"
    assert calls_of(run([content])) == []


def test_no_tools_offered_means_content_is_verbatim() -> None:
    deltas = run([HERMES_CALL], tools=())
    assert text_of(deltas) == HERMES_CALL and calls_of(deltas) == []


def test_tool_format_none_passes_markup_verbatim() -> None:
    deltas = run(["Hi\n", HERMES_CALL], tool_format="none")
    assert text_of(deltas) == "Hi\n" + HERMES_CALL and calls_of(deltas) == []


def test_a_named_format_reads_all_content_with_that_parser() -> None:
    # Mid-line markers and <think> count under a named format (the local backend's rules).
    deltas = run(["<think>plan</think>Sure: ", HERMES_CALL], tool_format="hermes")
    assert [d.text for d in deltas if isinstance(d, ReasoningChunk)][0] == "plan"
    assert text_of(deltas) == "Sure: "
    assert calls_of(deltas) == [(0, "read_file", {"path": "a.py"})]
    # Llama 3's bare JSON call is recognised only when the format is named.
    bare = '{"name": "read_file", "parameters": {"path": "a.py"}}'
    assert calls_of(run([bare], tool_format="llama3")) == [(0, "read_file", {"path": "a.py"})]
    assert text_of(run([bare])) == bare
    assert calls_of(run([bare], tool_format="qwen3_coder")) == []


def test_native_tool_calls_win_over_markup_in_content() -> None:
    native = ToolCallChunk(0, "call_1", "grep", '{"pattern": "x"}')
    markup = ContentToolCalls("auto", TOOLS)
    out = markup.read([TextChunk(f"Hi\n{HERMES_CALL}")]) + markup.read([native])
    out += markup.read([TextChunk(f"\n{HERMES_CALL}")])  # after a native call: verbatim
    tail, reason = markup.finish("tool_calls")
    out += tail
    assert [d for d in out if isinstance(d, ToolCallChunk)] == [native]
    assert text_of(out) == f"Hi\n\n{HERMES_CALL}"
    assert reason == "tool_calls"


def test_a_reply_cut_inside_a_call_still_reports_it() -> None:
    deltas = run(['<tool_call>\n{"name": "read_file", "arguments": {"path"'])
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert len(calls) == 1 and calls[0].name == "read_file"  # malformed: the loop tells the model
    assert text_of(deltas) == ""


@pytest.mark.parametrize("value", ["auto", "NONE", "qwen3_coder", "Qwen3-Coder", "llama3"])
def test_tool_format_spellings(value: str) -> None:
    assert check_tool_format(value) in ("auto", "none", "qwen3-coder", "llama3")


def test_an_unknown_tool_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="tool_format 'xml' is not one of auto, none, hermes"):
        check_tool_format("xml")


def test_calls_drafted_inside_an_opening_think_block_are_text() -> None:
    content = f"\n<think>\nI could do:\n{HERMES_CALL}\nyes.</think>\n\n{HERMES_CALL}"
    for pieces in splits(content):
        deltas = run(pieces)
        assert text_of(deltas) == f"\n<think>\nI could do:\n{HERMES_CALL}\nyes.</think>\n\n"
        assert calls_of(deltas) == [(0, "read_file", {"path": "a.py"})]
    # A <think> that does not open the message is ordinary text: a marker after it counts.
    assert calls_of(run([f"Hi <think>\n{HERMES_CALL}"])) == [(0, "read_file", {"path": "a.py"})]


def test_a_thinking_block_right_before_the_call_on_the_same_line() -> None:
    deltas = run(["<think>x</think>", HERMES_CALL])
    assert text_of(deltas) == "<think>x</think>"
    assert calls_of(deltas) == [(0, "read_file", {"path": "a.py"})]
