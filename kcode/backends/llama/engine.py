"""The synchronous side of the local backend: one llama.cpp context and its token loop.

Everything here runs in a worker thread and touches the llama context, which is not thread-safe:
`LlamaEngine.lock` is held for every use, so even a generation the async side gave up on finishes
(promptly, it checks its cancel flag after every token) before the next one starts.

Decoding keeps special tokens and long tokens: each token becomes its bytes through
`llama_token_to_piece(special=True)` with a buffer that grows as needed (llama-cpp-python's own
detokenizer uses 32 bytes and its completion API hides control tokens, which would swallow tool-call
markers), and the bytes go through an incremental UTF-8 decoder so multi-byte characters split
across tokens come out whole.

KV reuse: `Llama.generate` keeps the longest common prefix of the new prompt with what the context
already holds and evaluates only the rest. When a request is for another conversation (a sub-agent),
the current KV state is saved into a small LRU `StateCache` (llama_state.py) before it is
overwritten, and the cached state sharing the longest prefix with the new prompt is restored, so
switching back and forth does not re-read whole prompts. Across processes, the first request loads
the KV cells of its static prefix (system prompt and tools) from the user's cache dir when an
earlier run saved them (llama_prefix_cache.py), and saves them when not.

CPU buffer types: models load with `llama_model_params.use_extra_bufts = False`. The "extra
buffer types" are llama.cpp's CPU weight-repacking layouts (AMX tiles on recent Xeons, the
AArch64/AVX repacks of Q4_0); a natively built llama.cpp crashes with signal 11 in decode on AMX
CPUs with them (issue #13: SmolLM2 Q4_1 and Gemma 3 Q4_K_M both die). Turning them off works on
every x86-64 machine; weights offloaded to a GPU do not use them at all. llama-cpp-python 0.3.x
has no `Llama(...)` keyword for the field and builds its params inside `__init__`, so the load
swaps in a `llama_model_default_params` that returns params with the field cleared, under a
process-wide lock (`_LOAD_LOCK`) so concurrent loads never see each other's swap.
`use_extra_bufts=True` restores llama.cpp's default for machines known to be safe.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcode.backends.base import BackendError
from kcode.backends.llama import native_guard
from kcode.backends.llama.output_guard import OutputGuard
from kcode.backends.llama.prefix_cache import MIN_PREFIX_TOKENS, PrefixCache
from kcode.backends.llama.state import (
    MIN_TOKENS_WORTH_SWITCHING,
    SavedState,
    StateCache,
    common_prefix,
)
from kcode.backends.llama.vision import VisionProjector


@dataclass
class GenerationResult:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "cancelled" | "repetition"


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05


_LOAD_LOCK = threading.Lock()


def load_llama(lib: Any, *, use_extra_bufts: bool, **kwargs: Any) -> Any:
    """`lib.Llama(**kwargs)` with `model_params.use_extra_bufts` set (see the module docstring)."""
    import llama_cpp.llama as llama_module

    low_level: Any = getattr(llama_module, "llama_cpp")  # noqa: B009 (not re-exported)
    with _LOAD_LOCK:
        original = low_level.llama_model_default_params

        def default_params() -> Any:
            params = original()
            if hasattr(params, "use_extra_bufts"):
                params.use_extra_bufts = use_extra_bufts
            return params

        low_level.llama_model_default_params = default_params
        try:
            return lib.Llama(**kwargs)
        finally:
            low_level.llama_model_default_params = original


def import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as err:
        raise BackendError(
            "config",
            "the llama-cpp backend needs llama-cpp-python: pip install 'kcode[local]'",
        ) from err
    return llama_cpp


class LlamaEngine:
    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int,
        n_threads: int | None,
        n_gpu_layers: int,
        state_cache_bytes: int = 2 << 30,
        mmproj: Path | None = None,
        use_extra_bufts: bool = False,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        self.lib = import_llama_cpp()
        try:
            self.llama = load_llama(
                self.lib,
                use_extra_bufts=use_extra_bufts,
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=n_gpu_layers,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise BackendError(
                "config", f"llama.cpp could not load {model_path}: {err}; is the file complete?"
            ) from err
        self.vision: VisionProjector | None = None
        if mmproj is not None:
            try:
                self.vision = VisionProjector(self.lib, self.llama, mmproj, n_threads)
            except BaseException:
                self.llama.close()
                raise
        self.use_extra_bufts = bool(self.llama.model_params.use_extra_bufts)
        self.model_path = Path(model_path)
        native_guard.guard_model(str(model_path))
        self.lock = threading.Lock()
        self.state_cache = StateCache(state_cache_bytes)
        self._vocab = self.llama._model.vocab
        self._pieces: dict[int, bytes] = {}
        self.states_restored = 0
        self._last_prompt_length = 0  # prompt tokens of the last generation in the context
        self.prefix_cache = prefix_cache
        self.fresh = True  # nothing evaluated yet: a saved static prefix may be loaded

    # --- vocabulary -------------------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return int(self.llama.n_ctx())

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.llama.metadata)

    def token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.piece(token).decode("utf-8", errors="replace")

    def special_token_text(self, which: str) -> str:
        token = self.llama.token_bos() if which == "bos" else self.llama.token_eos()
        return self.token_text(int(token))

    def tokenize(self, text: str) -> list[int]:
        tokens: list[int] = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = int(self.llama.token_bos())
        if self.lib.llama_vocab_get_add_bos(self._vocab) and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = self.lib.llama_token_to_piece(self._vocab, token, buffer, size, 0, True)
            if n >= 0:
                break
            size = -n  # negative: the piece needs this many bytes
        self._pieces[token] = buffer.raw[:n]
        return self._pieces[token]

    def has_token(self, text: str) -> bool:
        """Whether `text` is exactly one token of the vocabulary (a marker the model knows)."""
        tokens = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return len(tokens) == 1 and self.piece(int(tokens[0])) == text.encode("utf-8")

    def is_end_of_generation(self, token: int) -> bool:
        return bool(self.lib.llama_vocab_is_eog(self._vocab, token))

    def tokens_decoded(self) -> int:
        """Tokens llama.cpp has run through the model so far (prompt and generated)."""
        perf = self.lib.llama_perf_context(self.llama._ctx.ctx)
        return int(perf.n_p_eval) + int(perf.n_eval)

    # --- grammar ----------------------------------------------------------------------------
    def compile_grammar(self, text: str) -> Any:
        """A LlamaGrammar, after checking llama.cpp accepts it (a bad one would crash sampling)."""
        sampler = self.lib.llama_sampler_init_grammar(self._vocab, text.encode(), b"root")
        if not sampler:
            raise BackendError("bad_request", "the tool-call grammar was rejected by llama.cpp")
        self.lib.llama_sampler_free(sampler)
        return self.lib.LlamaGrammar.from_string(text, verbose=False)

    # --- KV state ---------------------------------------------------------------------------
    def _current_tokens(self) -> tuple[int, ...]:
        return tuple(int(t) for t in self.llama.input_ids[: self.llama.n_tokens])

    def _save_current(self) -> None:
        ctx = self.llama._ctx.ctx
        size = int(self.lib.llama_state_get_size(ctx))
        buffer = (ctypes.c_uint8 * size)()
        written = int(self.lib.llama_state_get_data(ctx, buffer, size))
        data = ctypes.string_at(buffer, written)  # one copy, not two
        self.state_cache.put(SavedState(self._current_tokens(), data))

    def _restore(self, state: SavedState) -> None:
        buffer = (ctypes.c_uint8 * len(state.data)).from_buffer_copy(state.data)
        if self.lib.llama_state_set_data(self.llama._ctx.ctx, buffer, len(state.data)) == 0:
            self.llama.reset()
            return
        self.llama.input_ids[: len(state.tokens)] = state.tokens
        self.llama.n_tokens = len(state.tokens)
        self._last_prompt_length = len(state.tokens)
        # The restored logits are stale: generate() re-evaluates at least the last prompt token.
        self.llama._requires_eval = True
        self.states_restored += 1

    def start_from_saved_prefix(self, prefix: Sequence[int]) -> None:
        """First request of the process: load the KV state of `prefix` (the static system
        prompt and tools) saved by an earlier run, or evaluate it and save it for the next one
        (llama_prefix_cache.py). Its evaluation is part of the prompt's anyway."""
        cache = self.prefix_cache
        if cache is None or len(prefix) < MIN_PREFIX_TOKENS:
            return
        ctx = self.llama._ctx.ctx
        self.llama._ctx.kv_cache_clear()
        if cache.restore(self.lib, ctx, prefix):
            self.llama.input_ids[: len(prefix)] = prefix
            self.llama.n_tokens = len(prefix)
            self.llama._requires_eval = True  # no logits were restored
            return
        self.llama.reset()
        self.llama._ctx.kv_cache_clear()  # whatever a refused state left behind
        self.llama.eval(list(prefix))
        cache.save(self.lib, ctx, prefix)

    def prepare_context(self, prompt: Sequence[int]) -> None:
        """Put the KV state sharing most with `prompt` in place; keep the one it replaces."""
        current = self._current_tokens()
        reusable = common_prefix(current, prompt)
        # The same conversation going on (its whole last prompt is kept, at most the tokens it
        # generated are dropped) does not save anything: a state copy costs ~0.2 s per 30 MB.
        same_conversation = reusable >= self._last_prompt_length
        if not same_conversation and len(current) - reusable >= MIN_TOKENS_WORTH_SWITCHING:
            self._save_current()
        cached, cached_length = self.state_cache.best_match(prompt)
        if cached is not None and cached_length - reusable >= MIN_TOKENS_WORTH_SWITCHING:
            self._restore(cached)

    # --- generation -------------------------------------------------------------------------
    def generate(
        self,
        prompt: Sequence[int],
        *,
        max_tokens: int,
        sampling: Sampling,
        grammar_text: str | None,
        cancel: threading.Event,
        emit: Callable[[str], None],
        vision_prompt: tuple[str, Sequence[bytes], int] | None = None,
        stop_texts: Sequence[str] = (),
        static_prefix: int = 0,
    ) -> GenerationResult:
        """`vision_prompt`: (text with image markers, images, room for the prompt) instead of
        `prompt` tokens, for a conversation with images (vision.py). `static_prefix`: how
        many leading prompt tokens are the static system prompt and tools. Generation ends at an
        end-of-generation token of the vocab, at one of `stop_texts` (never emitted), when the
        output loops (output_guard.py), at `max_tokens`, or when `cancel` is set."""
        crash_for_test = os.environ.get(native_guard.TEST_CRASH_ENV) == "1"
        with self.lock:
            grammar = self.compile_grammar(grammar_text) if grammar_text else None
            if vision_prompt is not None:
                if self.vision is None:
                    raise BackendError("config", "this model was loaded without an mmproj")
                prompt = self.vision.evaluate(*vision_prompt)
            else:
                if self.fresh and 0 < static_prefix < len(prompt):
                    self.start_from_saved_prefix(prompt[:static_prefix])
                self.prepare_context(prompt)
            self.fresh = False
            self._last_prompt_length = len(prompt)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            guard = OutputGuard(stop_texts)
            produced = 0
            finish = "length"
            generator = self.llama.generate(
                list(prompt),
                temp=sampling.temperature,
                top_k=sampling.top_k,
                top_p=sampling.top_p,
                min_p=sampling.min_p,
                repeat_penalty=1.0,
                grammar=grammar,
            )
            try:
                for token in generator:
                    if cancel.is_set():
                        finish = "cancelled"
                        break
                    if self.is_end_of_generation(int(token)):
                        finish = "stop"
                        break
                    if crash_for_test:
                        native_guard.crash_for_test()
                    produced += 1
                    text = guard.feed(decoder.decode(self.piece(int(token))))
                    if text:
                        emit(text)
                    if guard.stopped:
                        finish = guard.stopped
                        break
                    if produced >= max_tokens:
                        break
            finally:
                generator.close()
            tail = guard.feed(decoder.decode(b"", final=True)) if not guard.stopped else ""
            tail += guard.flush()
            if tail:
                emit(tail)
            return GenerationResult(len(prompt), produced, finish)

    def close(self) -> None:
        with self.lock:
            if self.vision is not None:
                self.vision.close()
            self.llama.close()
            native_guard.release_model(str(self.model_path))
