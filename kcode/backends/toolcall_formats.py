"""Tool-call formats of local models, parsed while the text streams.

A local model writes its tool calls as plain text (or special tokens rendered as text) in a format
its chat template teaches it. `detect_format` picks the format from the template source; a
`ToolCallStreamParser` turns the generated text, fed in arbitrary pieces, into the backend deltas:
text streams as soon as it cannot be the start of a marker, `<think>` blocks become reasoning, and
each finished call becomes one `ToolCallChunk` with complete JSON arguments. A call whose body
cannot be parsed still becomes a `ToolCallChunk`, carrying the raw body as its (invalid) arguments,
so the loop can report the mistake back to the model instead of losing it.

Formats:
- kimi:        <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX
               <|tool_call_argument_begin|>{json}<|tool_call_end|><|tool_calls_section_end|>
- hermes:      <tool_call>{"name": ..., "arguments": {...}}</tool_call>   (Hermes, Qwen2.5, Qwen3)
- qwen3_coder: <tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>
- llama3:      {"name": ..., "parameters": {...}} as the whole answer, or after <|python_tag|>
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kcode.backends.base import Delta, ReasoningChunk, TextChunk, ToolCallChunk, ToolSpec

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
KIMI_SECTION_BEGIN = "<|tool_calls_section_begin|>"
KIMI_SECTION_END = "<|tool_calls_section_end|>"
KIMI_CALL_BEGIN = "<|tool_call_begin|>"
KIMI_ARGUMENT_BEGIN = "<|tool_call_argument_begin|>"
KIMI_CALL_END = "<|tool_call_end|>"
PYTHON_TAG = "<|python_tag|>"


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any] | None  # None when the body was malformed
    raw: str
    call_id: str | None = None


BodyParser = Callable[[str, Mapping[str, ToolSpec]], list[ParsedCall]]


@dataclass(frozen=True)
class ToolCallFormat:
    name: str
    call_open: str | None
    call_close: str | None  # None: the call runs to the end of the answer
    parse_body: BodyParser
    dropped_markers: tuple[str, ...] = ()
    # Llama 3 answers a tool call with a bare JSON object: the whole answer is then the call.
    bare_json_call: bool = False


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


def _decode_arguments(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):  # some models double-encode the arguments
        try:
            decoded = json.loads(value)
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None
    return {} if value is None else None


def _name_hint(raw: str) -> str:
    found = re.search(r'"name"\s*:\s*"([^"]+)"', raw)
    return found.group(1) if found else ""


def _parse_json_objects(body: str) -> list[Any] | None:
    """One or more JSON values separated by whitespace, `;` or `,`; None if anything else is there."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while True:
        while position < len(body) and body[position] in " \t\r\n;,":
            position += 1
        if position >= len(body):
            return values
        try:
            value, position = decoder.raw_decode(body, position)
        except ValueError:
            return None
        values.append(value)


def _calls_from_json(body: str, argument_keys: tuple[str, ...]) -> list[ParsedCall]:
    values = _parse_json_objects(body)
    if not values:
        return [ParsedCall(_name_hint(body), None, body.strip())]
    calls: list[ParsedCall] = []
    for value in values:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            calls.append(ParsedCall(_name_hint(body), None, json.dumps(value)))
            continue
        raw_arguments = next((value[k] for k in argument_keys if k in value), None)
        arguments = _decode_arguments(raw_arguments)
        calls.append(ParsedCall(value["name"], arguments, json.dumps(raw_arguments)))
    return calls


def parse_hermes_body(body: str, tools: Mapping[str, ToolSpec]) -> list[ParsedCall]:
    return _calls_from_json(body, ("arguments", "parameters"))


def parse_llama3_body(body: str, tools: Mapping[str, ToolSpec]) -> list[ParsedCall]:
    return _calls_from_json(body, ("parameters", "arguments"))


