"""Benchmark the local llama.cpp backend against bare llama-cpp-python in the same run.

Writes a medium random-weight llama model (q8_0, ~250 MB) into bench/.cache/ once, then measures:
  decode:  tokens/s streamed through LlamaCppBackend (parser, thread, queue included) against a bare
           `Llama.generate` loop on the same loaded model (target >= 0.9x)
  ttft:    second-turn time to first token with KV prefix reuse against a cold context (<= 0.3x)
  switch:  two sub-agent conversations taking turns, with the KV state cache against without it
The last line is the summary, e.g. `0.97x bare decode; ttft 0.21x cold; switch 0.15x`.

Run: .venv/bin/python bench/local.py [--threads N] [--tokens N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gguf import GGMLQuantizationType  # noqa: E402

from kcode.backends.base import BackendOptions, UsageChunk  # noqa: E402
from kcode.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from kcode.backends.llama_engine import LlamaEngine  # noqa: E402
from kcode.messages import Message  # noqa: E402
from tests.backends.tiny_gguf import write_llama_gguf  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
MODEL = CACHE / "medium-q8_0.gguf"


def medium_model() -> Path:
    if not MODEL.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = MODEL.with_suffix(".partial")
        print("writing the ~250 MB benchmark model (once)...", file=sys.stderr)
        write_llama_gguf(
            partial,
            n_embd=1024,
            n_layers=14,
            n_ff=4096,
            n_head=16,
            context_length=4096,
            quantization=GGMLQuantizationType.Q8_0,
            seed=1,
        )
        partial.rename(MODEL)
    return MODEL


def conversation(topic: str, words: int) -> list[Message]:
    return [
        Message.system("You are a coding agent. " + "Follow the rules. " * 10),
        Message.user(f"{topic}: " + " ".join(f"step{i}" for i in range(words))),
    ]


def bare_decode(engine: LlamaEngine, prompt: list[int], n_tokens: int) -> tuple[int, float]:
    """Tokens and seconds from first to last generated token, plain llama-cpp-python."""
    llama = engine.llama
    produced, start = 0, time.perf_counter()
    sampling = dict(temp=0.7, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)  # as kcode
    for token in llama.generate(prompt, **sampling):
        if engine.is_end_of_generation(int(token)):
            break
        produced += 1
        if produced >= n_tokens:
            break
    return produced, time.perf_counter() - start


async def backend_decode(
    backend: LlamaCppBackend, messages: list[Message], n_tokens: int
) -> tuple[int, float]:
    produced, start = 0, time.perf_counter()
    async for delta in backend.stream(messages, [], BackendOptions(max_tokens=n_tokens)):
        if isinstance(delta, UsageChunk):
            produced = delta.completion_tokens
    return produced, time.perf_counter() - start


async def first_token_seconds(backend: LlamaCppBackend, messages: list[Message]) -> float:
    start = time.perf_counter()
    async for _ in backend.stream(messages, [], BackendOptions(max_tokens=1)):
        pass
    return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    backend = LlamaCppBackend(medium_model(), n_ctx=4096, n_threads=args.threads)
    messages = conversation("decode", 40)
    await first_token_seconds(backend, messages)  # loads the model
    engine = backend.engine
    assert engine is not None
    prompt = engine.tokenize(
        backend.render_prompt(backend._template, messages, [], BackendOptions())
    )  # type: ignore[arg-type]

    # Both loops start from the same cached prompt (one token re-evaluated), then decode.
    # Best round of each, interleaved ABBA... (whoever ran second last round runs first this
    # round) so neither side always gets the warmer caches, because the machine is shared and noisy.
    bare_rate = kcode_rate = 0.0
    for round_index in range(args.rounds):
        for side in ("bare", "kcode") if round_index % 2 == 0 else ("kcode", "bare"):
            if side == "bare":
                n, t = bare_decode(engine, prompt, args.tokens)
                bare_rate = max(bare_rate, n / t)
            else:
                n, t = await backend_decode(backend, messages, args.tokens)
                kcode_rate = max(kcode_rate, n / t)
    print(f"decode: bare {bare_rate:.1f} tok/s, kcode {kcode_rate:.1f} tok/s")

    history = conversation("ttft", 110)
    second_turn = [*history, Message.assistant("Done."), Message.user("And now the tests?")]
    cold_times, warm_times = [], []
    for _ in range(1):
        engine.llama.reset()
        engine.state_cache.clear()
        cold_times.append(await first_token_seconds(backend, second_turn))
        await first_token_seconds(backend, history)
        warm_times.append(await first_token_seconds(backend, second_turn))
    cold, warm = min(cold_times), min(warm_times)
    print(
        f"ttft: cold {cold:.2f}s, with prefix reuse {warm:.2f}s, prompt {len(engine.tokenize(backend.render_prompt(backend._template, second_turn, [], BackendOptions())))} tok"
    )

    agent_a, agent_b = conversation("agent A", 50), conversation("agent B", 50)

    async def take_turns() -> float:
        a, b = list(agent_a), list(agent_b)
        await first_token_seconds(backend, a)
        await first_token_seconds(backend, b)
        start = time.perf_counter()
        for turn in range(2):
            a += [Message.assistant(f"a{turn}"), Message.user(f"continue a{turn}")]
            await first_token_seconds(backend, a)
            b += [Message.assistant(f"b{turn}"), Message.user(f"continue b{turn}")]
            await first_token_seconds(backend, b)
        return time.perf_counter() - start

    engine.llama.reset()
    engine.state_cache.clear()
    engine.state_cache.max_bytes = 0
    without = await take_turns()
    engine.llama.reset()
    engine.state_cache.max_bytes = 2 << 30
    with_cache = await take_turns()
    print(
        f"switch: 4 turns of two agents {without:.2f}s without state cache, {with_cache:.2f}s with"
    )
    await backend.aclose()
    print(
        f"{kcode_rate / bare_rate:.2f}x bare decode; ttft {warm / cold:.3f}x cold; "
        f"switch {with_cache / without:.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
