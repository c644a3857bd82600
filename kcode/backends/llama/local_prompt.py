"""A compact prompt for small local models.

kcode's full prompt (system text plus the JSON schemas of eleven tools) is about 3,100 tokens with
SmolLM2's tokenizer. A 135M-parameter model on two CPU cores reads that at ~60 tokens/s, so every
`kcode -p` paid ~50 s before the first word, for tools (sub-agents, patches, images, a todo list) a
model that small cannot use anyway. For a small model the local backend therefore sends:

- only the core tools (`CORE_TOOLS`: read, write, edit, search, run), each described by the first
  sentence of its description and a schema cut to names, types, `required`, enums and item shapes
  (titles, defaults, per-property prose and `null` alternatives dropped);
- the system prompt without the bullet lines that name a tool it no longer offers.

A model is small when it runs with at most `SMALL_CONTEXT` tokens of context or its file is under
`SMALL_FILE_BYTES` (about 1.5B parameters at 4-5 bits): that is where the full prompt would take a
third of the context or more, and where such models follow long tool lists worst. The OpenAI
backend never goes through this module: API models get the full prompt. Calls the model makes are
still parsed against the full tool list, so nothing it writes is lost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from kcode.backends.base import ToolSpec
from kcode.messages import Message, TextPart

CORE_TOOLS = ("read_file", "write_file", "edit_file", "grep", "glob", "shell")
SMALL_CONTEXT = 8192
SMALL_FILE_BYTES = 1 << 30
# Schema keys a small model needs to write a valid call; the rest is prose or validation detail.
_KEPT_KEYS = ("type", "properties", "required", "items", "enum", "$defs", "$ref")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def is_small_model(n_ctx: int, file_bytes: int) -> bool:
    return n_ctx <= SMALL_CONTEXT or file_bytes < SMALL_FILE_BYTES


def first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def compact_schema(schema: Any) -> Any:
    """`schema` reduced to what a call needs; `anyOf [X, null]` (an optional value) becomes X."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    options = schema.get("anyOf")
    if isinstance(options, list):
        real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if len(real) == 1:
            return compact_schema(real[0])
    out: dict[str, Any] = {}
    for key in _KEPT_KEYS:
        if key not in schema:
            continue
        value = schema[key]
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = compact_schema(value)
        else:
            out[key] = value
    if "anyOf" in schema and "type" not in out:
        out["anyOf"] = compact_schema(schema["anyOf"])
    return out


def compact_tools(tools: Sequence[ToolSpec]) -> list[ToolSpec]:
    """The core tools among `tools`, in their order, described briefly. When none of them is
    offered (a sub-agent with a tool set of its own), every tool is kept, described briefly."""
    core = [t for t in tools if t.name in CORE_TOOLS] or list(tools)
    return [
        ToolSpec(t.name, first_sentence(t.description), compact_schema(t.parameters)) for t in core
    ]


def compact_system_text(text: str, dropped_tools: Sequence[str]) -> str:
    """`text` without the bullet lines that mention a tool the model is no longer offered."""
    if not dropped_tools:
        return text
    named = re.compile(r"\b(" + "|".join(map(re.escape, dropped_tools)) + r")\b")
    lines = text.split("\n")
    kept = [line for line in lines if not (line.startswith("- ") and named.search(line))]
    return "\n".join(kept)


def compact_request(
    messages: Sequence[Message], tools: Sequence[ToolSpec]
) -> tuple[list[Message], list[ToolSpec]]:
    """The conversation and tools as a small model gets them (see the module docstring)."""
    small_tools = compact_tools(tools)
    kept = {t.name for t in small_tools}
    dropped = [t.name for t in tools if t.name not in kept]
    out = list(messages)
    if out and out[0].role == "system" and dropped:
        first = out[0]
        parts = tuple(
            TextPart(compact_system_text(p.text, dropped)) if isinstance(p, TextPart) else p
            for p in first.parts
        )
        out[0] = replace(first, parts=parts)
    return out, small_tools
