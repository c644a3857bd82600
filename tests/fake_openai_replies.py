"""Scripted replies for the fake OpenAI server: what to say, how to chunk it, which fault to inject.

A reply in JSON (CLI scripts) uses the same field names as `Reply`, e.g.
    {"text": "done", "reasoning": "...", "tool_calls": [{"name": "grep", "arguments": {"pattern": "x"}}],
     "usage": [120, 7], "delay_s": 0.1, "status": 429, "retry_after": 1, "reset": true, "cut_after": 3,
     "garbage": "{not json", "garbage_after": 2, "cached_tokens": 100, "reasoning_tokens": 5,
     "usage_style": "moonshot"}
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_ids = itertools.count(1)
_ids_lock = threading.Lock()


def _next_id() -> int:
    with _ids_lock:
        return next(_ids)


@dataclass
class FakeToolCall:
    name: str
    arguments: dict[str, Any] | str  # a str is sent verbatim (use it for malformed JSON)
    id: str | None = None


@dataclass
class Reply:
    content: str = ""  # the answer text ("text" in JSON scripts)
    reasoning: str = ""
    reasoning_field: str = "reasoning_content"  # vLLM / OpenRouter style servers use "reasoning"
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    chunk_chars: int = 8  # text and reasoning are streamed in pieces of this many characters
    arg_pieces: int = 3  # each tool call's arguments are split over this many chunks
    usage: tuple[int, int] | None = None  # (prompt, completion); estimated when None
    delay_s: float = 0.0  # before the first byte
    chunk_delay_s: float = 0.0  # between streamed chunks
    status: int | None = None  # an HTTP error status to answer with instead
    retry_after: float | None = None  # Retry-After header (seconds) with `status`
    message: str | None = None  # error message with `status`
    reset: bool = False  # close the connection with a TCP RST and no response
    cut_after: int | None = None  # send this many SSE events, then drop the connection
    malformed_args: bool = False  # drop the closing brace of every tool call's arguments
    garbage: str | None = None  # a raw `data:` payload (not JSON, or the wrong shape) to slip in
    garbage_after: int = 1  # ... after this many good events; the stream then carries on
    finish_reason: str | None = None  # default: "tool_calls" when there are calls, else "stop"
    # Usage details (issue #16): cached prompt tokens (None: what the server's simulated prefix
    # cache found, else 0), reasoning tokens, and where they go: "openai" puts them in
    # prompt_tokens_details / completion_tokens_details, "moonshot" puts cached_tokens top-level.
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    usage_style: str = "openai"
    # The content streamed in exactly these pieces instead of `chunk_chars` slices (issue #13:
    # tool-call markup split at awkward places). `Reply.pieces` keeps `content` their join.
    content_pieces: list[str] | None = None

    # --- helper constructors ---------------------------------------------------------------------
    @classmethod
    def text(cls, text: str, **kw: Any) -> Reply:
        return cls(content=text, **kw)

    @classmethod
    def tool_call(
        cls, name: str, arguments: dict[str, Any] | str, *, id: str | None = None, **kw: Any
    ) -> Reply:
        return cls(tool_calls=[FakeToolCall(name, arguments, id)], **kw)

    @classmethod
    def pieces(cls, *parts: str, **kw: Any) -> Reply:
        return cls(content="".join(parts), content_pieces=list(parts), **kw)

    @classmethod
    def multi_call(cls, *calls: tuple[str, dict[str, Any] | str], **kw: Any) -> Reply:
        return cls(tool_calls=[FakeToolCall(n, a) for n, a in calls], **kw)

    @classmethod
    def fault(
        cls, status: int, *, retry_after: float | None = None, message: str | None = None, **kw: Any
    ) -> Reply:
        return cls(status=status, retry_after=retry_after, message=message, **kw)

    @classmethod
    def connection_reset(cls) -> Reply:
        return cls(reset=True)

    @classmethod
    def cut(cls, text: str, after: int, **kw: Any) -> Reply:
        return cls(content=text, cut_after=after, **kw)

    @classmethod
    def garbage_chunk(cls, text: str, data: str = "{not json", after: int = 1, **kw: Any) -> Reply:
        return cls(content=text, garbage=data, garbage_after=after, **kw)

    # --- wire format -----------------------------------------------------------------------------
    def arguments_text(self, call: FakeToolCall) -> str:
        raw = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        return raw[:-1] if self.malformed_args and raw else raw

    def _finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def _usage(self, body: dict[str, Any], cached: int | None = None) -> dict[str, Any]:
        if self.usage is not None:
            prompt, completion = self.usage
        else:
            prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
            produced = (
                self.content + self.reasoning + "".join(map(self.arguments_text, self.tool_calls))
            )
            completion = max(1, len(produced) // 4)
        out: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.cached_tokens is not None:
            cached = self.cached_tokens
        if cached is None and self.reasoning_tokens is None:
            return out  # nothing scripted: the plain usage object of older servers
        cached = cached or 0
        if isinstance(prompt, int):  # a test may script a missing count (None)
            cached = min(prompt, cached)
        if self.usage_style == "moonshot":
            out["cached_tokens"] = cached
        else:
            out["prompt_tokens_details"] = {"cached_tokens": cached}
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens or 0}
        return out

    def stream_chunks(
        self, model: str, body: dict[str, Any], include_usage: bool, cached: int | None = None
    ) -> list[dict[str, Any]]:
        reply_id = f"chatcmpl-fake-{_next_id()}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }

        out = [chunk({"role": "assistant", "content": ""})]
        out += [chunk({self.reasoning_field: p}) for p in _pieces(self.reasoning, self.chunk_chars)]
        parts = self.content_pieces
        if parts is None:
            parts = _pieces(self.content, self.chunk_chars)
        out += [chunk({"content": p}) for p in parts if p]
        for index, call in enumerate(self.tool_calls):
            call_id = call.id or f"call_{reply_id[-6:]}_{index}"
            head = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            out.append(chunk({"tool_calls": [head]}))
            args = self.arguments_text(call)
            size = max(1, -(-len(args) // max(1, self.arg_pieces)))
            for piece in _pieces(args, size):
                out.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                )
        out.append(chunk({}, self._finish()))
        if include_usage:
            out.append(
                {
                    "id": reply_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": self._usage(body, cached),
                }
            )
        return out

    def completion(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.reasoning:
            message[self.reasoning_field] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": self.arguments_text(c)},
                }
                for i, c in enumerate(self.tool_calls)
            ]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish()}
        return {
            "id": f"chatcmpl-fake-{_next_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": self._usage(body),
        }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


_REPLY_FIELDS = {f.name for f in dataclasses.fields(Reply)}


def reply_from_json(obj: dict[str, Any]) -> Reply:
    """Build a Reply from its JSON form; unknown keys are an error so typos in scripts show up."""
    if not isinstance(obj, dict):
        raise ValueError(f"a reply must be a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - _REPLY_FIELDS - {"text"}
    if unknown:
        raise ValueError(f"unknown reply fields {sorted(unknown)}; known: {sorted(_REPLY_FIELDS)}")
    fields = dict(obj)
    if "text" in fields:
        fields["content"] = fields.pop("text")
    fields["tool_calls"] = [
        FakeToolCall(c["name"], c.get("arguments", {}), c.get("id"))
        for c in obj.get("tool_calls", [])
    ]
    if fields.get("usage") is not None:
        fields["usage"] = (int(obj["usage"][0]), int(obj["usage"][1]))
    return Reply(**fields)


def first_user_text(body: dict[str, Any]) -> str:
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


class ByConversation:
    """Route each request to a script by its first user message, positioned by the number of
    assistant messages already in the conversation: parallel sub-agents each get their own story.
    The key "*" is used when no other key is a prefix of the first user message."""

    def __init__(
        self, scripts: dict[str, Sequence[Reply | dict[str, Any]]], default: Reply | None = None
    ) -> None:
        self.scripts = {
            key: [r if isinstance(r, Reply) else reply_from_json(r) for r in replies]
            for key, replies in scripts.items()
        }
        self.default = default

    def __call__(self, body: dict[str, Any]) -> Reply:
        prompt = first_user_text(body)
        key = next((k for k in self.scripts if k != "*" and prompt.startswith(k)), "*")
        script = self.scripts.get(key, [])
        position = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        if position < len(script):
            return script[position]
        if self.default is not None:
            return self.default
        return Reply.fault(
            400,
            message=f"fake OpenAI server: script {key!r} has no reply #{position + 1} "
            f"(it has {len(script)}); first user message: {prompt[:80]!r}",
        )
