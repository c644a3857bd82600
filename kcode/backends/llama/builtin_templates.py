"""Turn formats for GGUFs that carry no chat template, and the end-of-turn text of any template.

A GGUF without `tokenizer.chat_template` (Gemma 3 270M, older conversions) still has a turn format
it was trained on. Like llama.cpp, which knows the common formats by name, kcode picks one by the
model's architecture and name and by what its vocabulary really holds: ChatML only when
`<|im_start|>` is a single token of the vocab, Llama 3 headers only when `<|start_header_id|>` is,
and so on. A model that matches nothing gets a plain-text format rather than ChatML's markers,
which such a model would echo as text.

Each format is a small Jinja template in the Hugging Face style, rendered by `chat_template.py`
like a GGUF's own. None of them mentions the tool list: `ChatTemplate` then describes the tools in
the system text in the Hermes format, and these templates write earlier calls and results back in
that format (`<tool_call>` JSON, `<tool_response>`), so the model sees one consistent convention.

`stop_texts` lists the text that ends a turn (or starts the next one) for a template: generation
stops there even when the model spells the marker as ordinary text instead of its special token,
and the marker never reaches the user or the history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinTemplate:
    name: str
    source: str
    stop_texts: tuple[str, ...]


def _turn_template(
    starts: Mapping[str, str],
    ends: Mapping[str, str],
    *,
    fold_system: bool,
    with_bos: bool,
) -> str:
    """Jinja for a format where each turn is START[role] + text + END[role].

    `fold_system`: the format has no system role (Gemma, Mistral v1): system text is put in front
    of the first user turn, as llama.cpp does. Tool results are user turns holding
    `<tool_response>`; an assistant's calls follow its text as `<tool_call>` JSON blocks."""

    def jinja_map(values: Mapping[str, str]) -> str:
        items = ", ".join(f"{role!r}: {text!r}" for role, text in values.items())
        return "{" + items + "}"

    return (
        "{%- set starts = " + jinja_map(starts) + " -%}"
        "{%- set ends = " + jinja_map(ends) + " -%}"
        "{%- set ns = namespace(system='') -%}"
        + (
            "{%- for m in messages -%}{%- if m.role == 'system' -%}"
            "{%- set ns.system = ns.system + m.content + '\\n\\n' -%}"
            "{%- endif -%}{%- endfor -%}"
            if fold_system
            else ""
        )
        + ("{{- bos_token -}}" if with_bos else "")
        + "{%- for m in messages -%}"
        "{%- if not (m.role == 'system' and " + ("true" if fold_system else "false") + ") -%}"
        "{%- set role = m.role if m.role in starts else 'user' -%}"
        "{%- set t = namespace(text=(m.content if m.content is string else '')) -%}"
        "{%- if m.role == 'tool' -%}"
        "{%- set t.text = '<tool_response>\\n' + t.text + '\\n</tool_response>' -%}"
        "{%- endif -%}"
        "{%- if m.role == 'assistant' and m.tool_calls -%}"
        "{%- for c in m.tool_calls -%}"
        "{%- set call = {'name': c.function.name, 'arguments': c.function.arguments} -%}"
        "{%- set t.text = t.text + '\\n<tool_call>\\n' + (call | tojson) + '\\n</tool_call>' -%}"
        "{%- endfor -%}"
        "{%- endif -%}"
        "{%- if role == 'user' and ns.system -%}"
        "{%- set t.text = ns.system + t.text -%}{%- set ns.system = '' -%}"
        "{%- endif -%}"
        "{{- starts[role] + t.text + ends[role] -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- starts['assistant'] -}}{%- endif -%}"
    )


