"""Render a conversation with the chat template stored in a GGUF file.

The template is Jinja written for Hugging Face's `apply_chat_template`, so it is rendered the same
way, in the sandbox of template_sandbox.py. A template that refuses kcode's conversation (no system
role, strict alternation, ...) gets it reshaped by template_adapt.py: the reshaping a template
needs is found once by probing it with a small conversation, cached per template source, and
widened if a later conversation is still refused.

Tool-call arguments are handed to the template as objects: templates that print them with
`tojson` would otherwise double-encode a JSON string, and Qwen3-Coder iterates over them.
Rendering is a pure function of the messages, so an earlier turn renders to the same bytes every
time and the KV cache prefix of the previous request is reused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from kcode.backends.base import BackendError, ToolSpec
from kcode.backends.llama import template_sandbox
from kcode.backends.llama.template_adapt import Verdict, adapt, candidate_verdicts, describe
from kcode.backends.llama.template_sandbox import (
    MAX_TEXT,
    TemplateRefused,
    TemplateTimeout,
    make_environment,
    run_bounded,
)
from kcode.messages import Message, ToolCall, ToolResult

# Used when the model has no template of its own (old GGUFs): ChatML, the most common format.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


__all__ = ["CHATML_TEMPLATE", "ChatTemplate", "TemplateRefused"]

# Errors a render can end with, from the template or from the values it handles.
_RENDER_ERRORS = (
    TemplateRefused,
    jinja2.TemplateError,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
)
# The verdict for each template source, shared by every ChatTemplate of this process.
_VERDICTS: dict[str, Verdict] = {}
_VERDICTS_LOCK = threading.Lock()


def tool_to_template(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": copy.deepcopy(tool.parameters),
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
                        # A deep copy: the template may change what it is given.
                        "function": {"name": call.name, "arguments": copy.deepcopy(call.arguments)},
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


# The probe: a small conversation with every shape kcode sends, each part carrying a marker that
# must survive into the prompt (some templates drop tool messages without an error).
_PROBE_TOOL = ToolSpec(
    "kcode_probe",
    "Probe.",
    {"type": "object", "properties": {"arg": {"type": "string"}}, "required": ["arg"]},
)
_PROBE_CALL = ToolCall("call_kcodeprobe0", "kcode_probe", {"arg": "kcodemarkarg"})
_PROBE_CONVERSATION = (
    Message.system("kcodemarksystem"),
    Message.user("kcodemarkuserone"),
    Message.assistant("", (_PROBE_CALL,)),
    Message.tool(ToolResult(_PROBE_CALL.id, True, "kcodemarkresult")),
    Message.assistant("kcodemarkanswer"),
    Message.user("kcodemarkusertwo"),
)
_PROBE_MARKERS = tuple(
    f"kcodemark{name}" for name in ("system", "userone", "arg", "result", "answer", "usertwo")
)


class ChatTemplate:
    def __init__(
        self, source: str, *, bos_token: str = "", eos_token: str = "", origin: str = ""
    ) -> None:
        """`origin`: the file the template comes from, for messages (the model file)."""
        self.source = source
        self.origin = origin
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.knows_tools = "tools" in source
        self._key = hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()
        try:
            self._template = make_environment().from_string(source)
        except jinja2.TemplateError as err:
            raise BackendError(
                "config",
                f"the model's chat template is not valid Jinja ({err}); "
                "pass a model with a working template or set chat_format",
            ) from err

    @property
    def verdict(self) -> Verdict:
        """How kcode's conversations are reshaped for this template (probed on first use)."""
        with _VERDICTS_LOCK:
            known = _VERDICTS.get(self._key)
        if known is None:
            known = self._probe()
            with _VERDICTS_LOCK:
                known = _VERDICTS.setdefault(self._key, known)
        return known

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
        arguments = (messages, tools, add_generation_prompt, thinking, extra, image_marker)
        try:
            return run_bounded(lambda: self._render_adapting(arguments))
        except TemplateTimeout:
            where = f" of {self.origin}" if self.origin else ""
            limit = template_sandbox.MAX_RENDER_CPU_SECONDS
            raise BackendError(
                "config",
                f"the chat template{where} was stopped after {limit:g} s of CPU time "
                "(it loops, or loops over something huge); set chat_template to a "
                "template file that renders, or use another model file",
            ) from None

    def _render_adapting(self, arguments: tuple[Any, ...]) -> str:
        verdict = self.verdict
        try:
            return self._render(verdict, *arguments)
        except _RENDER_ERRORS as err:
            first_error = err
        # Refused as reshaped so far: widen the reshaping, keeping what was needed before. Not
        # for the sandbox's refusals: no reshaping helps, and each retry would cost as much.
        wider_verdicts = (
            [] if isinstance(first_error, SecurityError) else candidate_verdicts(verdict)
        )
        for wider in wider_verdicts[1:]:
            try:
                prompt = self._render(wider, *arguments)
            except _RENDER_ERRORS:
                continue
            with _VERDICTS_LOCK:
                _VERDICTS[self._key] = wider
            return prompt
        if isinstance(first_error, TemplateRefused):
            raise BackendError(
                "config",
                f"the model's chat template refused this conversation: {first_error} "
                f"(also after reshaping it); set chat_template to a template file that accepts it",
            ) from first_error
        raise BackendError(
            "config",
            f"the model's chat template failed to render ({type(first_error).__name__}: "
            f"{first_error}); try another model file or set chat_template",
        ) from first_error

    def _probe(self) -> Verdict:
        """The least reshaping under which the probe renders with every part present; failing
        that, the least under which it renders at all; failing that, none."""
        renders: list[Verdict] = []
        for candidate in candidate_verdicts():
            try:
                prompt = self._render(candidate, _PROBE_CONVERSATION, (_PROBE_TOOL,), True)
            except SecurityError:
                break  # the template breaks the sandbox's rules whatever it is given
            except _RENDER_ERRORS:
                continue
            if all(marker in prompt for marker in _PROBE_MARKERS):
                return candidate
            renders.append(candidate)
        return renders[0] if renders else frozenset()

    def _render(
        self,
        verdict: Verdict,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        add_generation_prompt: bool,
        thinking: bool | None = None,
        extra: Mapping[str, Any] | None = None,
        image_marker: str | None = None,
    ) -> str:
        # Fresh values for every render: templates may change them (Kimi K2 appends to lists).
        template_messages = messages_to_template(messages, image_marker)
        if tools and not self.knows_tools:
            tools_text = _tools_as_system_text(tools)
            if template_messages and template_messages[0]["role"] == "system":
                first = template_messages[0]
                template_messages[0] = {**first, "content": f"{first['content']}\n\n{tools_text}"}
            else:
                template_messages.insert(0, {"role": "system", "content": tools_text})
        variables: dict[str, Any] = {
            "messages": adapt(template_messages, verdict),
            "tools": [tool_to_template(t) for t in tools] or None,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **copy.deepcopy(dict(extra or {})),
        }
        if thinking is not None:
            variables["enable_thinking"] = thinking
            variables["thinking"] = thinking
        pieces: list[str] = []
        size = 0
        for piece in self._template.generate(**variables):
            size += len(piece)
            if size > MAX_TEXT:
                raise SecurityError(f"the rendered prompt passed {MAX_TEXT} characters")
            pieces.append(piece)
        return "".join(pieces)


def adaptation_note(template: ChatTemplate) -> str:
    """One line for logs and `kcode models`: how conversations are reshaped for this template."""
    return f"chat template adaptations: {describe(template.verdict)}"
