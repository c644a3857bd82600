"""The local backend on real GGUFs that ship from PyPI (tests/backends/real_models.py): SmolLM2-135M-
Instruct (a GGUF with its own ChatML template, a real BPE vocab) and Gemma 3 270M (no template in
the GGUF: kcode must pick Gemma's own turn format).

Answers are greedy (temperature 0) and short; where exact text matters a grammar forces it. One
thread each, so the suite stays light on a shared 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kcode.backends.base import (
    BackendOptions,
    Delta,
    FinishChunk,
    TextChunk,
    ToolCallChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.backends.llama.llama_cpp import LlamaCppBackend
from kcode.messages import Message

from .real_models import gemma3, needs_llama, smollm2

pytestmark = [pytest.mark.llama, needs_llama]

MODE_TOOL = ToolSpec(
    "set_mode",
    "Switch the editor mode",
    {
        "type": "object",
        "properties": {"mode": {"enum": ["fast", "careful"]}, "reason": {"type": "string"}},
        "required": ["mode", "reason"],
    },
)
MARKERS = ("<|im_end|>", "<|im_start|>", "<end_of_turn>", "<start_of_turn>", "<eos>")


def backend_fixture(path: Path, **kwargs: Any) -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(path, n_threads=1, **kwargs)
    yield backend
    asyncio.run(backend.aclose())


@pytest.fixture(scope="module")
def smol() -> Iterator[LlamaCppBackend]:
    yield from backend_fixture(smollm2())


@pytest.fixture(scope="module")
def gemma() -> Iterator[LlamaCppBackend]:
    yield from backend_fixture(gemma3(), n_ctx=4096)


async def collect(
    backend: LlamaCppBackend,
    messages: list[Message],
    tools: list[ToolSpec] | None = None,
    **options: Any,
) -> list[Delta]:
    return [d async for d in backend.stream(messages, tools or [], BackendOptions(**options))]


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextChunk))


def hello() -> list[Message]:
    return [Message.system("You are a helpful assistant."), Message.user("Say hello.")]


async def test_smollm2_loads_with_its_trained_context_and_its_own_template(
    smol: LlamaCppBackend,
) -> None:
    assert smol.n_ctx == 8192 and smol.context_plan.trained == 8192  # 8192 x 23 kB of KV fits
    deltas = await collect(smol, hello(), temperature=0.0, max_tokens=48)
    assert smol.template_name == "gguf" and smol.engine is not None
    assert smol.engine.n_ctx == 8192 and smol.engine.use_extra_bufts is False
    text = text_of(deltas)
    # Greedy SmolLM2 greets and ends its turn with <|im_end|>, an end-of-generation token.
    assert "hello" in text.lower()
    assert not any(marker in text for marker in MARKERS)
    assert isinstance(deltas[-1], FinishChunk) and deltas[-1].reason == "stop"


async def test_smollm2_forced_tool_call_is_decoded_through_the_bpe_vocab(
    smol: LlamaCppBackend,
) -> None:
    messages = [Message.system("You control an editor."), Message.user("Be careful from now on.")]
    deltas = await collect(
        smol, messages, [MODE_TOOL], tool_choice="set_mode", temperature=0.0, max_tokens=120
    )
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert [c.name for c in calls if c.name] == ["set_mode"]
    arguments = json.loads("".join(c.arguments for c in calls))
    assert arguments["mode"] in ("fast", "careful") and isinstance(arguments["reason"], str)
    assert not text_of(deltas).strip()
    assert isinstance(deltas[-1], FinishChunk) and deltas[-1].reason == "tool_calls"


async def test_smollm2_next_turn_reuses_the_kv_prefix(smol: LlamaCppBackend) -> None:
    history = [Message.system("You are terse."), Message.user("Name a prime. " * 40)]
    await collect(smol, history, temperature=0.0, max_tokens=4)
    assert smol.engine is not None
    before = smol.engine.tokens_decoded()
    grown = [*history, Message.assistant("7"), Message.user("Another one?")]
    deltas = await collect(smol, grown, temperature=0.0, max_tokens=4)
    usage = next(d for d in deltas if isinstance(d, UsageChunk))
    assert smol.engine.tokens_decoded() - before < usage.prompt_tokens // 4


async def test_smollm2_sub_agents_switch_kv_states(smol: LlamaCppBackend) -> None:
    agent_a = [Message.system("Agent A."), Message.user("Read the files. " * 20)]
    agent_b = [Message.system("Agent B."), Message.user("Run the tests. " * 20)]
    assert smol.engine is not None
    restored = smol.engine.states_restored
    await collect(smol, agent_a, temperature=0.0, max_tokens=2)
    await collect(smol, agent_b, temperature=0.0, max_tokens=2)
    before = smol.engine.tokens_decoded()
    deltas = await collect(
        smol, [*agent_a, Message.assistant("ok"), Message.user("go on")], max_tokens=2
    )
    usage = next(d for d in deltas if isinstance(d, UsageChunk))
    assert smol.engine.states_restored == restored + 1
    assert smol.engine.tokens_decoded() - before - usage.completion_tokens < 30


def test_gemma_context_defaults_to_its_trained_32k() -> None:
    backend = LlamaCppBackend(gemma3(), n_threads=1, kv_cache_mb=4096)
    assert backend.n_ctx == 32768 and backend.context_plan.trained == 32768
    capped = LlamaCppBackend(gemma3(), n_threads=1, kv_cache_mb=64)
    assert capped.n_ctx == (64 << 20) // capped.context_plan.kv_bytes_per_token // 256 * 256


async def test_gemma_without_a_template_gets_gemma_turns_and_stops(gemma: LlamaCppBackend) -> None:
    assert gemma.info.chat_template is None
    # This GGUF is the base (not instruction-tuned) 270M model: greedy, it echoes the prompt in
    # a loop. The turn must still end by itself, without a marker in the text: at an end token,
    # an end-of-turn text, or the loop guard (with a note saying so).
    short = [Message.system("Answer in one word."), Message.user("Reply with just: hello")]
    deltas = await collect(gemma, short, temperature=0.0, max_tokens=600)
    assert gemma.template_name == "gemma"
    assert gemma._template is not None
    prompt = gemma.render_prompt(gemma._template, hello(), [], BackendOptions())
    assert prompt.startswith("<bos><start_of_turn>user\nYou are a helpful assistant.\n\nSay hello.")
    assert prompt.endswith("<end_of_turn>\n<start_of_turn>model\n") and "<|im_start|>" not in prompt
    text = text_of(deltas)
    assert not any(marker in text for marker in MARKERS), text
    finish = deltas[-1]
    assert isinstance(finish, FinishChunk), text
    assert finish.reason == "stop" or "repeating itself" in finish.note, (finish, text)


async def test_gemma_forced_tool_call(gemma: LlamaCppBackend) -> None:
    messages = [Message.system("You control an editor."), Message.user("Go fast.")]
    deltas = await collect(
        gemma, messages, [MODE_TOOL], tool_choice="set_mode", temperature=0.0, max_tokens=120
    )
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert [c.name for c in calls if c.name] == ["set_mode"]
    assert json.loads("".join(c.arguments for c in calls))["mode"] in ("fast", "careful")
