"""The OpenAI-compatible chat completions backend (OpenAI, Moonshot/Kimi, vLLM, llama.cpp server...).

Streams deltas through the `openai` SDK with the SDK's own retries off: we retry ourselves so every
retry is announced to the user (`RetryNotice`) and all agents share one adaptive concurrency cap.

Retries restart the whole reply. A consumer that sees a `RetryNotice` after deltas of the current
reply must discard those partial deltas: the reply is streamed again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from kcode.backends.base import (
    BackendError,
    BackendErrorKind,
    BackendOptions,
    Delta,
    FinishChunk,
    ReasoningChunk,
    RetryNotice,
    TextChunk,
    ToolCallChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.backends.retry import AdaptiveLimiter, RetryPolicy, parse_retry_after
from kcode.backends.wire import messages_to_wire, tool_choice_to_wire, tools_to_wire
from kcode.messages import Message

if TYPE_CHECKING:
    from openai import AsyncOpenAI

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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
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
        self._client: AsyncOpenAI | None = None

    # --- public API ------------------------------------------------------------------------------
    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> AsyncIterator[Delta]:
        request = self.build_request(messages, tools, options)
        attempt = 0
        while True:
            produced = False
            async with self.limiter as slot:
                try:
                    async with contextlib.aclosing(self._attempt(request)) as deltas:
                        async for delta in deltas:
                            produced = True
                            yield delta
                    slot.succeeded()
                    return
                except BackendError:
                    raise
                except Exception as err:
                    failure = self._classify(err, produced)
                    if failure is None:
                        raise
                    if failure.kind == "rate_limited" and failure.retryable:
                        slot.rate_limited()
            if not failure.retryable:
                raise await self._final_error(failure, request)
            if attempt >= self.retry_policy.max_retries:
                raise self._exhausted_error(failure, attempt + 1)
            attempt += 1
            delay = self.retry_policy.delay_for(attempt, failure.retry_after_s)
            reason = failure.reason
            if failure.stream_cut or produced:
                reason = f"{reason}; stream cut; restarting the reply"
            yield RetryNotice(attempt, delay, reason)
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def build_request(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> dict[str, Any]:
        """The keyword arguments of `chat.completions.create` for this turn."""
        model = options.model or self.model
        request: dict[str, Any] = {
            "model": model,
            "messages": messages_to_wire(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = tools_to_wire(tools)
            request["tool_choice"] = tool_choice_to_wire(options.tool_choice, tools)
        if options.max_tokens is not None:
            request["max_tokens"] = options.max_tokens
        if options.temperature is not None:
            request["temperature"] = options.temperature
        extra_body: dict[str, Any] = {}
        if options.thinking is not None and self._is_kimi(model):
            extra_body["thinking"] = {"type": "enabled" if options.thinking else "disabled"}
        extra_body.update(options.extra)
        if extra_body:
            request["extra_body"] = extra_body
        return request

    # --- one attempt -----------------------------------------------------------------------------
    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            import openai  # ~1 s to import: only when the first request is made

            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key or "no-key",  # local servers take any key; the SDK wants one
                max_retries=0,
                timeout=openai.Timeout(self._timeout_s, connect=min(self._timeout_s, 10.0)),
                default_headers=self._extra_headers or None,
            )
        return self._client

    async def _attempt(self, request: dict[str, Any]) -> AsyncGenerator[Delta, None]:
        client = self._get_client()
        response: Any = await client.chat.completions.create(**request)
        finish: str | None = None
        usage: UsageChunk | None = None
        try:
            async for chunk in response:
                usage = _usage_of(getattr(chunk, "usage", None)) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    if getattr(choice, "index", 0) not in (0, None):
                        continue
                    for delta in _deltas_of(getattr(choice, "delta", None)):
                        yield delta
                    usage = _usage_of(_extra(choice, "usage")) or usage  # Moonshot puts it here
                    finish = getattr(choice, "finish_reason", None) or finish
        finally:
            await response.close()
        if finish is None:
            raise _StreamCut("the stream ended before the reply was finished")
        if usage is not None:
            yield usage
        yield FinishChunk(finish)

    # --- failures --------------------------------------------------------------------------------
    def _classify(self, err: Exception, produced: bool) -> _Failure | None:
        import openai

        if isinstance(err, _StreamCut):
            return _Failure("server", str(err), retryable=True, stream_cut=True)
        if isinstance(err, openai.APIStatusError):
            return self._classify_status(err)
        if isinstance(err, openai.APITimeoutError):
            kind: BackendErrorKind = "server" if produced else "unreachable"
            return _Failure(kind, f"no answer within {self._timeout_s:g}s", True, None, produced)
        if isinstance(err, openai.APIConnectionError):
            cause = self._redact(_root_cause(err))
            if produced:
                return _Failure("server", f"connection lost: {cause}", True, stream_cut=True)
            return _Failure("unreachable", cause, retryable=True)
        if isinstance(err, openai.APIError):  # an error event inside the stream
            return _Failure("server", self._redact(err.message), True, stream_cut=produced)
        return None

    def _classify_status(self, err: Any) -> _Failure:
        status = int(err.status_code)
        body = err.body if isinstance(err.body, dict) else {}
        error = body.get("error", body) if isinstance(body.get("error", body), dict) else body
        code = str(error.get("code") or error.get("type") or "")
        detail = self._redact(str(error.get("message") or err.message))
        reason = f"HTTP {status}: {detail}"
        if status in (401, 403):
            return _Failure("auth", reason, retryable=False)
        if status == 404 or code == "model_not_found":
            return _Failure("model_not_found", reason, retryable=False)
        if status == 429:
            quota = code == "insufficient_quota"  # billing, not pacing: waiting will not help
            retry_after = parse_retry_after(err.response.headers)
            return _Failure("rate_limited", reason, retryable=not quota, retry_after_s=retry_after)
        if status in (408, 409, 425) or status >= 500:
            return _Failure("server", reason, True, parse_retry_after(err.response.headers))
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
            client = self._get_client().with_options(timeout=3.0, max_retries=0)
            page = await asyncio.wait_for(client.models.list(), timeout=4.0)
            return sorted(str(m.id) for m in page.data)[:20]
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


def _root_cause(err: BaseException) -> str:
    """The innermost cause's message: 'Connection refused' says more than 'Connection error.'"""
    seen: set[int] = set()
    current: BaseException = err
    while current.__cause__ is not None and id(current.__cause__) not in seen:
        seen.add(id(current))
        current = current.__cause__
    text = str(current) or type(current).__name__
    return text if current is err else f"{text} ({type(current).__name__})"