def parse_kimi_body(body: str, tools: Mapping[str, ToolSpec]) -> list[ParsedCall]:
    head, separator, argument_text = body.partition(KIMI_ARGUMENT_BEGIN)
    call_id = head.strip()
    # "functions.read_file:3" -> "read_file"
    name = call_id.split(".", 1)[1] if call_id.startswith("functions.") else call_id
    name = name.rsplit(":", 1)[0] if ":" in name else name
    if not separator:
        return [ParsedCall(name, None, body.strip(), call_id or None)]
    try:
        arguments = _decode_arguments(json.loads(argument_text))
    except ValueError:
        arguments = None
    return [ParsedCall(name, arguments, argument_text.strip(), call_id or None)]


_FUNCTION_RE = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|$)", re.DOTALL)
_PARAMETER_RE = re.compile(
    r"<parameter=([^>\s]+)>(.*?)(?:</parameter>|(?=<parameter=)|$)", re.DOTALL
)


def _schema_types(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    types: list[str] = []
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        if isinstance(option, Mapping):
            types.extend(_schema_types(option))
    if "enum" in schema and not types:
        types = ["string"]
    return types


def convert_parameter_value(text: str, schema: Mapping[str, Any] | None) -> Any:
    """Qwen3-Coder writes every value as text; the tool's schema says what it should become."""
    types = _schema_types(schema or {})
    if "null" in types and text.strip() == "null":
        return None
    if types == ["string"] or (types and types[0] == "string" and "null" in types):
        return text
    stripped = text.strip()
    for kind in types or ["json"]:
        if kind == "boolean" and stripped.lower() in ("true", "false"):
            return stripped.lower() == "true"
        if kind == "integer" and re.fullmatch(r"-?\d+", stripped):
            return int(stripped)
        if kind == "number" and re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", stripped):
            number = float(stripped)
            return int(number) if number.is_integer() and "." not in stripped else number
        if kind in ("object", "array", "json"):
            try:
                return json.loads(stripped)
            except ValueError:
                continue
    return text


def _strip_one_newline(value: str) -> str:
    value = value[1:] if value.startswith("\n") else value
    return value[:-1] if value.endswith("\n") else value


def parse_qwen3_coder_body(body: str, tools: Mapping[str, ToolSpec]) -> list[ParsedCall]:
    calls: list[ParsedCall] = []
    for function in _FUNCTION_RE.finditer(body):
        name, inner = function.group(1), function.group(2)
        spec = tools.get(name)
        properties = (spec.parameters.get("properties") or {}) if spec else {}
        arguments = {
            parameter.group(1): convert_parameter_value(
                _strip_one_newline(parameter.group(2)), properties.get(parameter.group(1))
            )
            for parameter in _PARAMETER_RE.finditer(inner)
        }
        calls.append(ParsedCall(name, arguments, inner.strip()))
    if not calls:
        # Some Qwen3-Coder quantisations fall back to the Hermes JSON body.
        return parse_hermes_body(body, tools)
    return calls


KIMI = ToolCallFormat(
    "kimi", KIMI_CALL_BEGIN, KIMI_CALL_END, parse_kimi_body, (KIMI_SECTION_BEGIN, KIMI_SECTION_END)
)
HERMES = ToolCallFormat("hermes", "<tool_call>", "</tool_call>", parse_hermes_body)
QWEN3_CODER = ToolCallFormat("qwen3_coder", "<tool_call>", "</tool_call>", parse_qwen3_coder_body)
LLAMA3 = ToolCallFormat("llama3", PYTHON_TAG, None, parse_llama3_body, bare_json_call=True)
FORMATS = {f.name: f for f in (KIMI, HERMES, QWEN3_CODER, LLAMA3)}


def detect_format(template_source: str) -> ToolCallFormat:
    """The format a chat template teaches its model; Hermes when the template shows none."""
    if KIMI_CALL_BEGIN in template_source or KIMI_SECTION_BEGIN in template_source:
        return KIMI
    if "<function=" in template_source and "<parameter=" in template_source:
        return QWEN3_CODER
    if "<tool_call>" in template_source:
        return HERMES
    if PYTHON_TAG in template_source or (
        "<|start_header_id|>" in template_source and '"parameters"' in template_source
    ):
        return LLAMA3
    return HERMES


def _held_back_length(buffer: str, markers: Sequence[str]) -> int:
    """Length of the longest buffer suffix that could still grow into one of the markers."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(buffer)), longest, -1):
            if buffer.endswith(marker[:size]):
                longest = size
                break
    return longest


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
        self._bare_json = False
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
        if self._state == "rest_is_call":
            if final:
                self._emit_rest_as_call(out)
            return False
        return self._step_text(out, final)

    def _step_reasoning(self, out: list[Delta], final: bool) -> bool:
        end = self._buffer.find(THINK_CLOSE)
        if end >= 0:
            if end:
                out.append(ReasoningChunk(self._buffer[:end]))
            self._buffer = self._buffer[end + len(THINK_CLOSE) :]
            self._state, self._strip_leading = "text", True
            return True
        keep = 0 if final else _held_back_length(self._buffer, (THINK_CLOSE,))
        if len(self._buffer) > keep:
            out.append(ReasoningChunk(self._buffer[: len(self._buffer) - keep]))
            self._buffer = self._buffer[len(self._buffer) - keep :]
        return False

    def _text_markers(self) -> list[str]:
        markers = [*self.format.dropped_markers]
        if self.format.call_open:
            markers.append(self.format.call_open)
        if not self._answer_started:
            markers.append(THINK_OPEN)
        return markers

    def _step_text(self, out: list[Delta], final: bool) -> bool:
        if self._strip_leading:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return False
            self._strip_leading = False
        if self.format.bare_json_call and not self._answer_started and self._buffer[:1] == "{":
            self._state, self._bare_json = "rest_is_call", True
            return True
        markers = self._text_markers()
        found = [(self._buffer.find(m), m) for m in markers]
        hits = [(index, marker) for index, marker in found if index >= 0]
        if hits:
            index, marker = min(hits)
            self._emit_text(out, self._buffer[:index])
            self._buffer = self._buffer[index + len(marker) :]
            if marker == THINK_OPEN:
                self._state = "reasoning"
            elif marker == self.format.call_open:
                self._state = "call" if self.format.call_close else "rest_is_call"
            else:
                self._strip_leading = True
            return True
        keep = 0 if final else _held_back_length(self._buffer, markers)
        self._emit_text(out, self._buffer[: len(self._buffer) - keep])
        self._buffer = self._buffer[len(self._buffer) - keep :]
        return False

    def _emit_text(self, out: list[Delta], text: str) -> None:
        if text:
            out.append(TextChunk(text))
            self._answer_started = True

    def _step_call(self, out: list[Delta], final: bool) -> bool:
        assert self.format.call_close is not None
        end = self._buffer.find(self.format.call_close)
        if end < 0:
            if final:  # the answer stopped inside a call: parse what is there
                body, self._buffer = self._buffer, ""
                self._emit_calls(out, body, as_text_if_unparsed=False)
            return False
        body = self._buffer[:end]
        self._buffer = self._buffer[end + len(self.format.call_close) :]
        self._emit_calls(out, body, as_text_if_unparsed=False)
        self._state, self._strip_leading = "text", True
        return True

    def _emit_rest_as_call(self, out: list[Delta]) -> None:
        body, self._buffer = self._buffer, ""
        self._emit_calls(out, body, as_text_if_unparsed=self._bare_json)
        self._state = "text"

    def _emit_calls(self, out: list[Delta], body: str, *, as_text_if_unparsed: bool) -> None:
        calls = self.format.parse_body(body, self._tools)
        if as_text_if_unparsed and (not calls or any(c.arguments is None for c in calls)):
            self._emit_text(out, body)  # a JSON answer that is not a call is just an answer
            return
        for call in calls:
            arguments = (
                json.dumps(call.arguments, ensure_ascii=False)
                if call.arguments is not None
                else call.raw
            )
            out.append(
                ToolCallChunk(
                    self.calls_emitted, call.call_id or _new_call_id(), call.name, arguments
                )
            )
            self.calls_emitted += 1
            self._answer_started = True


def parse_complete(
    text: str, tool_format: ToolCallFormat, tools: Sequence[ToolSpec] = ()
) -> list[Delta]:
    """Parse a whole answer at once (tests, non-streaming callers)."""
    parser = ToolCallStreamParser(tool_format, tools)
    return parser.feed(text) + parser.finish()
