"""The local backend against a tiny random-weight GGUF written by the tests (n_threads=1).

Random weights write noise, so exact output comes from grammars (forced tool calls); everything
else asserts what a user would notice: text streams, calls parse, prompts are reused, bad input is
refused with a clear message.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from kcode.backends.base import (
    BackendError,
    BackendOptions,
    Delta,
    FinishChunk,
    TextChunk,
    ToolCallChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.backends.llama.llama_cpp import LlamaCppBackend
from kcode.messages import ImagePart, Message

from .tiny_gguf import LONG_TOKEN, write_llama_gguf

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip install 'kcode[local]')",
)

MODE_TOOL = ToolSpec(
    "set_mode",
    "Switch the mode",
    {
        "type": "object",
        "properties": {
            "mode": {"enum": ["fast", "careful"]},
            "verbose": {"type": "boolean"},
            "level": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["mode", "verbose"],
    },
)
STOP_TOOL = ToolSpec(
    "stop", "Stop", {"type": "object", "properties": {"now": {"const": True}}, "required": ["now"]}
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_gguf(tmp_path_factory.mktemp("models") / "tiny.gguf")


async def collect(
    backend: LlamaCppBackend,
    messages: list[Message],
    tools: list[ToolSpec] | None = None,
    **options: Any,
) -> list[Delta]:
    return [d async for d in backend.stream(messages, tools or [], BackendOptions(**options))]


def conversation(question: str = "What mode?") -> list[Message]:
    return [Message.system("You are a test."), Message.user(question)]


@needs_llama
@pytest.mark.llama
async def test_streams_text_and_reports_usage(tiny_model: Path) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=1024, n_threads=1)
    deltas = await collect(backend, conversation(), max_tokens=12)
    usage = next(d for d in deltas if isinstance(d, UsageChunk))
    assert usage.completion_tokens <= 12 and usage.prompt_tokens > 10
    assert isinstance(deltas[-1], FinishChunk) and deltas[-1].reason in ("stop", "length")
    await backend.aclose()


@needs_llama
@pytest.mark.llama
@pytest.mark.parametrize("choice", ["set_mode", "required"])
async def test_forced_tool_call_yields_exactly_parseable_arguments(
    tiny_model: Path, choice: str
) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=2048, n_threads=1)
    tools = [MODE_TOOL, STOP_TOOL]
    deltas = await collect(
        backend, conversation(), tools, tool_choice=choice, max_tokens=400, temperature=1.0
    )
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert calls and isinstance(deltas[-1], FinishChunk) and deltas[-1].reason == "tool_calls"
    for call in calls:
        # Seen once in a full run (not reproduced in 50 runs since): arguments cut at
        # '{"name": "stop", "argu'. The finish chunk's note says why a generation was cut.
        assert call.arguments.strip().endswith("}"), (call, deltas[-1])
        arguments = json.loads(call.arguments)
        if call.name == "set_mode":
            assert arguments["mode"] in ("fast", "careful")
            assert isinstance(arguments["verbose"], bool)
            assert set(arguments) <= {"mode", "verbose", "level"}
        else:
            assert choice == "required" and arguments == {"now": True}
    assert not [d for d in deltas if isinstance(d, TextChunk) and d.text.strip()]
    await backend.aclose()


@needs_llama
@pytest.mark.llama
async def test_next_turn_reuses_the_cached_prompt_prefix(tiny_model: Path) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=2048, n_threads=1)
    history = conversation("first question " * 20)
    await collect(backend, history, max_tokens=4)
    assert backend.engine is not None
    before = backend.engine.tokens_decoded()
    grown = [*history, Message.assistant("ok"), Message.user("second")]
    deltas = await collect(backend, grown, max_tokens=4)
    usage = next(d for d in deltas if isinstance(d, UsageChunk))
    decoded = backend.engine.tokens_decoded() - before
    # Only the new turn (and the few generated tokens) went through the model again.
    assert decoded < usage.prompt_tokens // 3
    await backend.aclose()


@needs_llama
@pytest.mark.llama
async def test_switching_conversations_restores_their_cached_state(tiny_model: Path) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=2048, n_threads=1)
    agent_a = conversation("task A: " + "read the files " * 15)
    agent_b = conversation("task B: " + "run the tests " * 15)
    await collect(backend, agent_a, max_tokens=2)
    await collect(backend, agent_b, max_tokens=2)
    assert backend.engine is not None
    before = backend.engine.tokens_decoded()
    deltas = await collect(
        backend, [*agent_a, Message.assistant("x"), Message.user("go")], max_tokens=2
    )
    usage = next(d for d in deltas if isinstance(d, UsageChunk))
    assert backend.engine.states_restored == 1
    assert backend.engine.tokens_decoded() - before - usage.completion_tokens < 40
    await backend.aclose()


@needs_llama
@pytest.mark.llama
async def test_special_and_long_tokens_survive_detokenizing(tiny_model: Path) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=512, n_threads=1)
    await collect(backend, conversation(), max_tokens=1)
    engine = backend.engine
    assert engine is not None
    tokens = engine.tokenize(f"<|im_start|>x{LONG_TOKEN}ü")
    assert b"".join(engine.piece(t) for t in tokens).decode() == f"<|im_start|>x{LONG_TOKEN}ü"
    await backend.aclose()


@needs_llama
@pytest.mark.llama
async def test_cancelling_stops_generation_and_frees_the_model(tiny_model: Path) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=4096, n_threads=1)
    # Greedy: a sampled first token can be end-of-text on these random weights (seen once).
    stream = backend.stream(conversation(), [], BackendOptions(max_tokens=3000, temperature=0))
    first = await anext(stream)
    assert isinstance(first, TextChunk)
    await stream.aclose()
    assert backend.engine is not None and not backend.engine.lock.locked()
    # The next request runs at once instead of waiting for 3000 tokens.
    deltas = await asyncio.wait_for(collect(backend, conversation(), max_tokens=2), timeout=60)
    assert isinstance(deltas[-1], FinishChunk)
    await backend.aclose()


@needs_llama
@pytest.mark.llama
async def test_context_overflow_is_reported_before_generating(tiny_model: Path) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=256, n_threads=1)
    with pytest.raises(BackendError) as err:
        await collect(backend, conversation("long " * 200), max_tokens=50)
    # A usage error (exit 2) that names the model's context and the setting to change.
    assert err.value.kind == "config" and err.value.message.startswith("context overflow:")
    assert f"256-token context of {tiny_model} " in err.value.message
    assert "n_ctx = 256 from the config" in err.value.message and "Raise n_ctx" in err.value.message
    await backend.aclose()


@needs_llama
@pytest.mark.llama
async def test_answers_are_capped_and_the_cut_is_noted(tiny_model: Path) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=1024, n_threads=1, max_output_tokens=16)
    grammar_free = await collect(backend, conversation(), temperature=1.0)
    usage = next(d for d in grammar_free if isinstance(d, UsageChunk))
    finish = grammar_free[-1]
    assert isinstance(finish, FinishChunk) and usage.completion_tokens <= 16
    if finish.reason == "length":  # random weights may also hit an end token first
        assert "cut at 16 tokens (max_output_tokens" in finish.note
    await backend.aclose()


@needs_llama
@pytest.mark.llama
async def test_end_of_turn_text_stops_and_never_reaches_the_stream(tiny_model: Path) -> None:
    # The steering grammar makes the model spell "<|im_end|>" as plain bytes (not its control
    # token, which the grammar cannot produce): the text-level stop must catch it.
    from kcode.backends.llama.steering import SteerStep

    backend = LlamaCppBackend(tiny_model, n_ctx=1024, n_threads=1)
    backend._steering = [SteerStep(text="Done. <|im_end|> user: more")]
    deltas = await collect(backend, conversation(), max_tokens=200)
    text = "".join(d.text for d in deltas if isinstance(d, TextChunk))
    assert text == "Done. " and isinstance(deltas[-1], FinishChunk)
    assert deltas[-1].reason == "stop" and deltas[-1].note == ""
    await backend.aclose()


@needs_llama
@pytest.mark.llama
async def test_image_without_mmproj_is_a_config_error(tiny_model: Path) -> None:
    backend = LlamaCppBackend(tiny_model, n_ctx=256, n_threads=1)
    with pytest.raises(BackendError) as err:
        await collect(backend, [Message.user("look", (ImagePart(b"\x89PNG"),))])
    assert err.value.kind == "config" and "image" in err.value.message


@needs_llama
@pytest.mark.llama
async def test_template_that_fails_to_render_is_a_config_error(tmp_path: Path) -> None:
    model = write_llama_gguf(
        tmp_path / "bad-template.gguf", chat_template="{{ raise_exception('no system role') }}"
    )
    backend = LlamaCppBackend(model, n_ctx=256, n_threads=1)
    with pytest.raises(BackendError) as err:
        await collect(backend, conversation())
    assert err.value.kind == "config" and "no system role" in err.value.message
    await backend.aclose()


def test_file_that_is_not_a_gguf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 not found</html>")
    with pytest.raises(BackendError) as err:
        LlamaCppBackend(fake)
    assert err.value.kind == "config" and "not a GGUF" in err.value.message


def test_truncated_download_is_refused(tmp_path: Path) -> None:
    whole = write_llama_gguf(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(BackendError) as err:
        LlamaCppBackend(cut)
    assert err.value.kind == "config" and "truncated" in err.value.message


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    model = write_llama_gguf(tmp_path / "odd.gguf", architecture="frobnicator")
    with pytest.raises(BackendError) as err:
        LlamaCppBackend(model)
    assert err.value.kind == "config" and "frobnicator" in err.value.message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as err:
        LlamaCppBackend(tmp_path / "nope.gguf")
    assert err.value.kind == "config" and "not found" in err.value.message


def _models(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from kcode.cli.main import run_cli

    code = run_cli(["models", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_models_path_command_resolves_files_and_explains_missing_ones(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = _models(["path", str(tiny_model)], capsys)
    assert (found[0], found[1].strip()) == (0, str(tiny_model))
    missing = _models(["path", str(tiny_model.parent / "absent.gguf")], capsys)
    assert missing[0] == 2 and "not found" in missing[1]


def test_models_path_of_a_hub_spec_not_downloaded_says_to_pull_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = "kcode-tests/never-downloaded-GGUF:model-Q4_K_M.gguf"
    code, output = _models(["path", spec], capsys)
    assert code == 2 and f"run `kcode models pull {spec}`" in output
    code, output = _models(["path", "kcode-tests/never-downloaded-GGUF"], capsys)
    assert code == 2 and "kcode models pull" in output


def test_session_records_the_model_the_backend_chose(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make run` with no model configured uses the default GGUF: the session must still name it.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    from kcode.config.loader import load_config
    from kcode.runtime import build_runtime
    from kcode.safety.approval import NonInteractiveApprover
    from kcode.session import _records

    config = load_config(tmp_path, {"backend": "llama-cpp"}, env={})
    assert config.model == ""
    # Long enough a context for kcode's system prompt in byte-level tokens (the preflight checks).
    model = write_llama_gguf(tmp_path / "tiny.gguf", context_length=32768)
    runtime = build_runtime(
        config, tmp_path, NonInteractiveApprover("auto-edit"), interactive=False,
        backend=LlamaCppBackend(model, n_ctx=16384, n_threads=1),
    )  # fmt: skip
    try:
        meta = next(r for r in _records(runtime.session.path) if r["record"] == "meta")
    finally:
        runtime.session.close()
    assert meta["model"] == "tiny.gguf" and meta["backend"] == "llama-cpp"