def _extra(obj: Any, name: str) -> Any:
    """A field the SDK's models do not declare (reasoning_content, choice-level usage)."""
    extra = getattr(obj, "model_extra", None)
    if isinstance(extra, dict) and name in extra:
        return extra[name]
    return getattr(obj, name, None)


def _usage_of(raw: Any) -> UsageChunk | None:
    if raw is None:
        return None
    fields: dict[str, Any] = raw if isinstance(raw, dict) else vars(raw)
    prompt, completion = fields.get("prompt_tokens"), fields.get("completion_tokens")
    if prompt is None and completion is None:
        return None
    return UsageChunk(int(prompt or 0), int(completion or 0))


def _deltas_of(delta: Any) -> list[Delta]:
    if delta is None:
        return []
    out: list[Delta] = []
    for field in ("reasoning_content", "reasoning"):
        reasoning = _extra(delta, field)
        if isinstance(reasoning, str) and reasoning:
            out.append(ReasoningChunk(reasoning))
            break
    content = getattr(delta, "content", None)
    if content:
        out.append(TextChunk(content))
    for position, call in enumerate(getattr(delta, "tool_calls", None) or []):
        function = getattr(call, "function", None)
        arguments = getattr(function, "arguments", None)
        if isinstance(arguments, dict):  # a few servers send an object, not a string
            arguments = json.dumps(arguments)
        index = getattr(call, "index", None)
        out.append(
            ToolCallChunk(
                index=index if isinstance(index, int) else position,
                id=getattr(call, "id", None) or None,
                name=getattr(function, "name", None) or None,
                arguments=arguments or "",
            )
        )
    return out
