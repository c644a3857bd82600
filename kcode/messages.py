"""Conversation types shared by the loop, the backends and the session log.

Frozen dataclasses rather than pydantic models: they are created on every streamed chunk and must be
cheap; JSON conversion is explicit so the session log format is stable.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

from kcode.safety.text_input import valid_unicode

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    data: bytes
    mime: str = "image/png"

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


ContentPart = TextPart | ImagePart


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    # The model's raw argument text when it was not valid JSON; the loop reports it back as an error.
    invalid_arguments: str | None = None


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    ok: bool
    content: str
    data: dict[str, Any] | None = None
    images: tuple[ImagePart, ...] = ()


@dataclass(frozen=True)
class Message:
    role: Role
    parts: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    reasoning: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))

    @staticmethod
    def system(text: str) -> Message:
        return Message("system", (TextPart(text),))

    @staticmethod
    def user(text: str, images: tuple[ImagePart, ...] = ()) -> Message:
        # A prompt from argv or stdin may carry bytes that are not UTF-8 (kcode.safety.text_input).
        return Message("user", (TextPart(valid_unicode(text)), *images))

    @staticmethod
    def assistant(
        text: str, tool_calls: tuple[ToolCall, ...] = (), reasoning: str | None = None
    ) -> Message:
        parts: tuple[ContentPart, ...] = (TextPart(text),) if text else ()
        return Message("assistant", parts, tool_calls=tool_calls, reasoning=reasoning)

    @staticmethod
    def tool(result: ToolResult) -> Message:
        return Message(
            "tool", (TextPart(result.content), *result.images), tool_call_id=result.call_id
        )


def message_to_json(msg: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for p in msg.parts:
        if isinstance(p, TextPart):
            parts.append({"text": p.text})
        else:
            parts.append({"image": base64.b64encode(p.data).decode("ascii"), "mime": p.mime})
    out: dict[str, Any] = {"role": msg.role, "parts": parts}
    if msg.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments, "invalid": c.invalid_arguments}
            for c in msg.tool_calls
        ]
    if msg.tool_call_id is not None:
        out["tool_call_id"] = msg.tool_call_id
    if msg.reasoning:
        out["reasoning"] = msg.reasoning
    if msg.meta:
        out["meta"] = msg.meta
    return out


def message_from_json(obj: dict[str, Any]) -> Message:
    parts: list[ContentPart] = []
    for p in obj.get("parts", []):
        if "text" in p:
            parts.append(TextPart(p["text"]))
        else:
            parts.append(ImagePart(base64.b64decode(p["image"]), p.get("mime", "image/png")))
    calls = tuple(
        ToolCall(c["id"], c["name"], c.get("arguments") or {}, c.get("invalid"))
        for c in obj.get("tool_calls", [])
    )
    return Message(
        role=obj["role"],
        parts=tuple(parts),
        tool_calls=calls,
        tool_call_id=obj.get("tool_call_id"),
        reasoning=obj.get("reasoning"),
        meta=obj.get("meta", {}),
    )
