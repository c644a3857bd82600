"""Chat templates: byte-stable re-rendering (KV prefix reuse) and round trips through each format."""

from __future__ import annotations

import json

import pytest

from kcode.backends.base import BackendError, ToolCallChunk, ToolSpec
from kcode.backends.llama.chat_template import ChatTemplate
from kcode.backends.llama.toolcall_formats import detect_format, parse_complete
from kcode.messages import Message, ToolCall, ToolResult

from .sample_templates import HERMES_CHATML, TEMPLATES

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
    refusing = (
        "{% if messages | length > 1 %}{{ raise_exception('one message only') }}{% endif %}"
        "{{ messages[0].content }}"
    )
    merged = ChatTemplate(refusing).render([Message.user("x"), Message.user("y")])
    assert merged == "x\n\ny"
    # Merging the two user messages satisfies it; three roles cannot be merged into one.
    three = [Message.user("x"), Message.assistant("a"), Message.user("y")]
    with pytest.raises(BackendError) as err:
        ChatTemplate(refusing).render(three, TOOLS)
    assert err.value.kind == "config" and "one message only" in err.value.message


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


def render_source(source: str, messages: list[Message] | None = None, **extra: object) -> str:
    return ChatTemplate(source).render(messages or [Message.user("hi")], extra=extra)


def test_tojson_takes_the_options_transformers_gives_it() -> None:
    value = {"b": "ü", "a": [1, 2]}
    assert render_source("{{ v | tojson }}", v=value) == '{"b": "ü", "a": [1, 2]}'
    assert render_source("{{ v | tojson(ensure_ascii=True) }}", v=value) == (
        '{"b": "\\u00fc", "a": [1, 2]}'
    )
    assert render_source("{{ v | tojson(ensure_ascii=False) }}", v=value) == (
        '{"b": "ü", "a": [1, 2]}'
    )
    assert render_source("{{ v | tojson(sort_keys=True, separators=(',', ':')) }}", v=value) == (
        '{"a":[1,2],"b":"ü"}'
    )
    assert render_source("{{ v | tojson(indent=2) }}", v={"a": 1}) == '{\n  "a": 1\n}'
    assert render_source("{{ v | tojson }}", v="<b>&'") == '"<b>&\'"'  # no HTML escaping


def test_generation_blocks_render_their_body() -> None:
    source = (
        "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
        "[{{ m.content }}]{% endgeneration %}{% else %}<{{ m.content }}>{% endif %}{% endfor %}"
    )
    rendered = render_source(source, [Message.user("q"), Message.assistant("a")])
    assert rendered == "<q>[a]"


def test_templates_can_build_and_change_lists_and_dicts() -> None:
    source = (
        "{% set q = namespace(ids=[]) %}{% set _ = q.ids.append('a') %}{% do q.ids.extend(['b', 'c']) %}"
        "{% do q.ids.insert(0, 'z') %}{% set first = q.ids.pop(0) %}{% set last = q.ids.pop() %}"
        "{% set d = {'x': 1} %}{% do d.update({'y': 2}) %}{% set gone = d.pop('x') %}"
        "{{ first }}|{{ last }}|{{ q.ids | join(',') }}|{{ d | tojson }}|{{ gone }}"
    )
    assert render_source(source) == 'z|c|a,b|{"y": 2}|1'


def test_a_template_changing_what_it_is_given_does_not_change_kcodes_history() -> None:
    call = ToolCall("c1", "grep", {"pattern": "x", "nested": {"keep": [1]}})
    history = [Message.user("hi"), Message.assistant("", (call,))]
    source = (
        "{% for m in messages %}{% for c in m.tool_calls or [] %}"
        "{% do c.function.arguments.nested.keep.append(2) %}{% do c.function.arguments.clear() %}"
        "{% endfor %}{% endfor %}{% do messages.clear() %}"
        "{% do tools[0].function.parameters.properties.clear() %}{{ messages | length }}"
    )
    template = ChatTemplate(source)
    assert template.render(history, TOOLS) == "0"
    assert call.arguments == {"pattern": "x", "nested": {"keep": [1]}}
    assert TOOLS[0].parameters["properties"]
    assert template.render(history, TOOLS) == "0"  # and the next render sees fresh values


@pytest.mark.parametrize(
    "evil",
    [
        "{{ messages.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ raise_exception.__globals__ }}",
        "{{ strftime_now.__globals__['__builtins__'] }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ '{0.__class__.__mro__}'.format(messages) }}",
        "{{ '{0.__globals__}'.format(raise_exception) }}",
        "{{ '{m.__class__}'.format_map({'m': messages}) }}",
        "{{ messages[0]['__class__'] }}{{ messages[0].__class__.__init__ }}",
        "{{ (messages | attr('__class__')).__mro__ }}",
    ],
)
def test_sandbox_blocks_python_internals(evil: str) -> None:
    try:
        rendered = ChatTemplate(evil).render([Message.user("x")])
    except BackendError as err:
        assert err.kind == "config"
        return
    assert "class" not in rendered and "module" not in rendered and "function" not in rendered


@pytest.mark.parametrize(
    "greedy",
    [
        "{% set l = [1] %}{% for x in l %}{% do l.append(x) %}{% endfor %}",
        "{% set d = {} %}{% for i in range(110) %}{% for j in range(99) %}"
        "{% do d.update({i * 100 + j: j}) %}{% endfor %}{% endfor %}",
        "{{ 'a' * 1000000000 }}",
        "{{ [0] * 1000000000 }}",
        "{{ 10 ** 100000000 }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ '%999999999d' | format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:{}}'.format(1, 999999999) }}",
        "{% for i in range(99999) %}{{ 'x' * 99 }}{% endfor %}",
    ],
)
def test_templates_cannot_exhaust_memory_in_one_step(greedy: str) -> None:
    with pytest.raises(BackendError) as err:
        ChatTemplate(greedy).render([Message.user("x")])
    assert err.value.kind == "config"


def test_strftime_now_and_raise_exception_are_there() -> None:
    from datetime import datetime

    assert render_source("{{ strftime_now('%Y-%m-%d') }}") == datetime.now().strftime("%Y-%m-%d")
    with pytest.raises(BackendError) as err:
        render_source("{{ raise_exception('Only user and assistant roles are supported!') }}")
    assert "Only user and assistant roles are supported!" in err.value.message
