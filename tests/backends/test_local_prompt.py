"""The compact prompt small local models get (kcode/backends/llama/local_prompt.py), and the
`tool_format` setting reaching the local backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kcode.agents.prompts import main_system_prompt
from kcode.backends.base import BackendError, BackendOptions, ToolSpec
from kcode.backends.llama.llama_cpp import LlamaCppBackend
from kcode.backends.llama.local_prompt import (
    CORE_TOOLS,
    compact_request,
    compact_schema,
    is_small_model,
)
from kcode.backends.llama.toolcall_formats import LLAMA3, NO_CALLS, ToolCallStreamParser
from kcode.messages import Message
from kcode.tools.registry import ROLE_TOOLS
from kcode.tools.spec_cache import cached_tool_specs

from .real_models import needs_llama, smollm2
from .tiny_gguf import write_llama_gguf


def kcode_request(tmp_path: Path) -> tuple[list[Message], list[ToolSpec]]:
    system = main_system_prompt(tmp_path, interactive=False)
    return [Message.system(system), Message.user("Say hello")], cached_tool_specs(
        ROLE_TOOLS["main"]
    )


def test_small_is_decided_by_context_or_file_size() -> None:
    assert is_small_model(8192, 5 << 30) and is_small_model(32768, 300 << 20)
    assert not is_small_model(32768, 4 << 30)


def test_compact_request_keeps_core_tools_and_drops_what_names_the_others(tmp_path: Path) -> None:
    messages, tools = kcode_request(tmp_path)
    small_messages, small_tools = compact_request(messages, tools)
    assert [t.name for t in small_tools] == [t.name for t in tools if t.name in CORE_TOOLS]
    originals = {t.name: t.description for t in tools}
    assert all(originals[t.name].startswith(t.description) for t in small_tools)
    assert all(t.description.endswith(".") and "\n" not in t.description for t in small_tools)
    system = small_messages[0].text
    assert "spawn_agents" not in system and "apply_patch" not in system
    assert system.startswith("You are kcode") and "FAILED:" in system  # CI rules survive
    assert messages[0].text != system and small_messages[1] == messages[1]
    assert messages[0].text.count("spawn_agents")  # the caller's messages are untouched


def test_compact_schema_keeps_what_a_call_needs() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "path": {"type": "string", "description": "File path."},
            "limit": {
                "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                "default": None,
            },
            "mode": {"enum": ["a", "b"], "title": "Mode"},
        },
        "required": ["path"],
    }
    assert compact_schema(schema) == {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "limit": {"type": "integer"},
            "mode": {"enum": ["a", "b"]},
        },
        "required": ["path"],
    }


@needs_llama
@pytest.mark.llama
def test_smollm2_gets_the_compact_prompt_a_big_context_model_the_full_one(tmp_path: Path) -> None:
    messages, tools = kcode_request(tmp_path)

    async def prompt_tokens(backend: LlamaCppBackend) -> int:
        engine, template, _ = await backend._ready()
        text = backend.render_prompt(template, messages, tools, BackendOptions())
        count = len(engine.tokenize(text))
        await backend.aclose()
        return count

    small = LlamaCppBackend(smollm2(), n_threads=1)
    full = LlamaCppBackend(smollm2(), n_threads=1, compact_prompt=False)
    assert small.compact_prompt and not full.compact_prompt
    compact, whole = asyncio.run(prompt_tokens(small)), asyncio.run(prompt_tokens(full))
    assert compact < 1200 < 3000 < whole, (compact, whole)


def test_tool_format_setting_reaches_the_local_backend(tmp_path: Path) -> None:
    model = write_llama_gguf(tmp_path / "tiny.gguf", context_length=32768)
    assert LlamaCppBackend(model, tool_format="llama3")._format_override is LLAMA3
    assert LlamaCppBackend(model, tool_format="auto")._format_override is None
    # chat_format (a format name) still wins over tool_format
    assert (
        LlamaCppBackend(model, chat_format="llama3", tool_format="hermes")._format_override
        is LLAMA3
    )
    none = LlamaCppBackend(model, tool_format="none")._format_override
    assert none is NO_CALLS
    parser = ToolCallStreamParser(NO_CALLS, [])
    text = '<tool_call>{"name": "x", "arguments": {}}</tool_call>'
    deltas = parser.feed(text) + parser.finish()
    assert "".join(getattr(d, "text", "") for d in deltas) == text and parser.calls_emitted == 0
    with pytest.raises(BackendError) as err:
        LlamaCppBackend(model, tool_format="xml")
    assert err.value.kind == "config" and "tool_format 'xml'" in err.value.message
