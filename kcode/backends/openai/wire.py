"""kcode messages and tool specs in the OpenAI chat completions wire format.

Plain dicts in, plain dicts out: no `openai` import, so this is cheap and testable on its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kcode.backends.base import BackendError, ToolSpec
from kcode.messages import ImagePart, Message, TextPart

WireMessage = dict[str, Any]


def messages_to_wire(messages: Sequence[Message]) -> list[WireMessage]:
    """Convert a conversation. Images returned by tools cannot live in a `tool` message, so the
    images of a run of consecutive tool results follow it in one user message: a user message in
    the middle of the run would break the rule that tool results directly follow their call."""
    out: list[WireMessage] = []
    pending_tool_images: list[tuple[str, ImagePart]] = []
    for message in messages:
        if message.role != "tool" and pending_tool_images:
            out.append(_tool_images_message(pending_tool_images))
            pending_tool_images = []
        if message.role == "system":
            out.append({"role": "system", "content": message.text})
        elif message.role == "user":
            out.append({"role": "user", "content": _user_content(message)})
        elif message.role == "assistant":
            out.append(_assistant_message(message))
        else:
            call_id = message.tool_call_id or ""
            out.append({"role": "tool", "tool_call_id": call_id, "content": message.text})
            pending_tool_images.extend((call_id, image) for image in message.images)
    if pending_tool_images:
        out.append(_tool_images_message(pending_tool_images))
    return out


def _image_part(image: ImagePart) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image.data_url()}}


def _user_content(message: Message) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.text
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            if part.text:
                content.append({"type": "text", "text": part.text})
        else:
            content.append(_image_part(part))
    return content


def _assistant_message(message: Message) -> WireMessage:
    wire: WireMessage = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        # Always valid JSON, even when the model's own text was not: some servers parse it back
        # and reject the whole request; the tool result already told the model what went wrong.
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
        # Kimi with thinking on rejects a tool-call message whose reasoning was dropped.
        if message.reasoning:
            wire["reasoning_content"] = message.reasoning
    elif not message.text:
        wire["content"] = ""
    return wire


def _tool_images_message(images: list[tuple[str, ImagePart]]) -> WireMessage:
    call_ids = ", ".join(dict.fromkeys(call_id for call_id, _ in images))
    content: list[dict[str, Any]] = [
        {"type": "text", "text": f"Images returned by tool call {call_ids}:"}
    ]
    content.extend(_image_part(image) for _, image in images)
    return {"role": "user", "content": content}


def tools_to_wire(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]


def tool_choice_to_wire(choice: str, tools: Sequence[ToolSpec]) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    if any(tool.name == choice for tool in tools):
        return {"type": "function", "function": {"name": choice}}
    names = ", ".join(tool.name for tool in tools) or "none"
    raise BackendError(
        "bad_request",
        f"tool_choice {choice!r} is neither auto/none/required nor an offered tool "
        f"(offered: {names})",
    )
