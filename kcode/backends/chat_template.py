"""Render a conversation with the chat template stored in a GGUF file.

The template is Jinja written for Hugging Face's `apply_chat_template`, so it is rendered the same
way: a sandboxed environment with `trim_blocks`/`lstrip_blocks`, loop controls, a `tojson` that
does not HTML-escape, and the helpers templates call (`raise_exception`, `strftime_now`).

Tool-call arguments are handed to the template as objects: templates that print them with
`tojson` would otherwise double-encode a JSON string, and Qwen3-Coder iterates over them.
Rendering is a pure function of the messages, so an earlier turn renders to the same bytes every
time and the KV cache prefix of the previous request is reused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kcode.backends.base import BackendError, ToolSpec
from kcode.messages import Message

# Used when the model has no template of its own (old GGUFs): ChatML, the most common format.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class TemplateRefused(Exception):
    pass


def _raise_exception(message: str) -> NoReturn:
    raise TemplateRefused(message)


def _tojson(
    value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    return json.dumps(
        value,
        ensure_ascii=False,
        indent=indent,
        separators=tuple(separators) if separators else None,
        sort_keys=sort_keys,
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def tool_to_template(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def messages_to_template(
    messages: Sequence[Message], image_marker: str | None = None
) -> list[dict[str, Any]]:
    """Our messages in the OpenAI-shaped dicts chat templates expect. With `image_marker` (a
    local vision model), each image becomes that marker in the text, where mtmd puts it."""
    call_names: dict[str, str] = {}
    rendered: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.text}
        if message.images and image_marker is not None:
            entry["content"] = f"{image_marker}\n" * len(message.images) + message.text
        elif message.images:
            entry["content"] = [
                *({"type": "image"} for _ in message.images),
                {"type": "text", "text": message.text},
            ]
        if message.role == "assistant":
            if message.reasoning:
                entry["reasoning_content"] = message.reasoning
            if message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": dict(call.arguments)},
                    }
                    for call in message.tool_calls
                ]
                call_names.update((call.id, call.name) for call in message.tool_calls)
        if message.role == "tool":
            entry["tool_call_id"] = message.tool_call_id
            entry["name"] = call_names.get(message.tool_call_id or "", "")
        rendered.append(entry)
    return rendered


def _tools_as_system_text(tools: Sequence[ToolSpec]) -> str:
    """For templates that know nothing of tools: describe them in the Hermes format."""
    lines = [
        "# Tools",
        "",
        "You may call one or more functions. Their signatures are inside <tools></tools>:",
        "<tools>",
        *(json.dumps(tool_to_template(t), ensure_ascii=False) for t in tools),
        "</tools>",
        "",
        "For each call, write a JSON object with the function name and arguments inside "
        '<tool_call></tool_call> tags:\n<tool_call>\n{"name": <function-name>, '
        '"arguments": <args-json-object>}\n</tool_call>',
    ]
    return "\n".join(lines)


class ChatTemplate:
    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.knows_tools = "tools" in source
        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        environment.filters["tojson"] = _tojson
        environment.globals["raise_exception"] = _raise_exception
        environment.globals["strftime_now"] = _strftime_now
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateError as err:
            raise BackendError(
                "config",
                f"the model's chat template is not valid Jinja ({err}); "
                "pass a model with a working template or set chat_format",
            ) from err

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        add_generation_prompt: bool = True,
        thinking: bool | None = None,
        extra: Mapping[str, Any] | None = None,
        image_marker: str | None = None,
    ) -> str:
        template_messages = messages_to_template(messages, image_marker)
        if tools and not self.knows_tools:
            tools_text = _tools_as_system_text(tools)
            if template_messages and template_messages[0]["role"] == "system":
                first = template_messages[0]
                template_messages[0] = {**first, "content": f"{first['content']}\n\n{tools_text}"}
            else:
                template_messages.insert(0, {"role": "system", "content": tools_text})
        variables: dict[str, Any] = {
            "messages": template_messages,
            "tools": [tool_to_template(t) for t in tools] or None,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **(extra or {}),
        }
        if thinking is not None:
            variables["enable_thinking"] = thinking
            variables["thinking"] = thinking
        try:
            return self._template.render(**variables)
        except TemplateRefused as err:
            raise BackendError(
                "config", f"the model's chat template refused this conversation: {err}"
            ) from err
        except (jinja2.TemplateError, TypeError, ValueError, KeyError) as err:
            raise BackendError(
                "config",
                f"the model's chat template failed to render ({type(err).__name__}: {err}); "
                "try another model file or set chat_format",
            ) from err
