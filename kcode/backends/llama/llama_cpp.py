"""Local backend: a GGUF model run in-process by llama.cpp (llama-cpp-python), no server.

Request path: the conversation is rendered with the chat template stored in the GGUF
(`chat_template.py`), tokenized with special tokens parsed, checked against the context size, and
generated token by token in a worker thread (`engine.py`); the text is parsed while it streams
by the tool-call format the template teaches (`toolcall_formats.py`). When a tool is forced, or
`strict_tools` is on, a GBNF grammar built from the tools' JSON schemas (`gbnf.py`) makes the model
write a well-formed call.

Concurrency: one llama context serves one sequence at a time. Requests (the main agent and its
sub-agents) queue on an asyncio lock; the KV state of each conversation is kept in an LRU state
cache, so when sub-agents take turns each one resumes from its own cached prefix instead of
re-reading its whole prompt. Within one conversation the KV prefix is reused turn after turn
because earlier turns re-render byte-identically.

Cancellation: closing or cancelling the stream sets a flag the generation loop checks after every
token; the context lock is only released once the worker thread has stopped.

`llama_cpp` is imported lazily: `import kcode.backends.llama.llama_cpp` works without it installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from kcode.backends.base import (
    BackendError,
    BackendOptions,
    Delta,
    FinishChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.backends.llama.builtin_templates import pick_builtin, stop_texts
from kcode.backends.llama.chat_template import ChatTemplate
from kcode.backends.llama.engine import GenerationResult, LlamaEngine, Sampling
from kcode.backends.llama.gbnf import tool_call_grammar
from kcode.backends.llama.local_context import plan_context
from kcode.backends.llama.local_prompt import compact_request, is_small_model
from kcode.backends.llama.models import inspect_gguf
from kcode.backends.llama.pipe import TokenPipe, wait_for_thread
from kcode.backends.llama.prefix_cache import default_dir as default_prefix_dir
from kcode.backends.llama.request import (
    new_prefix_cache,
    static_prefix_length,
    tool_format_setting,
)
from kcode.backends.llama.steering import load_steering, steered_grammar
from kcode.backends.llama.toolcall_formats import (
    FORMATS,
    THINK_OPEN,
    ToolCallFormat,
    ToolCallStreamParser,
    detect_format,
)
from kcode.messages import Message

# Room kept free for the answer when the caller sets no max_tokens.
DEFAULT_ANSWER_RESERVE = 1024
# Tokens one model call may write when nothing else says (config: max_output_tokens).
DEFAULT_MAX_OUTPUT_TOKENS = 4096


class LlamaCppBackend:
    """`chat_format`: a tool-call format name (kimi, hermes, qwen3_coder, llama3) to use instead of
    the one detected from the template, or a path to a Jinja chat template to use instead of the
    GGUF's own."""

    name = "llama-cpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        mmproj: str | Path | None = None,
        strict_tools: bool = False,
        chat_format: str | None = None,
        steer: str | Path | None = None,
        max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
        kv_cache_mb: int | None = None,
        compact_prompt: bool | None = None,
        tool_format: str = "auto",
        prefix_cache: Path | bool | None = True,
    ) -> None:
        """`n_ctx` None: the model's trained context, capped by `kv_cache_mb` (local_context.py).
        `compact_prompt` None: decided from the model's context and size (local_prompt.py).
        `tool_format`: the config's setting; a format name reads the output in that format.
        `prefix_cache`: where the KV state of the static prompt prefix persists across runs
        (llama_prefix_cache.py): True the user's cache dir, a Path that folder, False/None off."""
        self.info = inspect_gguf(Path(model_path))
        if importlib.util.find_spec("llama_cpp") is None:
            raise BackendError(
                "config", "the llama-cpp backend needs llama-cpp-python: pip install 'kcode[local]'"
            )
        if mmproj is not None and not Path(mmproj).is_file():
            raise BackendError("config", f"the vision projector (mmproj) {mmproj} does not exist")
        self.model_path = Path(model_path)
        self.context_plan = plan_context(self.info, n_ctx, kv_cache_mb)
        self.n_ctx = self.context_plan.n_ctx
        self.max_output_tokens = max_output_tokens
        self.compact_prompt = (
            is_small_model(self.n_ctx, self.info.size_bytes)
            if compact_prompt is None
            else compact_prompt
        )
        self.template_name = ""  # "gguf", "override" or a builtin_templates name, once loaded
        self._stop_texts: tuple[str, ...] = ()
        # cores - 1, for prefill and decode alike: llama.cpp's threads meet at a barrier after
        # every op, so one preempted thread stalls all of them. Measured on this 2-core machine
        # under load (`bench/local.py --only-threads`): 1 thread against 2 read prompts 2.1-2.7x
        # faster and decoded >10x faster; one core is also left for the event loop and tools.
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) - 1)
        self.n_gpu_layers = n_gpu_layers
        self.mmproj = Path(mmproj) if mmproj else None
        self.strict_tools = strict_tools
        self._format_override: ToolCallFormat | None = None
        self._template_override: str | None = None
        self._template_origin = str(self.model_path)
        if chat_format in FORMATS:
            self._format_override = FORMATS[chat_format]
        elif chat_format:
            try:
                self._template_override = Path(chat_format).read_text(encoding="utf-8")
                self._template_origin = chat_format
            except OSError as err:
                raise BackendError(
                    "config",
                    f"chat_format {chat_format!r} is neither a format ({', '.join(FORMATS)}) "
                    f"nor a readable template file: {err}",
                ) from err
        if self._format_override is None:
            self._format_override = tool_format_setting(tool_format)
        # Test/demo hook (steering.py): per-request grammars that make the model's output exact.
        self._steering = load_steering(steer) if steer else []
        self._engine: LlamaEngine | None = None
        self._template: ChatTemplate | None = None
        self._format: ToolCallFormat | None = None
        self._lock = asyncio.Lock()
        self._prefix_dir = (
            default_prefix_dir()
            if prefix_cache is True
            else (Path(prefix_cache) if prefix_cache else None)
        )

    async def _ready(self) -> tuple[LlamaEngine, ChatTemplate, ToolCallFormat]:
        if self._engine is None:
            self._engine = await asyncio.to_thread(
                LlamaEngine,
                self.model_path,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_gpu_layers=self.n_gpu_layers,
                mmproj=self.mmproj,
                prefix_cache=await asyncio.to_thread(
                    new_prefix_cache, self._prefix_dir, self.model_path
                ),
            )
        if self._template is None or self._format is None:
            source = self._template_override or self.info.chat_template
            self.template_name = "override" if self._template_override else "gguf"
            if not source:
                # No template in the GGUF: the model's own format, by name and vocab.
                builtin = pick_builtin(
                    self.info.architecture, self.info.name, self._engine.has_token
                )
                source, self.template_name = builtin.source, builtin.name
            self._stop_texts = stop_texts(source)
            self._template = ChatTemplate(
                source,
                bos_token=self._engine.special_token_text("bos"),
                eos_token=self._engine.special_token_text("eos"),
                origin=self._template_origin,
            )
            self._format = self._format_override or detect_format(source)
        return self._engine, self._template, self._format

    def render_prompt(
        self,
        template: ChatTemplate,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        options: BackendOptions,
        image_marker: str | None = None,
    ) -> str:
        if self.compact_prompt:
            messages, tools = compact_request(messages, tools)
        return template.render(
            messages,
            tools,
            add_generation_prompt=True,
            thinking=options.thinking,
            image_marker=image_marker,
        )

    def _check_images(self, messages: Sequence[Message]) -> list[bytes]:
        images = [part.data for m in messages for part in m.images]
        if images and self.mmproj is None:
            raise BackendError(
                "config",
                "this local model cannot see images: start kcode with a vision model and its "
                "projector (mmproj = PATH in the config), or remove the image",
            )
        return images

    def _grammar(
        self, fmt: ToolCallFormat, tools: Sequence[ToolSpec], options: BackendOptions, opened: bool
    ) -> str | None:
        choice = options.tool_choice
        if not tools or choice == "none":
            return None
        if choice not in ("auto", "required"):
            forced = [t for t in tools if t.name == choice]
            if not forced:
                raise BackendError("bad_request", f"tool_choice names an unknown tool: {choice}")
            return tool_call_grammar(
                fmt, forced, forced=True, allow_several=False, reasoning_open=opened
            )
        if choice == "required":
            return tool_call_grammar(fmt, tools, forced=True, reasoning_open=opened)
        if self.strict_tools:
            return tool_call_grammar(fmt, tools, forced=False, reasoning_open=opened)
        return None

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> AsyncIterator[Delta]:
        images = self._check_images(messages)
        async with self._lock:
            engine, template, fmt = await self._ready()
            n_ctx = engine.n_ctx
            reserve = options.max_tokens or min(DEFAULT_ANSWER_RESERVE, n_ctx // 4)
            tokens: list[int] = []
            static_prefix = 0
            vision_prompt = None
            if images and engine.vision is not None:
                # The images are tokenized with the text in the worker (vision.py).
                marker = engine.vision.marker
                prompt = self.render_prompt(template, messages, tools, options, marker)
                vision_prompt = (prompt, images, n_ctx - reserve)
            else:
                prompt = self.render_prompt(template, messages, tools, options)
                tokens = await asyncio.to_thread(engine.tokenize, prompt)
            static_prefix = 0
            if engine.fresh and engine.prefix_cache is not None:
                static_prefix = static_prefix_length(
                    lambda probe: self.render_prompt(template, probe, tools, options),
                    engine.tokenize,
                    messages,
                    tokens,
                )
            if len(tokens) + reserve > n_ctx:
                raise self._overflow(len(tokens), reserve, n_ctx)
            opened_reasoning = prompt.rstrip().endswith(THINK_OPEN)
            if self._steering:
                grammar: str | None = steered_grammar(self._steering.pop(0), fmt, tools)
            else:
                grammar = self._grammar(fmt, tools, options, opened_reasoning)
            parser = ToolCallStreamParser(fmt, tools, starts_in_reasoning=opened_reasoning)
            sampling = Sampling(
                temperature=0.7 if options.temperature is None else options.temperature
            )
            # With images the prompt's length is only known in the worker: keep to the reserve.
            max_tokens = options.max_tokens or min(
                self.max_output_tokens, reserve if vision_prompt else n_ctx - len(tokens)
            )
            pipe = TokenPipe(asyncio.get_running_loop())
            cancel = threading.Event()

            def run() -> GenerationResult:
                try:
                    return engine.generate(
                        tokens,
                        max_tokens=max_tokens,
                        sampling=sampling,
                        grammar_text=grammar,
                        cancel=cancel,
                        emit=pipe.put,
                        vision_prompt=vision_prompt,
                        stop_texts=self._stop_texts,
                        static_prefix=static_prefix,
                    )
                finally:
                    pipe.close()

            worker = asyncio.ensure_future(asyncio.to_thread(run))
            try:
                async for text in pipe.batches():
                    for delta in parser.feed(text):
                        yield delta
                result = await worker
                for delta in parser.finish():
                    yield delta
            finally:
                cancel.set()
                await wait_for_thread(worker)
            yield UsageChunk(result.prompt_tokens, result.completion_tokens)
            note = self._finish_note(result, max_tokens, options)
            if parser.calls_emitted:
                yield FinishChunk("tool_calls", note)
            elif result.finish_reason in ("length", "repetition"):
                yield FinishChunk("length", note)
            else:
                yield FinishChunk("stop")

    def _finish_note(
        self, result: GenerationResult, max_tokens: int, options: BackendOptions
    ) -> str:
        """Why an answer was cut, for the user; empty when it ended by itself."""
        if result.finish_reason == "repetition":
            return (
                f"the local model was repeating itself; its answer was stopped after "
                f"{result.completion_tokens} tokens"
            )
        if result.finish_reason == "length" and not options.max_tokens:
            setting = "max_output_tokens" if max_tokens == self.max_output_tokens else "n_ctx"
            return (
                f"the local model's answer was cut at {max_tokens} tokens ({setting} in the "
                "config sets the limit)"
            )
        return ""

    def _overflow(self, prompt_tokens: int, reserve: int, n_ctx: int) -> BackendError:
        plan = self.context_plan
        trained = f"; it was trained for {plan.trained}" if plan.trained else ""
        return BackendError(
            "config",
            f"context overflow: the prompt is {prompt_tokens} tokens and {reserve} more are kept "
            f"for the answer, over the {n_ctx}-token context of {self.model_path} "
            f"({plan.describe()}{trained}). Raise n_ctx (or kv_cache_mb) in the config, "
            "use a model with a longer context, or start a new session with less in it",
        )

    async def preflight(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> None:
        """Load the model and check that a conversation of `messages` renders and fits, before
        a session is written: a bad file, a template that fails or a context too small for the
        tools is a usage error (exit 2) that leaves nothing behind. Messages name the file."""
        try:
            async with self._lock:
                engine, template, _ = await self._ready()
                prompt = self.render_prompt(template, messages, tools, BackendOptions())
                tokens = await asyncio.to_thread(engine.tokenize, prompt)
            reserve = min(DEFAULT_ANSWER_RESERVE, engine.n_ctx // 4)
            if len(tokens) + reserve > engine.n_ctx:
                overflow = self._overflow(len(tokens), reserve, engine.n_ctx).message
                raise BackendError(
                    "config",
                    "the context is too small for kcode's system prompt and tools: "
                    + overflow.removeprefix("context overflow: "),
                )
        except BackendError as err:
            if str(self.model_path) in err.message or self.model_path.name in err.message:
                raise
            raise BackendError(err.kind, f"{self.model_path}: {err.message}") from err

    async def aclose(self) -> None:
        async with self._lock:
            if self._engine is not None:
                await asyncio.to_thread(self._engine.close)
                self._engine = None

    # For tests and benchmarks: how much work the context has done.
    @property
    def engine(self) -> LlamaEngine | None:
        return self._engine
