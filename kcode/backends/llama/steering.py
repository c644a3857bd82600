"""Steering a local model step by step with grammars: a test and demo hook of the llama-cpp backend.

`KCODE_LOCAL_STEER=steps.json` names a JSON list, one entry per model request, in order:

    [{"tool": "read_file", "arguments": {"path": "notes.txt"}},
     {"text": "notes.txt says hello."}]

A tool step forces that tool (the same path as `tool_choice = NAME`); the given arguments are
pinned as `const` values in the schema the grammar is built from, arguments left out are only
constrained by the tool's own schema. A text step constrains the answer to exactly that text.
When the steps run out, requests are not steered.

Nothing here fakes the model: the prompt is rendered, the model decodes token by token under a
GBNF grammar in llama.cpp's sampler, the stream is parsed by the template's tool-call format and the
tools really run. The grammar only removes the randomness, which is what lets the end-to-end tests
drive a random-weight model, and lets a demo replay a session on any GGUF.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcode.backends.base import BackendError, ToolSpec
from kcode.backends.llama.gbnf import gbnf_literal, tool_call_grammar
from kcode.backends.llama.toolcall_formats import ToolCallFormat
from kcode.safety.json_input import loads_json

STEER_ENV = "KCODE_LOCAL_STEER"


@dataclass(frozen=True)
class SteerStep:
    tool: str | None = None
    arguments: Mapping[str, Any] | None = None
    text: str | None = None


def load_steering(path: str | Path) -> list[SteerStep]:
    """The steps in `path`; BackendError (config) with what is wrong when they cannot be used."""
    try:
        data = loads_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BackendError("config", f"{STEER_ENV}: cannot read {path}: {err}") from err
    if not isinstance(data, list):
        raise BackendError("config", f"{STEER_ENV}: {path} must hold a JSON list of steps")
    steps: list[SteerStep] = []
    for index, entry in enumerate(data):
        tool = entry.get("tool") if isinstance(entry, dict) else None
        text = entry.get("text") if isinstance(entry, dict) else None
        arguments = entry.get("arguments") if isinstance(entry, dict) else None
        well_formed = (isinstance(tool, str) and text is None) or (
            isinstance(text, str) and tool is None and arguments is None
        )
        if not well_formed or not (arguments is None or isinstance(arguments, dict)):
            raise BackendError(
                "config",
                f"{STEER_ENV}: step {index} of {path} must be "
                '{"tool": NAME, "arguments": {...}} or {"text": "..."}',
            )
        steps.append(SteerStep(tool=tool, arguments=arguments, text=text))
    return steps


def steered_grammar(step: SteerStep, fmt: ToolCallFormat, tools: Sequence[ToolSpec]) -> str:
    """The GBNF grammar that makes the model write exactly what `step` asks for."""
    if step.text is not None:
        return f"root ::= {gbnf_literal(step.text)}\n"
    matching = [t for t in tools if t.name == step.tool]
    if not matching:
        raise BackendError(
            "bad_request", f"{STEER_ENV}: the step forces {step.tool!r}, which is not offered"
        )
    tool = matching[0]
    if step.arguments is not None:
        pinned = {name: {"const": value} for name, value in step.arguments.items()}
        tool = ToolSpec(
            tool.name,
            tool.description,
            {"type": "object", "properties": pinned, "required": list(pinned)},
        )
    return tool_call_grammar(fmt, [tool], forced=True, allow_several=False)
