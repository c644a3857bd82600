"""The same chat stream through the official `openai` SDK, selected with KCODE_OPENAI_TRANSPORT=sdk.

It is the reference the default `HttpTransport` is held to: the backend tests run every behaviour
through both, and a user whose server or proxy misbehaves can rerun the task through the official
client to see whether the fault is ours. Its typed chunks go back to plain dicts and its
exceptions into the `sse_transport` vocabulary, so parsing and error mapping stay in one place.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from kcode.backends.openai.sse_transport import (
    Chunk,
    MalformedStream,
    StatusError,
    StreamErrorEvent,
    error_object,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

# Request fields `chat.completions.create` takes by name; everything else goes in `extra_body`.
_SDK_PARAMS = frozenset(
    {"model", "messages", "stream", "stream_options", "tools", "tool_choice", "max_tokens"}
    | {"temperature"}
)


class SdkTransport:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._extra_headers = dict(extra_headers or {})
        self._client: AsyncOpenAI | None = None

    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            import openai  # 1-2.5 s: this transport is opt-in

            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key or "no-key",  # local servers take any key; the SDK wants one
                max_retries=0,  # the backend retries, announcing each retry
                timeout=openai.Timeout(self._timeout_s, connect=min(self._timeout_s, 10.0)),
                default_headers=self._extra_headers or None,
            )
        return self._client

    async def stream_chunks(self, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        import openai

        client = self._get_client()
        named = {k: v for k, v in body.items() if k in _SDK_PARAMS}
        extra = {k: v for k, v in body.items() if k not in _SDK_PARAMS}
        try:
            response: Any = await client.chat.completions.create(**named, extra_body=extra or None)
        except openai.APIStatusError as err:
            error = error_object({"error": err.body}) if err.body is not None else {}
            raise StatusError(err.status_code, err.response.headers, error, err.message) from err
        except openai.APIConnectionError as err:  # also APITimeoutError
            inner = _transport_error(err)
            # Keep the inner error's own cause: the retry policy looks there for ECONNREFUSED.
            raise inner from inner.__cause__
        try:
            async for chunk in response:
                yield chunk.to_dict()
        except openai.APIError as err:  # an error event inside the stream
            raise StreamErrorEvent(err.message) from err
        except ValueError as err:  # a data line that is not JSON
            raise MalformedStream(f"the stream carried a non-JSON event: {err}") from err
        finally:
            await response.close()

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def _transport_error(err: BaseException) -> BaseException:
    """The httpx2 error the SDK wrapped, so both transports fail with the same exception types."""
    import httpx2
    import openai

    current: BaseException | None = err
    while current is not None:
        if isinstance(current, httpx2.TransportError):
            return current
        current = current.__cause__
    if isinstance(err, openai.APITimeoutError):
        return httpx2.ReadTimeout(str(err))
    return httpx2.ConnectError(str(err))