def _same(
    start: Callable[[str], str], end: str, roles: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    return {r: start(name) for r, name in roles.items()}, {r: end for r in roles}


_CHATML = _same(
    lambda role: f"<|im_start|>{role}\n",
    "<|im_end|>\n",
    {"system": "system", "user": "user", "assistant": "assistant"},
)
_GEMMA = _same(
    lambda role: f"<start_of_turn>{role}\n",
    "<end_of_turn>\n",
    {"user": "user", "assistant": "model"},
)
_LLAMA3 = _same(
    lambda role: f"<|start_header_id|>{role}<|end_header_id|>\n\n",
    "<|eot_id|>",
    {"system": "system", "user": "user", "assistant": "assistant"},
)
_PHI3 = _same(
    lambda role: f"<|{role}|>\n",
    "<|end|>\n",
    {"system": "system", "user": "user", "assistant": "assistant"},
)
_PLAIN = _same(
    lambda role: f"### {role}:\n",
    "\n\n",
    {"system": "System", "user": "User", "assistant": "Assistant"},
)

BUILTIN_TEMPLATES: dict[str, BuiltinTemplate] = {
    "chatml": BuiltinTemplate(
        "chatml",
        _turn_template(*_CHATML, fold_system=False, with_bos=False),
        ("<|im_end|>", "<|im_start|>"),
    ),
    "gemma": BuiltinTemplate(
        "gemma",
        _turn_template(*_GEMMA, fold_system=True, with_bos=True),
        ("<end_of_turn>", "<start_of_turn>"),
    ),
    "llama3": BuiltinTemplate(
        "llama3",
        _turn_template(*_LLAMA3, fold_system=False, with_bos=True),
        ("<|eot_id|>", "<|start_header_id|>"),
    ),
    "phi3": BuiltinTemplate(
        "phi3",
        _turn_template(*_PHI3, fold_system=False, with_bos=False),
        ("<|end|>", "<|user|>"),
    ),
    "mistral": BuiltinTemplate(
        "mistral",
        _turn_template(
            {"user": "[INST] ", "assistant": " "},
            {"user": " [/INST]", "assistant": "</s>"},
            fold_system=True,
            with_bos=True,
        ),
        ("</s>", "[INST]"),
    ),
    # No known format: plain text headings; a model that knows none of the special markers will
    # at least not print them, and "### User:" ends its turn.
    "plain": BuiltinTemplate(
        "plain",
        _turn_template(*_PLAIN, fold_system=False, with_bos=True),
        ("### User:", "### System:"),
    ),
}


def pick_builtin(
    architecture: str, model_name: str, has_token: Callable[[str], bool]
) -> BuiltinTemplate:
    """The format of a model without a chat template. `has_token(text)`: is `text` exactly one
    token of the model's vocabulary (so the model was trained with it as a marker)."""
    arch = architecture.lower()
    name = model_name.lower()
    if (arch.startswith("gemma") or "gemma" in name) and has_token("<start_of_turn>"):
        return BUILTIN_TEMPLATES["gemma"]
    if has_token("<|start_header_id|>") and has_token("<|eot_id|>"):
        return BUILTIN_TEMPLATES["llama3"]
    if has_token("<|im_start|>") and has_token("<|im_end|>"):
        return BUILTIN_TEMPLATES["chatml"]
    if (
        (arch.startswith("phi3") or "phi" in name)
        and has_token("<|user|>")
        and has_token("<|end|>")
    ):
        return BUILTIN_TEMPLATES["phi3"]
    if has_token("[INST]") and has_token("[/INST]"):
        return BUILTIN_TEMPLATES["mistral"]
    return BUILTIN_TEMPLATES["plain"]


# Markers that end a turn or open the next one, in the templates that use them. "<|end|>" only
# counts with Phi's "<|user|>": gpt-oss writes "<|end|>" between its analysis and final channels.
_TURN_MARKERS = (
    "<|im_end|>",
    "<|im_start|>",
    "<end_of_turn>",
    "<start_of_turn>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|im_user|>",
    "<|im_system|>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "[INST]",
)


def stop_texts(template_source: str) -> tuple[str, ...]:
    """The end-of-turn texts of a chat template: the known markers its source writes."""
    for builtin in BUILTIN_TEMPLATES.values():
        if template_source == builtin.source:
            return builtin.stop_texts
    found = [marker for marker in _TURN_MARKERS if marker in template_source]
    if "<|user|>" in template_source and "<|end|>" in template_source:
        found += ["<|end|>", "<|user|>"]
    return tuple(found)
