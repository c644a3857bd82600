"""Reshape a conversation for a chat template that will not take it as it is.

Real templates refuse some of what kcode sends: Gemma 2 raises on a system message and on any
break in user/assistant alternation, Mistral demands alternation and nine-character call ids,
DeepSeek R1 concatenates tool-call arguments as a string, Llama 3 takes one call per turn, and
Phi 3.5 or SmolLM2 silently drop tool calls and results. llama.cpp and Ollama adapt the
conversation instead of failing; so does kcode, with these adaptations (each one is the identity
on a conversation that does not have the shape it changes):

- string_arguments: tool-call arguments as a JSON string instead of an object.
- short_ids: call ids as nine alphanumerics, derived from the id so every render agrees.
- merge_consecutive: adjacent user (or assistant, or system) messages become one.
- fold_system: system text goes at the top of the first user message.
- one_call_per_turn: an assistant turn with several calls becomes one turn per call, each
  followed by its result.
- tools_as_text: calls become `<tool_call>` JSON text in the assistant's content and results
  become `<tool_response>` user text (the Hermes format kcode teaches templates without tools).

All of them work on the template-shaped dicts of one render, never on kcode's messages.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from typing import Any

ADAPTATIONS = (
    "string_arguments",
    "short_ids",
    "merge_consecutive",
    "fold_system",
    "one_call_per_turn",
    "tools_as_text",
)
Verdict = frozenset[str]


def candidate_verdicts(base: Verdict = frozenset()) -> list[Verdict]:
    """Every superset of `base`, least invasive first: fewer adaptations, then earlier ones."""
    rank = {name: i for i, name in enumerate(ADAPTATIONS)}
    extra = [a for a in ADAPTATIONS if a not in base]
    found = [
        base | frozenset(combo)
        for size in range(len(extra) + 1)
        for combo in itertools.combinations(extra, size)
    ]
    return sorted(found, key=lambda v: (len(v), sorted(rank[a] for a in v)))


def describe(verdict: Verdict) -> str:
    return ", ".join(a.replace("_", " ") for a in ADAPTATIONS if a in verdict) or "none"


def adapt(messages: list[dict[str, Any]], verdict: Verdict) -> list[dict[str, Any]]:
    if "one_call_per_turn" in verdict:
        messages = _one_call_per_turn(messages)
    if "tools_as_text" in verdict:
        messages = [_tool_message_as_text(m) for m in messages]
    if "fold_system" in verdict:
        messages = _fold_system(messages)
    if "merge_consecutive" in verdict:
        messages = _merge_consecutive(messages)
    if "string_arguments" in verdict or "short_ids" in verdict:
        messages = [_rewrite_calls(m, verdict) for m in messages]
    return messages


def short_id(call_id: str) -> str:
    return hashlib.sha256(call_id.encode("utf-8", "replace")).hexdigest()[:9]


def call_as_text(call: dict[str, Any]) -> str:
    function = call.get("function", {})
    body = {"name": function.get("name", ""), "arguments": function.get("arguments", {})}
    return f"<tool_call>\n{json.dumps(body, ensure_ascii=False)}\n</tool_call>"


def _tool_message_as_text(message: dict[str, Any]) -> dict[str, Any]:
    if message["role"] == "tool":
        text = _text_of(message.get("content"))
        return {"role": "user", "content": f"<tool_response>\n{text}\n</tool_response>"}
    if message["role"] == "assistant" and message.get("tool_calls"):
        calls = "\n".join(call_as_text(c) for c in message["tool_calls"])
        text = _text_of(message.get("content"))
        rest = {k: v for k, v in message.items() if k != "tool_calls"}
        return {**rest, "content": f"{text}\n{calls}" if text else calls}
    return message


def _one_call_per_turn(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        calls = message.get("tool_calls") or []
        if message["role"] != "assistant" or len(calls) < 2:
            out.append(message)
            continue
        results: list[dict[str, Any]] = []
        while index < len(messages) and messages[index]["role"] == "tool":
            results.append(messages[index])
            index += 1
        for position, call in enumerate(calls):
            content = message.get("content", "") if position == 0 else ""
            out.append({**message, "content": content, "tool_calls": [call]})
            matching = [r for r in results if r.get("tool_call_id") == call.get("id")]
            out.extend(matching)
            results = [r for r in results if r not in matching]
        out.extend(results)  # results whose call is unknown keep their place at the end
    return out


def _fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system = "\n\n".join(_text_of(m.get("content")) for m in messages if m["role"] == "system")
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return rest
    for position, message in enumerate(rest):
        if message["role"] == "user":
            rest[position] = {**message, "content": _prepend(system, message.get("content"))}
            return rest
    return [{"role": "user", "content": system}, *rest]


def _merge_consecutive(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        previous = out[-1] if out else None
        if previous is None or message["role"] == "tool" or previous["role"] != message["role"]:
            out.append(message)
            continue
        merged = {**previous, "content": _join(previous.get("content"), message.get("content"))}
        calls = [*(previous.get("tool_calls") or []), *(message.get("tool_calls") or [])]
        if calls:
            merged["tool_calls"] = calls
        out[-1] = merged
    return out


def _rewrite_calls(message: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    if message.get("tool_calls"):
        calls = []
        for call in message["tool_calls"]:
            function = dict(call.get("function", {}))
            if "string_arguments" in verdict and not isinstance(function.get("arguments"), str):
                function["arguments"] = json.dumps(function.get("arguments"), ensure_ascii=False)
            new_call = {**call, "function": function}
            if "short_ids" in verdict:
                new_call["id"] = short_id(str(call.get("id", "")))
            calls.append(new_call)
        message = {**message, "tool_calls": calls}
    if "short_ids" in verdict and message.get("tool_call_id") is not None:
        message = {**message, "tool_call_id": short_id(str(message["tool_call_id"]))}
    return message


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prepend(text: str, content: Any) -> Any:
    if isinstance(content, list):
        return [{"type": "text", "text": f"{text}\n\n"}, *content]
    return f"{text}\n\n{content}" if content else text


def _join(first: Any, second: Any) -> Any:
    if isinstance(first, list) or isinstance(second, list):
        as_list = [
            *(first if isinstance(first, list) else [{"type": "text", "text": first or ""}]),
            {"type": "text", "text": "\n\n"},
            *(second if isinstance(second, list) else [{"type": "text", "text": second or ""}]),
        ]
        return as_list
    if not first:
        return second or ""
    return f"{first}\n\n{second}" if second else first
