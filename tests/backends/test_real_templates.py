"""The chat templates real models ship render kcode's conversations, reshaped where they refuse.

Each template is a verbatim copy (real_templates/README.md). A multi-turn conversation with a
system prompt, tool calls, tool results and non-ASCII text must render with every part present,
the same bytes every time; templates that refuse kcode's shape get the adaptation llama.cpp and
Ollama apply, found by probing; and a call rendered by each template parses back to the same call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from kcode.backends.base import BackendError, ToolCallChunk, ToolSpec
from kcode.backends.llama import chat_template
from kcode.backends.llama.chat_template import ChatTemplate, TemplateRefused
from kcode.backends.llama.template_sandbox import make_environment
from kcode.backends.llama.toolcall_formats import FORMATS, detect_format, parse_complete
from kcode.messages import Message, ToolCall, ToolResult

from .sample_templates import REAL_ROUND_TRIPS, REAL_TEMPLATES

TOOLS = [
    ToolSpec(
        "grep",
        "Search the workspace",
        {
            "type": "object",
            "properties": {"pattern": {"type": "string"}, "context": {"type": "integer"}},
            "required": ["pattern"],
        },
    ),
    ToolSpec(
        "read_file",
        "Read a file",
        {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    ),
]
FIRST = ToolCall("call_first00001", "grep", {"pattern": "mainpattern", "context": 2})
SECOND = ToolCall("call_second0002", "read_file", {"path": "größe.py"})


def conversation() -> list[Message]:
    """Three turns as kcode's loop builds them: system, user, calls, results, answers."""
    return [
        Message.system("You are kcode, the systemmarker."),
        Message.user("find usermarkerone"),
        Message.assistant("", (FIRST,)),
        Message.tool(ToolResult(FIRST.id, True, "resultmarkerone: cli.py:3")),
        Message.assistant("Reading more.", (SECOND,)),
        Message.tool(ToolResult(SECOND.id, True, "resultmarkertwo")),
        Message.assistant("answermarker: it is in cli.py."),
        Message.user("now usermarkertwo"),
    ]


MARKERS = (
    "systemmarker",
    "usermarkerone",
    "mainpattern",
    "resultmarkerone",
    "größe.py",
    "resultmarkertwo",
    "answermarker",
    "usermarkertwo",
)


@pytest.fixture(autouse=True)
def fresh_verdicts() -> Iterator[None]:
    """Verdicts are cached per process: each test starts from a template never seen before."""
    chat_template._VERDICTS.clear()
    yield
    chat_template._VERDICTS.clear()


def test_the_real_templates_are_there() -> None:
    assert len(REAL_TEMPLATES) >= 15
    assert {"kimi_k2_instruct", "kimi_k2_thinking", "gemma2", "mistral_nemo", "llama3_1"} <= set(
        REAL_TEMPLATES
    )


@pytest.mark.parametrize("name", sorted(REAL_TEMPLATES))
def test_each_real_template_renders_a_multi_turn_tool_conversation(name: str) -> None:
    template = ChatTemplate(REAL_TEMPLATES[name], bos_token="<s>", eos_token="</s>")
    prompt = template.render(conversation(), TOOLS)
    missing = [m for m in MARKERS if m not in prompt]
    assert not missing, f"{name} dropped {missing}: {prompt}"
    assert template.render(conversation(), TOOLS) == prompt  # same bytes: KV prefix reuse


def test_kimi_templates_use_list_append_and_pop_and_render_every_turn() -> None:
    for name in ("kimi_k2_instruct", "kimi_k2_thinking"):
        source = REAL_TEMPLATES[name]
        assert ".append(" in source and ".pop(0)" in source
        prompt = ChatTemplate(source).render(conversation(), TOOLS)
        # The template numbers the calls itself and pairs each result with its call through the
        # queue it appends to and pops from.
        assert "<|tool_call_begin|>functions.grep:0<|tool_call_argument_begin|>" in prompt
        assert "## Return of functions.grep:0\nresultmarkerone" in prompt
        assert "## Return of functions.read_file:1\nresultmarkertwo" in prompt
        assert ChatTemplate(source).verdict == frozenset()


