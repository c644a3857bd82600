"""Chat templates: byte-stable re-rendering (KV prefix reuse) and round trips through each format."""

from __future__ import annotations

import json

import pytest

from kcode.backends.base import BackendError, ToolCallChunk, ToolSpec
from kcode.backends.chat_template import ChatTemplate
from kcode.backends.toolcall_formats import detect_format, parse_complete
from kcode.messages import Message, ToolCall, ToolResult

from .sample_templates import HERMES_CHATML, LLAMA3_JSON, TEMPLATES

TOOLS = [
    ToolSpec(
        "grep",
        "Search",
        {
            "type": "object",
            "properties": {"pattern": {"type": "string"}, "context": {"type": "integer"}},
            "required": ["pattern"],
        },
    )
]


def conversation() -> list[Message]:
    call = ToolCall("functions.grep:0", "grep", {"pattern": 'def "main"\n', "context": 2})
    return [
        Message.system("You are kcode."),
        Message.user("find main"),
        Message.assistant("", (call,)),
        Message.tool(ToolResult(call.id, True, "cli.py:3: def main():")),
        Message.assistant("It is in cli.py."),
    ]


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_earlier_turns_render_byte_identically_when_the_conversation_grows(family: str) -> None:
    template = ChatTemplate(TEMPLATES[family][0], bos_token="<s>")
    history = conversation()
    grown = [*history, Message.user("now rename it")]
    before = template.render(history, TOOLS, add_generation_prompt=False)
    after = template.render(grown, TOOLS, add_generation_prompt=True)
    assert after.startswith(before)
    again = template.render(grown, TOOLS, add_generation_prompt=True)
    assert again == after


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_a_call_rendered_by_the_template_parses_back_to_the_same_call(family: str) -> None:
    source, end_of_turn = TEMPLATES[family]
    template = ChatTemplate(source, bos_token="<s>")
    history = conversation()[:2]
    call = ToolCall("functions.grep:0", "grep", {"pattern": 'def "main"\n', "context": 2})
    prompt = template.render(history, TOOLS, add_generation_prompt=True)
    full = template.render(
        [*history, Message.assistant("", (call,))], TOOLS, add_generation_prompt=False
    )
    assert full.startswith(prompt)
    model_output = full[len(prompt) :].split(end_of_turn)[0]
    deltas = parse_complete(model_output, detect_format(source), TOOLS)
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("grep", call.arguments)]


def test_arguments_are_objects_not_double_encoded_strings() -> None:
    rendered = ChatTemplate(HERMES_CHATML).render(conversation(), TOOLS)
    assert '"arguments": {"pattern": "def \\"main\\"\\n", "context": 2}' in rendered
    assert (
        "&#34;" not in rendered and "\\u" not in rendered
    )  # tojson neither HTML- nor ASCII-escapes


def test_template_without_tool_support_gets_the_tools_in_the_system_message() -> None:
    plain = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    rendered = ChatTemplate(plain).render([Message.user("hi")], TOOLS)
    assert rendered.startswith("[system] # Tools") and '"name": "grep"' in rendered


def test_raise_exception_in_a_template_is_a_config_error_with_its_message() -> None:
    two_calls = Message.assistant(
        "", (ToolCall("a", "grep", {"pattern": "x"}), ToolCall("b", "grep", {"pattern": "y"}))
    )
    with pytest.raises(BackendError) as err:
        ChatTemplate(LLAMA3_JSON).render([Message.user("x"), two_calls], TOOLS)
    assert err.value.kind == "config" and "one tool call per turn" in err.value.message


def test_broken_template_is_a_config_error() -> None:
    with pytest.raises(BackendError) as err:
        ChatTemplate("{% for m in messages %}never closed")
    assert err.value.kind == "config" and "template" in err.value.message
    with pytest.raises(BackendError) as err:
        ChatTemplate("{{ messages[0].content.nope() }}").render([Message.user("x")])
    assert err.value.kind == "config"


def test_sandbox_blocks_attribute_escapes() -> None:
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(BackendError):
        ChatTemplate(evil).render([Message.user("x")])
