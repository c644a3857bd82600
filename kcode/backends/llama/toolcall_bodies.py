"""Parse the body of one tool call, in each local model's format (see toolcall_formats.py).

A body that cannot be parsed still gives a `ParsedCall`, with `arguments` None and the raw text,
so the loop can tell the model what was wrong instead of losing the call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kcode.backends.base import ToolSpec
from kcode.safety.json_input import MAX_ARGUMENT_DEPTH, loads_json

KIMI_ARGUMENT_BEGIN = "<|tool_call_argument_begin|>"


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any] | None  # None when the body was malformed
    raw: str
    call_id: str | None = None


BodyParser = Callable[[str, Mapping[str, ToolSpec]], list[ParsedCall]]


def _decode_arguments(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):  # some models double-encode the arguments
        try:
            decoded = loads_json(value, MAX_ARGUMENT_DEPTH)
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
        arguments = _decode_arguments(loads_json(argument_text, MAX_ARGUMENT_DEPTH))
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
                return loads_json(stripped, MAX_ARGUMENT_DEPTH)
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


def llama3_call(value: Any, tools: Mapping[str, ToolSpec]) -> ParsedCall | None:
    """A decoded JSON value as a Llama 3 call, or None when it is just JSON: it needs a name and
    its arguments (`parameters`, or `arguments` as some fine-tunes write), or a known tool name."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    keys = [k for k in ("parameters", "arguments") if k in value]
    if not keys and value["name"] not in tools:
        return None
    raw = value[keys[0]] if keys else {}
    return ParsedCall(value["name"], _decode_arguments(raw), json.dumps(raw))


def json_object_end(text: str) -> int:
    """Where the JSON object at the start of `text` ends (index after its `}`), -1 if it does not
    end in `text` yet. Only brackets and strings are tracked: decoding is left to `json`."""
    depth = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth <= 0:
                return index + 1
    return -1
