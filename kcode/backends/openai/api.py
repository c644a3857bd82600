"""The OpenAI-compatible chat completions backend (OpenAI, Moonshot/Kimi, vLLM, llama.cpp server...).

Requests go through `HttpTransport` (httpx2 + our own SSE reader), not the `openai` SDK, because
`import openai` alone costs 1-2.5 s and the first request must leave at once (issue 2). We use
nothing the SDK adds: its retries are off (we retry ourselves so every retry is announced to the
user as a `RetryNotice` and all agents share one adaptive concurrency cap), its exceptions are
mapped to our own kinds, and its typed chunks lack the fields we need (reasoning_content,
choice-level usage). We did not switch to the SDK once it had loaded in the background: the
import would burn 1-2.5 s of CPU holding the GIL while the first reply streams, on every run;
request 1 and request 2 would behave differently (headers, timeouts, error shapes) and the second
would open a fresh connection (a new TLS handshake) instead of reusing the first one.

The SDK stays as the reference transport (`KCODE_OPENAI_TRANSPORT=sdk`, `SdkTransport`): the
tests run every behaviour through both, and a user can check a misbehaving server against the
official client. Both transports yield plain chunk dicts (read by `chat_chunks`) and fail with
the `sse_transport` exception vocabulary (classified once, in `_classify`).

Retries restart the whole reply. A consumer that sees a `RetryNotice` after deltas of the current
reply must discard those partial deltas: the reply is streamed again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from kcode import __version__
from kcode.backends.base import (
    BackendError,
    BackendErrorKind,
    BackendOptions,
    Delta,
    FinishChunk,
    RetryNotice,
    ToolSpec,
)
from kcode.backends.openai.chat_chunks import ChunkReader
from kcode.backends.openai.content_calls import ContentToolCalls, check_tool_format
from kcode.backends.openai.retry import AdaptiveLimiter, RetryPolicy, parse_retry_after
from kcode.backends.openai.sse_transport import (
    Chunk,
    HttpTransport,
    MalformedStream,
    StatusError,
    StreamErrorEvent,
)
from kcode.backends.openai.wire import messages_to_wire, tool_choice_to_wire, tools_to_wire
from kcode.messages import Message

KEY_HINT = "check KCODE_API_KEY / OPENAI_API_KEY / MOONSHOT_API_KEY"
URL_HINT = "check --base-url / KCODE_BASE_URL or start the server"


@dataclass(frozen=True)
class _Failure:
    """One failed attempt, classified."""

    kind: BackendErrorKind
    reason: str  # short, for the RetryNotice and the final message
    retryable: bool
    retry_after_s: float | None = None
    stream_cut: bool = False


class _StreamCut(Exception):
    """The stream ended without a finish_reason: the connection dropped mid-reply."""


class ChunkTransport(Protocol):
    def stream_chunks(self, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]: ...

    async def aclose(self) -> None: ...


@dataclass
class _Progress:
    """Whether the current attempt has received any chunk: a failure after that is a cut stream,
    not an unreachable server."""

    started: bool = False


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        max_concurrency: int = 16,
        extra_headers: Mapping[str, str] | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        retry_after_cap_s: float = 60.0,
        transport: str | None = None,
        tool_format: str = "auto",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        # Tool-call markup a server leaves in `content` (content_calls.py): auto|none|a format.
        try:
            self.tool_format = check_tool_format(tool_format)
        except ValueError as err:
            raise BackendError("config", str(err)) from None
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._extra_headers = dict(extra_headers or {})
        self.retry_policy = RetryPolicy(
            max_retries=max(0, max_retries),
            base_delay_s=backoff_base_s,
            max_delay_s=backoff_max_s,
            max_retry_after_s=retry_after_cap_s,
        )
        self.limiter = AdaptiveLimiter(max_concurrency)
        # Also lists the models after a 404, whichever transport streams.
        self._http = HttpTransport(
            self.base_url,
            api_key,
            timeout_s=timeout_s,
            extra_headers=self._extra_headers,
            user_agent=f"kcode/{__version__}",
        )
        self.transport_name = transport or os.environ.get("KCODE_OPENAI_TRANSPORT") or "http"
        self._transport: ChunkTransport = self._make_transport(self.transport_name)

    # --- public API ------------------------------------------------------------------------------
    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> AsyncIterator[Delta]:
        request = self.build_request(messages, tools, options)
        attempt = 0
        while True:
            progress = _Progress()
            async with self.limiter as slot:
                try:
                    async with contextlib.aclosing(
                        self._attempt(request, progress, tools)
                    ) as deltas:
                        async for delta in deltas:
                            yield delta
                    slot.succeeded()
                    return
                except BackendError:
                    raise
                except Exception as err:
                    failure = self._classify(err, progress.started)
                    if failure is None:
                        raise
                    if failure.kind == "rate_limited" and failure.retryable:
                        slot.rate_limited()
                    retries = self.retry_policy.retries_for(err, self.base_url)
            if not failure.retryable:
                raise await self._final_error(failure, request)
            if attempt >= retries:
                raise self._exhausted_error(failure, attempt + 1)
            attempt += 1
            delay = self.retry_policy.delay_for(attempt, failure.retry_after_s)
            reason = failure.reason
            if failure.stream_cut or progress.started:
                reason = f"{reason}; stream cut; restarting the reply"
            yield RetryNotice(attempt, delay, reason)
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self._transport.aclose()
        if self._transport is not self._http:
            await self._http.aclose()

    def build_request(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> dict[str, Any]:
        """The JSON body of this turn's POST /chat/completions.

        Key order is part of prompt caching (issue #16): what stays the same for a whole session
        (model, cache key, tools) comes first and the conversation after it, so the serialised
        body of each request starts with the bytes of the previous one; per-request settings
        follow the messages."""
        model = options.model or self.model
        request: dict[str, Any] = {"model": model}
        if options.cache_key and self.takes_cache_key():
            request["prompt_cache_key"] = options.cache_key
        if tools:
            request["tools"] = tools_to_wire(tools)
            request["tool_choice"] = tool_choice_to_wire(options.tool_choice, tools)
        request["messages"] = messages_to_wire(messages)
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
        if options.max_tokens is not None:
            request["max_tokens"] = options.max_tokens
        temperature = options.temperature
        if temperature is None and _is_kimi_k25(model):
            # Moonshot's recommended sampling for Kimi K2.5: 1.0 thinking (its default), 0.6 instant.
            temperature = 0.6 if options.thinking is False else 1.0
        if temperature is not None:
            request["temperature"] = temperature
        if options.thinking is not None and self._is_kimi(model):
            request["thinking"] = {"type": "enabled" if options.thinking else "disabled"}
        if options.reasoning_effort and not self._is_kimi(model):
            # Kimi has thinking on/off only; OpenAI's reasoning models (and servers that copy
            # them) take low|medium|high.
            request["reasoning_effort"] = options.reasoning_effort
        request.update(options.extra)
        return request

    def takes_cache_key(self) -> bool:
        """`prompt_cache_key` goes only to OpenAI's own API, which documents it: other
        OpenAI-compatible servers may reject unknown fields (strict validators answer 400), and
        Moonshot caches by prefix automatically without one."""
        host = urlsplit(self.base_url).hostname or ""
        return host == "api.openai.com" or host.endswith(".api.openai.com")

    # --- one attempt -----------------------------------------------------------------------------
    def _make_transport(self, name: str) -> ChunkTransport:
        if name == "http":
            return self._http
        if name == "sdk":
            from kcode.backends.openai.sdk_transport import SdkTransport

            return SdkTransport(
                self.base_url,
                self._api_key,
                timeout_s=self._timeout_s,
                extra_headers=self._extra_headers,
            )
        raise BackendError(
            "config", f"KCODE_OPENAI_TRANSPORT={name!r} is not a transport; use http or sdk"
        )

    async def _attempt(
        self, request: dict[str, Any], progress: _Progress, tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[Delta, None]:
        reader = ChunkReader()
        markup = ContentToolCalls(self.tool_format, tools)
        chunks = self._transport.stream_chunks(request)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                progress.started = True
                try:
                    deltas = reader.read(chunk)
                except (TypeError, AttributeError, ValueError):
                    # A JSON object of the wrong shape ({"choices": 5}): a mangled stream, retried
                    # like one that is not JSON at all, instead of crashing the turn.
                    raise MalformedStream(
                        f"the stream carried a chunk of the wrong shape: {str(chunk)[:80]!r}"
                    ) from None
                for delta in markup.read(deltas):
                    yield delta
        if reader.finish_reason is None:
            raise _StreamCut("the stream ended before the reply was finished")
        held, finish_reason = markup.finish(reader.finish_reason)
        for delta in held:
            yield delta
        if reader.usage is not None:
            yield reader.usage
        yield FinishChunk(finish_reason)

    # --- failures --------------------------------------------------------------------------------
    def _classify(self, err: Exception, started: bool) -> _Failure | None:
        import httpx2  # already loaded by the transport; only needed once something failed

        if isinstance(err, _StreamCut):
            return _Failure("server", str(err), retryable=True, stream_cut=True)
        if isinstance(err, StatusError):
            return self._classify_status(err)
        if isinstance(err, httpx2.TimeoutException):
            kind: BackendErrorKind = "server" if started else "unreachable"
            return _Failure(kind, f"no answer within {self._timeout_s:g}s", True, None, started)
        if isinstance(err, httpx2.TransportError):
            cause = self._redact(_root_cause(err))
            if started:
                return _Failure("server", f"connection lost: {cause}", True, stream_cut=True)
            return _Failure("unreachable", cause, retryable=True)
        if isinstance(err, StreamErrorEvent | MalformedStream):
            return _Failure("server", self._redact(str(err)), True, stream_cut=started)
        return None

    def _classify_status(self, err: StatusError) -> _Failure:
        status, error = err.status, err.error
        code = str(error.get("code") or error.get("type") or "")
        reason = f"HTTP {status}: {self._redact(err.message)}"
        if status in (401, 403):
            return _Failure("auth", reason, retryable=False)
        if status == 404 or code == "model_not_found":
            return _Failure("model_not_found", reason, retryable=False)
        if status == 429:
            quota = code == "insufficient_quota"  # billing, not pacing: waiting will not help
            retry_after = parse_retry_after(err.headers)
            return _Failure("rate_limited", reason, retryable=not quota, retry_after_s=retry_after)
        if status in (408, 409, 425) or status >= 500:
            return _Failure("server", reason, True, parse_retry_after(err.headers))
        return _Failure("bad_request", reason, retryable=False)

    async def _final_error(self, failure: _Failure, request: dict[str, Any]) -> BackendError:
        url = self._display_url()
        if failure.kind == "auth":
            return BackendError(
                "auth", f"the server at {url} rejected the API key ({failure.reason}); {KEY_HINT}"
            )
        if failure.kind == "model_not_found":
            available = await self._available_models()
            listing = f"; available: {', '.join(available)}" if available else ""
            return BackendError(
                "model_not_found",
                f"model {request['model']!r} was not found at {url} ({failure.reason}). "
                f"Set --model or KCODE_MODEL (is the base URL right? it usually ends in /v1)"
                f"{listing}",
            )
        if failure.kind == "rate_limited":
            return BackendError(
                "rate_limited",
                f"the server at {url} refused the request for quota reasons ({failure.reason}); "
                "check the account's plan and billing",
            )
        return BackendError(
            failure.kind, f"the server at {url} rejected the request: {failure.reason}"
        )

    def _exhausted_error(self, failure: _Failure, attempts: int) -> BackendError:
        url = self._display_url()
        if failure.kind == "unreachable":
            return BackendError(
                "unreachable",
                f"cannot reach {url} after {attempts} attempts: {failure.reason}; {URL_HINT}",
            )
        if failure.kind == "rate_limited":
            return BackendError(
                "rate_limited",
                f"the server at {url} was still rate limiting after {attempts} attempts "
                f"({failure.reason}); wait a minute, or lower --max-parallel",
            )
        return BackendError(
            "server",
            f"the server at {url} failed {attempts} attempts in a row (last: {failure.reason}); "
            "try again later or check the server's logs",
        )

    async def _available_models(self) -> list[str]:
        """Model ids from GET /models, if the server answers quickly; [] otherwise."""
        try:
            ids = await asyncio.wait_for(self._http.list_model_ids(timeout_s=3.0), timeout=4.0)
            return sorted(ids)[:20]
        except Exception:  # the list is a courtesy; never mask the real error
            return []

    def _display_url(self) -> str:
        """The base URL without any user:password part, which may hold a secret."""
        parts = urlsplit(self.base_url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def _redact(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text

    def _is_kimi(self, model: str) -> bool:
        """Kimi models take the `thinking` switch; other servers may reject unknown fields."""
        host = urlsplit(self.base_url).netloc.lower()
        return "kimi" in model.lower() or "moonshot" in host


def _is_kimi_k25(model: str) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return name.startswith(("kimi-k2.5", "kimi-k2p5"))


def _root_cause(err: BaseException) -> str:
    """The innermost cause's message: 'Connection refused' says more than 'Connection error.'"""
    seen: set[int] = set()
    current: BaseException = err
    while current.__cause__ is not None and id(current.__cause__) not in seen:
        seen.add(id(current))
        current = current.__cause__
    text = str(current) or type(current).__name__
    return text if current is err else f"{text} ({type(current).__name__})"
