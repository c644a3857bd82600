"""Built-in turn formats for GGUFs without a template: chosen by architecture and real vocab."""

from __future__ import annotations

import pytest

from kcode.backends.base import ToolSpec
from kcode.backends.llama.builtin_templates import BUILTIN_TEMPLATES, pick_builtin, stop_texts
from kcode.backends.llama.chat_template import ChatTemplate
from kcode.messages import Message, ToolCall, ToolResult

from .sample_templates import HERMES_CHATML


def vocab(*tokens: str):  # type: ignore[no-untyped-def]
    return lambda text: text in tokens


@pytest.mark.parametrize(
    ("arch", "name", "tokens", "expected"),
    [
        ("gemma3", "Gemma 3 270m", ("<start_of_turn>", "<end_of_turn>"), "gemma"),
        ("llama", "Llama 3.2", ("<|start_header_id|>", "<|eot_id|>"), "llama3"),
        ("llama", "SmolLM", ("<|im_start|>", "<|im_end|>"), "chatml"),
        ("phi3", "Phi 3 mini", ("<|user|>", "<|end|>"), "phi3"),
        ("llama", "Mistral 7B", ("[INST]", "[/INST]"), "mistral"),
        # No <|im_start|> in the vocab: never ChatML, whose markers such a model would echo.
        ("llama", "some base model", (), "plain"),
        ("gemma3", "Gemma 3 270m", (), "plain"),
    ],
)
def test_the_format_follows_architecture_and_vocab(
    arch: str, name: str, tokens: tuple[str, ...], expected: str
) -> None:
    assert pick_builtin(arch, name, vocab(*tokens)).name == expected


def test_gemma_folds_the_system_text_into_the_first_user_turn_and_writes_calls() -> None:
    template = ChatTemplate(BUILTIN_TEMPLATES["gemma"].source, bos_token="<bos>")
    tool = ToolSpec("read_file", "Read a file", {"type": "object", "properties": {}})
    messages = [
        Message.system("Be brief."),
        Message.user("Read a.txt"),
        Message.assistant("", (ToolCall("c1", "read_file", {"path": "a.txt"}),)),
        Message.tool(ToolResult("c1", True, "hello")),
    ]
    prompt = template.render(messages, [tool])
    assert prompt.startswith("<bos><start_of_turn>user\nBe brief.")
    assert "system" not in prompt.split("<start_of_turn>")[1].split("\n")[0]
    assert (
        '<start_of_turn>model\n\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.txt"}}'
        in prompt
    )
    assert "<tool_response>\nhello\n</tool_response><end_of_turn>" in prompt
    assert "read_file" in prompt.split("Read a.txt")[0]  # the tools are described up front
    assert prompt.endswith("<start_of_turn>model\n")


def test_every_builtin_renders_a_conversation() -> None:
    messages = [Message.system("S"), Message.user("U"), Message.assistant("A"), Message.user("V")]
    for builtin in BUILTIN_TEMPLATES.values():
        prompt = ChatTemplate(builtin.source).render(messages)
        assert "S" in prompt and "A" in prompt and prompt.index("U") < prompt.index("V")
        assert stop_texts(builtin.source) == builtin.stop_texts


def test_stop_texts_of_a_gguf_template() -> None:
    assert stop_texts(HERMES_CHATML) == ("<|im_end|>", "<|im_start|>")
    assert stop_texts("{{ '<|start|>assistant<|channel|>final<|message|>' }}<|end|>") == ()