def test_gemma2_refuses_a_system_role_and_gets_it_folded_into_the_first_user_turn() -> None:
    source = REAL_TEMPLATES["gemma2"]
    raw = make_environment().from_string(source)
    with pytest.raises(TemplateRefused, match="System role not supported"):
        raw.render(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    template = ChatTemplate(source, bos_token="<bos>")
    assert template.verdict == {"fold_system", "tools_as_text"}
    prompt = template.render(conversation(), TOOLS)
    assert prompt.startswith("<bos><start_of_turn>user\nYou are kcode, the systemmarker.")
    assert "<start_of_turn>system" not in prompt and "<start_of_turn>tool" not in prompt
    assert '<tool_call>\n{"name": "grep", "arguments": {"pattern": "mainpattern"' in prompt
    assert "<start_of_turn>user\n<tool_response>\nresultmarkerone" in prompt
    turns = [t.split("\n", 1)[0] for t in prompt.split("<start_of_turn>")[1:]]
    assert turns == ["user", "model"] * 4  # strict alternation, ending with the prompt


def test_consecutive_user_messages_are_merged_for_templates_that_demand_alternation() -> None:
    history = [*conversation(), Message.user("and usermarkerthree")]
    for name in ("gemma2", "mistral_nemo", "mistral_small_3_2"):
        template = ChatTemplate(REAL_TEMPLATES[name], bos_token="<s>", eos_token="</s>")
        prompt = template.render(history, TOOLS)
        assert "now usermarkertwo\n\nand usermarkerthree" in prompt, name
        assert "merge_consecutive" in template.verdict, name
    # A template that takes consecutive users is left alone.
    qwen = ChatTemplate(REAL_TEMPLATES["qwen2_5"])
    prompt = qwen.render(history, TOOLS)
    assert "now usermarkertwo<|im_end|>\n<|im_start|>user\nand usermarkerthree" in prompt


def test_mistral_gets_nine_character_call_ids_consistent_across_call_and_result() -> None:
    template = ChatTemplate(REAL_TEMPLATES["mistral_nemo"], bos_token="<s>", eos_token="</s>")
    assert template.verdict == {"short_ids"}
    prompt = template.render(conversation(), TOOLS)
    call_ids = [
        json.loads(part.split("]")[0] + "]")[0]["id"] for part in prompt.split("[TOOL_CALLS]")[1:]
    ]
    assert all(len(i) == 9 and i.isalnum() for i in call_ids)
    for call_id in call_ids:
        assert f'"call_id": "{call_id}"' in prompt


def test_a_template_that_concatenates_arguments_gets_them_as_a_json_string() -> None:
    template = ChatTemplate(REAL_TEMPLATES["deepseek_r1_distill"], bos_token="<s>")
    assert template.verdict == {"string_arguments"}
    prompt = template.render(conversation(), TOOLS)
    assert '```json\n{"pattern": "mainpattern", "context": 2}\n```' in prompt


def test_templates_that_drop_tool_messages_get_them_as_text() -> None:
    for name in ("phi3_5", "smollm2"):
        template = ChatTemplate(REAL_TEMPLATES[name])
        assert template.verdict == {"tools_as_text"}, name
        prompt = template.render(conversation(), TOOLS)
        assert '<tool_call>\n{"name": "read_file", "arguments": {"path": "größe.py"}}' in prompt


def test_llama3_parallel_calls_become_one_call_per_turn_each_with_its_result() -> None:
    template = ChatTemplate(REAL_TEMPLATES["llama3_1"])
    both = Message.assistant("", (FIRST, SECOND))
    history = [
        Message.user("look"),
        both,
        Message.tool(ToolResult(SECOND.id, True, "second result")),
        Message.tool(ToolResult(FIRST.id, True, "first result")),
    ]
    prompt = template.render(history, TOOLS)
    assert "one_call_per_turn" in template.verdict
    first_call = prompt.index('"parameters": {"pattern"')
    first_result = prompt.index("first result")
    second_call = prompt.index('"parameters": {"path"')
    assert first_call < first_result < second_call < prompt.index("second result")


def test_the_verdict_is_cached_per_template_source() -> None:
    source = REAL_TEMPLATES["gemma2"]
    first = ChatTemplate(source)
    assert first.verdict == ChatTemplate(source).verdict
    key = first._key
    assert chat_template._VERDICTS[key] == first.verdict


def test_llama3_templates_write_todays_date_with_strftime_now() -> None:
    prompt = ChatTemplate(REAL_TEMPLATES["llama3_2"]).render([Message.user("hi")], TOOLS)
    assert "Today Date: " + datetime.now().strftime("%d %b %Y") in prompt


def test_a_template_refusing_whatever_kcode_does_is_a_clear_config_error() -> None:
    source = "{{ raise_exception('This model only runs on Tuesdays') }}"
    with pytest.raises(BackendError) as err:
        ChatTemplate(source).render(conversation(), TOOLS)
    assert err.value.kind == "config"
    assert "This model only runs on Tuesdays" in err.value.message


@pytest.mark.parametrize("name", sorted(REAL_ROUND_TRIPS))
def test_a_call_rendered_by_a_real_template_parses_back(name: str) -> None:
    format_name, end_of_turn = REAL_ROUND_TRIPS[name]
    source = REAL_TEMPLATES[name]
    assert detect_format(source) is FORMATS[format_name]
    template = ChatTemplate(source, bos_token="<s>")
    history = [Message.system("You are kcode."), Message.user("find main")]
    call = ToolCall("functions.grep:0", "grep", {"pattern": 'def "main"\n', "context": 2})
    prompt = template.render(history, TOOLS, add_generation_prompt=True)
    full = template.render(
        [*history, Message.assistant("", (call,))], TOOLS, add_generation_prompt=False
    )
    assert full.startswith(prompt), name
    model_output = full[len(prompt) :].split(end_of_turn)[0]
    deltas = parse_complete(model_output, FORMATS[format_name], TOOLS)
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("grep", call.arguments)]
