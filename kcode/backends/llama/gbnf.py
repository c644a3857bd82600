"""GBNF grammars that make a local model write a well-formed tool call.

Written here instead of using llama-cpp-python's JSON-schema converter because its string rule
admits raw control characters (a literal newline inside a JSON string), which breaks `json.loads`
on exactly the calls the grammar was meant to guarantee. This converter covers the schema subset
tools use (pydantic output included): object with required and optional properties, string,
integer, number, boolean, null, array, enum/const, anyOf/oneOf, type lists and local `$ref`s.
JSON is generated compact (no free whitespace) so a model cannot stall in endless blanks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kcode.backends.base import ToolSpec
from kcode.backends.llama.toolcall_formats import (
    KIMI_ARGUMENT_BEGIN,
    KIMI_CALL_BEGIN,
    KIMI_CALL_END,
    KIMI_SECTION_BEGIN,
    KIMI_SECTION_END,
    ToolCallFormat,
)

PRIMITIVE_RULES = {
    # No raw control characters (U+0000..U+001F) inside strings: they must be escaped in JSON.
    "json-char": r'[^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "json-string": r'"\"" json-char* "\""',
    "json-integer": r'"-"? ("0" | [1-9] [0-9]{0,17})',
    "json-number": r'json-integer ("." [0-9]{1,17})? ([eE] [-+]? [0-9]{1,3})?',
    "json-boolean": r'"true" | "false"',
    "json-null": r'"null"',
    "json-value": "json-object | json-array | json-string | json-number | json-boolean | json-null",
    "json-object": r'"{" (json-string ":" json-value ("," json-string ":" json-value)*)? "}"',
    "json-array": r'"[" (json-value ("," json-value)*)? "]"',
}


def gbnf_literal(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


class SchemaGrammar:
    """Collects named rules while converting schemas; `render` gives the grammar text."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._used_primitives: set[str] = set()
        self._definitions: Mapping[str, Any] = {}

    def _name(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "rule"
        name, counter = base, 1
        while name in self.rules or name in PRIMITIVE_RULES:
            counter += 1
            name = f"{base}-{counter}"
        return name

    def add(self, hint: str, body: str) -> str:
        name = self._name(hint)
        self.rules[name] = body
        return name

    def primitive(self, name: str) -> str:
        self._used_primitives.add(name)
        return name

    def value(self, schema: Any, hint: str, root: Mapping[str, Any] | None = None) -> str:
        """A rule expression matching JSON values of `schema`."""
        if root is not None:
            self._definitions = {**root.get("$defs", {}), **root.get("definitions", {})}
        if not isinstance(schema, Mapping) or not schema:
            return self.primitive("json-value")
        if "$ref" in schema:
            target = str(schema["$ref"]).rsplit("/", 1)[-1]
            rule = f"def-{re.sub(r'[^a-zA-Z0-9]+', '-', target).lower()}"
            if rule not in self.rules:
                self.rules[rule] = ""  # reserve first: schemas may refer to themselves
                self.rules[rule] = self.value(self._definitions.get(target, {}), rule)
            return rule
        if "const" in schema:
            return gbnf_literal(json.dumps(schema["const"], ensure_ascii=False))
        if "enum" in schema:
            options = [gbnf_literal(json.dumps(v, ensure_ascii=False)) for v in schema["enum"]]
            return "(" + " | ".join(options) + ")"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.value(s, f"{hint}-{i}") for i, s in enumerate(schema[key])]
                return "(" + " | ".join(options) + ")"
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.value(schema["allOf"][0], hint)
        declared = schema.get("type")
        if isinstance(declared, list):
            options = [self.value({**schema, "type": t}, f"{hint}-{t}") for t in declared]
            return "(" + " | ".join(options) + ")"
        if declared == "object" or "properties" in schema:
            return self._object(schema, hint)
        if declared == "array":
            item = self.value(schema.get("items", {}), f"{hint}-item")
            return self.add(hint, f'"[" ({item} ("," {item})*)? "]"')
        primitive = {
            "string": "json-string",
            "integer": "json-integer",
            "number": "json-number",
            "boolean": "json-boolean",
            "null": "json-null",
        }.get(str(declared))
        return self.primitive(primitive or "json-value")

    def _object(self, schema: Mapping[str, Any], hint: str) -> str:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        if not properties:
            if schema.get("additionalProperties") is False:
                return gbnf_literal("{}")
            return self.primitive("json-object")
        required = set(schema.get("required", []))
        names = list(properties)
        pairs = [
            f"{gbnf_literal(json.dumps(n, ensure_ascii=False) + ':')} "
            f"{self.value(properties[n], f'{hint}-{n}')}"
            for n in names
        ]
        # after[i]: properties i.. once something was written (each prefixed by a comma);
        # first[i]: properties i.. when nothing was written yet.
        after = [""] * (len(names) + 1)
        first = [""] * (len(names) + 1)
        after[len(names)] = first[len(names)] = '""'
        for i in range(len(names) - 1, -1, -1):
            comma_pair = f'"," {pairs[i]}'
            if names[i] in required:
                after[i] = self.add(f"{hint}-after-{i}", f"{comma_pair} {after[i + 1]}")
                first[i] = self.add(f"{hint}-first-{i}", f"{pairs[i]} {after[i + 1]}")
            else:
                after[i] = self.add(f"{hint}-after-{i}", f"({comma_pair})? {after[i + 1]}")
                first[i] = self.add(
                    f"{hint}-first-{i}", f"{pairs[i]} {after[i + 1]} | {first[i + 1]}"
                )
        return self.add(hint, f'"{{" {first[0]} "}}"')

    def render(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        needed = set(self._used_primitives)
        # Primitives refer to each other; include everything they reach.
        for _ in range(3):
            for name in list(needed):
                needed |= {
                    p for p in PRIMITIVE_RULES if re.search(rf"\b{p}\b", PRIMITIVE_RULES[name])
                }
        lines += [
            f"{name} ::= {PRIMITIVE_RULES[name]}" for name in PRIMITIVE_RULES if name in needed
        ]
        return "\n".join(lines) + "\n"


def _qwen3_coder_call(grammar: SchemaGrammar, tool: ToolSpec) -> str:
    properties: Mapping[str, Any] = tool.parameters.get("properties") or {}
    required = set(tool.parameters.get("required", []))
    parts = [gbnf_literal(f"<tool_call>\n<function={tool.name}>\n")]
    for name, schema in properties.items():
        types = schema.get("type") if isinstance(schema, Mapping) else None
        if types == "string":
            # Plain text up to the closing tag: anything but "</".
            value = grammar.add(f"{tool.name}-{name}-text", r'([^<] | "<" [^/])*')
        else:
            value = grammar.value(schema, f"{tool.name}-{name}", tool.parameters)
        item = f"{gbnf_literal(f'<parameter={name}>' + chr(10))} {value} " + gbnf_literal(
            "\n</parameter>\n"
        )
        parts.append(item if name in required else f"({item})?")
    parts.append(gbnf_literal("</function>\n</tool_call>"))
    return grammar.add(f"call-{tool.name}", " ".join(parts))


def _call_rule(grammar: SchemaGrammar, tool_format: ToolCallFormat, tool: ToolSpec) -> str:
    if tool_format.name == "qwen3_coder":
        return _qwen3_coder_call(grammar, tool)
    arguments = grammar.value(tool.parameters, f"{tool.name}-args", tool.parameters)
    if tool_format.name == "kimi":
        body = (
            f"{gbnf_literal(f'{KIMI_CALL_BEGIN}functions.{tool.name}:')} [0-9]{{1,3}} "
            f"{gbnf_literal(KIMI_ARGUMENT_BEGIN)} {arguments} {gbnf_literal(KIMI_CALL_END)}"
        )
    elif tool_format.name == "llama3":
        head = json.dumps({"name": tool.name})[:-1] + ', "parameters": '
        body = f'{gbnf_literal(head)} {arguments} "}}"'
    elif tool_format.name == "mistral":  # the v11 shape; toolcall_mistral.py reads both
        body = f"{gbnf_literal(f'[TOOL_CALLS]{tool.name}[ARGS]')} {arguments}"
    else:
        head = "<tool_call>\n" + json.dumps({"name": tool.name})[:-1] + ', "arguments": '
        body = f"{gbnf_literal(head)} {arguments} {gbnf_literal('}' + chr(10) + '</tool_call>')}"
    return grammar.add(f"call-{tool.name}", body)


def tool_call_grammar(
    tool_format: ToolCallFormat,
    tools: Sequence[ToolSpec],
    *,
    forced: bool,
    allow_several: bool = True,
    reasoning_open: bool = False,
) -> str:
    """Grammar for one answer. `forced`: the answer is only tool calls; otherwise optional prose
    (that cannot open a call marker by accident) followed by optional well-formed calls.
    `reasoning_open`: the prompt already opened a <think> block the answer must close first."""
    grammar = SchemaGrammar()
    calls = [_call_rule(grammar, tool_format, tool) for tool in tools]
    one_call = grammar.add("call", " | ".join(calls))
    separator = '"\\n"' if tool_format.name not in ("kimi", "mistral") else '""'
    several = f"{one_call} ({separator} {one_call})*" if allow_several else one_call
    if tool_format.name == "kimi":
        several = f"{gbnf_literal(KIMI_SECTION_BEGIN)} {several} {gbnf_literal(KIMI_SECTION_END)}"
    if tool_format.name == "llama3" and allow_several:
        several = f'{one_call} (";" {one_call})*'
    prefix = ""
    if reasoning_open:
        thought = grammar.add("thought", r'([^<] | "<" [^/])*')
        prefix = f'{thought} "</think>" "\\n"* '
    if forced:
        return grammar.render(f"{prefix}{several}")
    # Prose may not contain "<" followed by "t" or "|": that is how call markers start.
    prose = grammar.add("prose", r'([^<] | "<" [^t|])*')
    if tool_format.name == "mistral":  # Mistral's calls start with "[T"
        prose = grammar.add("prose-mistral", r'([^[] | "[" [^T])*')
    if tool_format.name == "llama3":
        prose = grammar.add("prose-llama", r'[^{<] ([^<] | "<" [^|])*')
        return grammar.render(f"{prefix}({prose} | {several})")
    return grammar.render(f"{prefix}{prose} ({several})?")
