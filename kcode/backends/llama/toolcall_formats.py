"""Tool-call formats of local models, parsed while the text streams.

A local model writes its tool calls as plain text (or special tokens rendered as text) in a format
its chat template teaches it. `detect_format` picks the format from the template source; a
`ToolCallStreamParser` turns the generated text, fed in arbitrary pieces, into the backend deltas:
text streams as soon as it cannot be the start of a marker, `<think>` blocks become reasoning, and
each finished call becomes one `ToolCallChunk` with complete JSON arguments. A call whose body
cannot be parsed still becomes a `ToolCallChunk`, carrying the raw body as its (invalid) arguments,
so the loop can report the mistake back to the model instead of losing it.

Formats, with the shapes real models write besides the textbook one:
- kimi:        <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX
               <|tool_call_argument_begin|>{json}<|tool_call_end|><|tool_calls_section_end|>
               K2 Thinking / K2.5 may open the section inside a `<think>` they never close: the
               section ends the reasoning (as vLLM's Kimi K2 reasoning parser does).
- hermes:      <tool_call>{"name": ..., "arguments": {...}}</tool_call>   (Hermes, Qwen2.5, Qwen3)
- qwen3_coder: <tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>
               or the `<function=...>` block alone, as vLLM, SGLang and llama.cpp accept.
- llama3:      {"name": ..., "parameters": {...}} opening the answer, or after <|python_tag|>;
               several calls (separated by `;` or by more <|python_tag|>s), then maybe prose.
- mistral:     [TOOL_CALLS][{"name": ..., "arguments": {...}}]  or  [TOOL_CALLS]NAME[ARGS]{...}
               (toolcall_mistral.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kcode.backends.base import Delta, ReasoningChunk, TextChunk, ToolCallChunk, ToolSpec
from kcode.backends.llama.output_guard import held_back_length
from kcode.backends.llama.toolcall_bodies import (
    KIMI_ARGUMENT_BEGIN,
    BodyParser,
    ParsedCall,
    convert_parameter_value,
    json_object_end,
    llama3_call,
    parse_hermes_body,
    parse_kimi_body,
    parse_llama3_body,
    parse_qwen3_coder_body,
)
from kcode.backends.llama.toolcall_mistral import MISTRAL_CALLS, read_mistral_calls
from kcode.safety.json_input import MAX_ARGUMENT_DEPTH, loads_json

__all__ = [
    "FORMATS",
    "HERMES",
    "KIMI",
    "KIMI_ARGUMENT_BEGIN",
    "LLAMA3",
    "MISTRAL",
    "NO_CALLS",
    "QWEN3_CODER",
    "ParsedCall",
    "ToolCallFormat",
    "ToolCallStreamParser",
    "convert_parameter_value",
    "detect_format",
    "parse_complete",
]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
KIMI_SECTION_BEGIN = "<|tool_calls_section_begin|>"
KIMI_SECTION_END = "<|tool_calls_section_end|>"
KIMI_CALL_BEGIN = "<|tool_call_begin|>"
KIMI_CALL_END = "<|tool_call_end|>"
PYTHON_TAG = "<|python_tag|>"
# Kimi K2 variants of the section markers that vLLM also accepts.
_KIMI_SECTION_VARIANTS = ("<|tool_call_section_begin|>", "<|tool_call_section_end|>")


CallReader = Callable[[str, bool, Mapping[str, ToolSpec]], tuple[list[ParsedCall], int] | None]


@dataclass(frozen=True)
class ToolCallFormat:
    name: str
    call_open: str | None
    call_close: str | None  # None: what follows is JSON calls (Llama 3's <|python_tag|>)
    parse_body: BodyParser
    dropped_markers: tuple[str, ...] = ()
    # Llama 3 answers a tool call with a bare JSON object opening the answer.
    bare_json_call: bool = False
    # Markers that end an unclosed <think> block: the model went on to call a tool.
    reasoning_enders: tuple[str, ...] = ()
    # Calls that may come without `call_open`: (opening marker kept in the body, closing marker).
    bare_calls: tuple[tuple[str, str], ...] = ()
    # Calls closed by nothing but their own end (Mistral): reads (text after `call_open`, final,
    # tools) -> (calls, characters consumed), or None to wait for more text.
    read_calls: CallReader | None = None


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


KIMI = ToolCallFormat(
    "kimi",
    KIMI_CALL_BEGIN,
    KIMI_CALL_END,
    parse_kimi_body,
    (KIMI_SECTION_BEGIN, KIMI_SECTION_END, *_KIMI_SECTION_VARIANTS),
    reasoning_enders=(KIMI_SECTION_BEGIN, _KIMI_SECTION_VARIANTS[0], KIMI_CALL_BEGIN),
)
HERMES = ToolCallFormat("hermes", "<tool_call>", "</tool_call>", parse_hermes_body)
QWEN3_CODER = ToolCallFormat(
    "qwen3_coder",
    "<tool_call>",
    "</tool_call>",
    parse_qwen3_coder_body,
    ("</tool_call>",),  # left behind by a call that opened with <function= alone
    bare_calls=(("<function=", "</function>"),),
)
LLAMA3 = ToolCallFormat("llama3", PYTHON_TAG, None, parse_llama3_body, bare_json_call=True)
MISTRAL = ToolCallFormat(
    "mistral", MISTRAL_CALLS, None, parse_hermes_body, read_calls=read_mistral_calls
)
FORMATS = {f.name: f for f in (KIMI, HERMES, QWEN3_CODER, LLAMA3, MISTRAL)}
# tool_format = "none": no marker opens a call, the text passes verbatim.
NO_CALLS = ToolCallFormat("none", None, None, parse_hermes_body)


def detect_format(template_source: str) -> ToolCallFormat:
    """The format a chat template teaches its model; Hermes when the template shows none."""
    if KIMI_CALL_BEGIN in template_source or KIMI_SECTION_BEGIN in template_source:
        return KIMI
    if MISTRAL_CALLS in template_source:
        return MISTRAL
    if "<function=" in template_source and "<parameter=" in template_source:
        return QWEN3_CODER
    if "<tool_call>" in template_source:
        return HERMES
    if PYTHON_TAG in template_source or (
        "<|start_header_id|>" in template_source and '"parameters"' in template_source
    ):
        return LLAMA3
    return HERMES


def _first_hit(buffer: str, markers: Sequence[str]) -> tuple[int, str] | None:
    hits = [(buffer.find(m), m) for m in markers]
    found = [(index, marker) for index, marker in hits if index >= 0]
    return min(found, key=lambda hit: (hit[0], -len(hit[1]))) if found else None


class ToolCallStreamParser:
    """Feed generated text in any pieces; get text, reasoning and finished tool calls back."""

    def __init__(
        self,
        tool_format: ToolCallFormat,
        tools: Sequence[ToolSpec] = (),
        *,
        starts_in_reasoning: bool = False,
    ) -> None:
        self.format = tool_format
        self._tools = {t.name: t for t in tools}
        self._state = "reasoning" if starts_in_reasoning else "text"
        self._buffer = ""
        self._answer_started = False  # no visible text yet: <think> and bare JSON count only here
        self._strip_leading = True
        self._call_close = ""  # the marker that ends the call being read
        self._call_prefix = ""  # kept opening marker of a bare call (`<function=`)
        self._json_by_tag = False  # JSON calls were announced by <|python_tag|>
        self._json_calls = 0  # calls read in the current JSON-calls stretch
        self._reasoning_cut = False  # reasoning ended by a call, not by </think>
        self.calls_emitted = 0

    def feed(self, text: str) -> list[Delta]:
        self._buffer += text
        out: list[Delta] = []
        while self._step(out, final=False):
            pass
        return out

    def finish(self) -> list[Delta]:
        out: list[Delta] = []
        while self._step(out, final=True):
            pass
        return out

    # One state transition; True when the buffer may hold more to process.
    def _step(self, out: list[Delta], *, final: bool) -> bool:
        if self._state == "reasoning":
            return self._step_reasoning(out, final)
        if self._state == "call":
            return self._step_call(out, final)
        if self._state == "json_calls":
            return self._step_json_calls(out, final)
        if self._state == "read_calls":
            return self._step_read_calls(out, final)
        if self._state == "rest_is_call":
            if final:
                body, self._buffer = self._buffer, ""
                self._emit_calls(out, body)
                self._state = "text"
            return False
        return self._step_text(out, final)

    def _step_reasoning(self, out: list[Delta], final: bool) -> bool:
        markers = (THINK_CLOSE, *self.format.reasoning_enders)
        hit = _first_hit(self._buffer, markers)
        if hit is not None:
            index, marker = hit
            if index:
                out.append(ReasoningChunk(self._buffer[:index]))
            if marker == THINK_CLOSE:
                self._buffer = self._buffer[index + len(THINK_CLOSE) :]
            else:  # a call: the reasoning is over, the marker is read as text
                self._buffer = self._buffer[index:]
                self._reasoning_cut = True
            self._state, self._strip_leading = "text", True
            return True
        keep = 0 if final else held_back_length(self._buffer, markers)
        if len(self._buffer) > keep:
            out.append(ReasoningChunk(self._buffer[: len(self._buffer) - keep]))
            self._buffer = self._buffer[len(self._buffer) - keep :]
        return False

    def _text_markers(self) -> list[str]:
        markers = [*self.format.dropped_markers, *(o for o, _ in self.format.bare_calls)]
        if self.format.call_open:
            markers.append(self.format.call_open)
        if self._reasoning_cut:
            markers.append(THINK_CLOSE)  # a late </think> after the call is not text
        return markers

    def _step_text(self, out: list[Delta], final: bool) -> bool:
        if self._strip_leading:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return False
            self._strip_leading = False
        if not self._answer_started:  # <think> and a bare JSON call only open the answer
            if self._buffer.startswith(THINK_OPEN):
                self._buffer, self._state = self._buffer[len(THINK_OPEN) :], "reasoning"
                return True
            if not final and THINK_OPEN.startswith(self._buffer):
                return False
            if self.format.bare_json_call and self._buffer[:1] == "{":
                self._enter_json_calls(by_tag=False)
                return True
        markers = self._text_markers()
        hit = _first_hit(self._buffer, markers)
        if hit is None:
            keep = 0 if final else held_back_length(self._buffer, markers)
            self._emit_text(out, self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep :]
            return False
        index, marker = hit
        self._emit_text(out, self._buffer[:index])
        self._buffer = self._buffer[index + len(marker) :]
        bare_close = dict(self.format.bare_calls).get(marker)
        call_close = self.format.call_close
        if marker == self.format.call_open and self.format.read_calls is not None:
            self._state = "read_calls"
        elif marker == self.format.call_open and call_close is None:
            self._enter_json_calls(by_tag=True)
        elif marker == self.format.call_open and call_close is not None:
            self._state, self._call_close, self._call_prefix = "call", call_close, ""
        elif bare_close is not None:
            self._state, self._call_close, self._call_prefix = "call", bare_close, marker
        else:
            self._strip_leading = True
        return True

    def _emit_text(self, out: list[Delta], text: str) -> None:
        if text:
            out.append(TextChunk(text))
            self._answer_started = True

    def _step_call(self, out: list[Delta], final: bool) -> bool:
        end = self._buffer.find(self._call_close)
        if end < 0:
            if final:  # the answer stopped inside a call: parse what is there
                body, self._buffer = self._buffer, ""
                self._emit_calls(out, self._call_prefix + body)
            return False
        body = self._buffer[:end]
        self._buffer = self._buffer[end + len(self._call_close) :]
        self._emit_calls(out, self._call_prefix + body)
        self._state, self._strip_leading = "text", True
        return True

    def _step_read_calls(self, out: list[Delta], final: bool) -> bool:
        assert self.format.read_calls is not None
        result = self.format.read_calls(self._buffer, final, self._tools)
        if result is None:
            return False
        calls, consumed = result
        for call in calls:
            self._emit_call(out, call)
        self._buffer = self._buffer[consumed:]
        self._state, self._strip_leading = "text", True
        return True

    def _enter_json_calls(self, *, by_tag: bool) -> None:
        self._state, self._json_by_tag, self._json_calls = "json_calls", by_tag, 0

    def _step_json_calls(self, out: list[Delta], final: bool) -> bool:
        """Llama 3: JSON calls one after another, separated by blanks, `;`, `,` or more
        <|python_tag|>s; anything else after them is prose."""
        self._buffer = self._buffer.lstrip(" \t\r\n;,")
        if self._buffer.startswith(PYTHON_TAG):
            self._buffer = self._buffer[len(PYTHON_TAG) :]
            self._json_by_tag = True
            return True
        if not final and (not self._buffer or PYTHON_TAG.startswith(self._buffer)):
            return False  # wait: nothing yet, or maybe the start of another <|python_tag|>
        if not self._buffer:
            self._state = "text"
            return False
        if self._buffer[0] != "{":
            if self._json_calls:  # prose after the calls
                self._state, self._answer_started = "text", True
            else:  # <|python_tag|> then no JSON (a built-in tool's code): one malformed call
                self._state = "rest_is_call"
            return True
        end = json_object_end(self._buffer)
        if end < 0 and not final:
            return False
        body = self._buffer if end < 0 else self._buffer[:end]
        self._buffer = "" if end < 0 else self._buffer[end:]
        try:
            value, decoded = loads_json(body, MAX_ARGUMENT_DEPTH), True
        except ValueError:
            value, decoded = None, False
        call = llama3_call(value, self._tools) if decoded else None
        if call is not None:
            self._emit_call(out, call)
            self._json_calls += 1
            return True
        if self._json_by_tag or self._json_calls or (not decoded and '"name"' in body):
            self._emit_calls(out, body)  # meant as a call: reported as a malformed one
            self._json_calls += 1
            return True
        self._state = "text"  # an answer that happens to be JSON
        self._emit_text(out, body)
        return True

    def _emit_calls(self, out: list[Delta], body: str) -> None:
        for call in self.format.parse_body(body, self._tools):
            self._emit_call(out, call)

    def _emit_call(self, out: list[Delta], call: ParsedCall) -> None:
        arguments = (
            json.dumps(call.arguments, ensure_ascii=False)
            if call.arguments is not None
            else call.raw
        )
        out.append(
            ToolCallChunk(self.calls_emitted, call.call_id or _new_call_id(), call.name, arguments)
        )
        self.calls_emitted += 1
        self._answer_started = True


def parse_complete(
    text: str, tool_format: ToolCallFormat, tools: Sequence[ToolSpec] = ()
) -> list[Delta]:
    """Parse a whole answer at once (tests, non-streaming callers)."""
    parser = ToolCallStreamParser(tool_format, tools)
    return parser.feed(text) + parser.finish()


# Markers that can only open a tool call, with the format that reads what follows. The OpenAI
# backend looks for them in `content` a server left unparsed (openai/content_calls.py). `<tool_call>`
# opens Hermes JSON and Qwen3-Coder XML alike: the reader picks by the body's first character.
CALL_START_MARKERS: dict[str, ToolCallFormat] = {
    "<tool_call>": HERMES,
    "<function=": QWEN3_CODER,
    KIMI_SECTION_BEGIN: KIMI,
    _KIMI_SECTION_VARIANTS[0]: KIMI,
    KIMI_CALL_BEGIN: KIMI,
    PYTHON_TAG: LLAMA3,
    MISTRAL_CALLS: MISTRAL,
}
