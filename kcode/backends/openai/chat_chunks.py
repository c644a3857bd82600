"""Streamed chat completion chunks (plain dicts, as on the wire) to kcode deltas.

The one place that reads chunks, whichever transport fetched them: `HttpTransport` decodes them
from SSE itself, `SdkTransport` turns the SDK's models back into dicts with `.to_dict()`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from kcode.backends.base import Delta, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk


class ChunkReader:
    """Feed chunks in order; `deltas` are yielded as they come, usage and finish are kept for the
    end (usage may arrive in a chunk of its own, after the finish_reason)."""

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: UsageChunk | None = None

    def read(self, chunk: dict[str, Any]) -> list[Delta]:
        self.usage = usage_of(chunk.get("usage")) or self.usage
        out: list[Delta] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                continue
            out.extend(deltas_of(choice.get("delta")))
            self.usage = usage_of(choice.get("usage")) or self.usage  # Moonshot puts it here
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return out


def usage_of(raw: Any) -> UsageChunk | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if prompt is None and completion is None:
        return None
    return UsageChunk(
        _count(prompt), _count(completion), _cached_tokens(raw), _reasoning_tokens(raw)
    )


# No request comes near this many tokens; a server that says more is broken, and a count of 1e308
# or 10**400 must not reach the price arithmetic (OverflowError) or print as Infinity.
MAX_COUNT = 10**12


def _count(value: Any) -> int:
    """A token count from untrusted JSON: a non-negative int up to MAX_COUNT (digits in a string
    count too); anything else, NaN and infinities included, is 0."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 13):
            return 0
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return min(max(0, int(value)), MAX_COUNT)


def _cached_tokens(raw: dict[str, Any]) -> int:
    """OpenAI: usage.prompt_tokens_details.cached_tokens; Moonshot: usage.cached_tokens."""
    details = raw.get("prompt_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens") is not None:
        return _count(details.get("cached_tokens"))
    return _count(raw.get("cached_tokens"))


def _reasoning_tokens(raw: dict[str, Any]) -> int:
    details = raw.get("completion_tokens_details")
    if isinstance(details, dict):
        return _count(details.get("reasoning_tokens"))
    return _count(raw.get("reasoning_tokens"))


def deltas_of(delta: Any) -> list[Delta]:
    if not isinstance(delta, dict):
        return []
    out: list[Delta] = []
    for field in ("reasoning_content", "reasoning"):  # Moonshot/DeepSeek, vLLM/OpenRouter
        reasoning = delta.get(field)
        if isinstance(reasoning, str) and reasoning:
            out.append(ReasoningChunk(reasoning))
            break
    content = delta.get("content")
    if isinstance(content, str) and content:
        out.append(TextChunk(content))
    for position, call in enumerate(delta.get("tool_calls") or []):
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a few servers send an object, not a string
            arguments = json.dumps(arguments)
        index = call.get("index")
        call_id, name = call.get("id"), function.get("name")
        out.append(
            ToolCallChunk(
                index=index if isinstance(index, int) else position,
                # Some servers number their calls (`"id": 7`): an id is text for kcode.
                id=str(call_id) if isinstance(call_id, (str, int)) and call_id != "" else None,
                name=name if isinstance(name, str) and name else None,
                arguments=arguments if isinstance(arguments, str) else "",
            )
        )
    return out
