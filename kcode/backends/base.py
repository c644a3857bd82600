"""The Backend protocol: turn a conversation into a stream of deltas. Nothing else.

Backends do not execute tools, print or retry forever: they stream deltas, report usage, announce
retries as `RetryNotice` deltas (the loop turns them into events), and raise `BackendError` when the
request cannot succeed. `BackendError.kind` decides the exit code (3) and the message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kcode.messages import Message


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class BackendOptions:
    model: str = ""
    thinking: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    # "auto" | "none" | "required" | a tool name to force
    tool_choice: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)
    # Issue #16: a stable key the server may use to route requests to a warm prompt cache (sent
    # only where the API takes one, see OpenAIBackend), and `--effort` for reasoning models.
    cache_key: str | None = None
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class TextChunk:
    text: str


@dataclass(frozen=True)
class ReasoningChunk:
    text: str


@dataclass(frozen=True)
class ToolCallChunk:
    """A piece of a tool call. `index` groups pieces; id and name arrive once, arguments in parts."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class UsageChunk:
    prompt_tokens: int
    completion_tokens: int
    # Parts of the above the server reported: prompt tokens served from its cache, completion
    # tokens spent on reasoning. `cost` (USD) is filled in by the agent's meter when the model's
    # price is known (kcode.agents.prices); None means unknown, not free.
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None


@dataclass(frozen=True)
class RetryNotice:
    attempt: int
    delay_s: float
    reason: str


@dataclass(frozen=True)
class FinishChunk:
    reason: str  # "stop" | "tool_calls" | "length" | ...
    note: str = ""  # why the answer was cut (a token cap, a loop), for the user; "" if it was not


Delta = TextChunk | ReasoningChunk | ToolCallChunk | UsageChunk | RetryNotice | FinishChunk

BackendErrorKind = Literal[
    "auth", "model_not_found", "unreachable", "rate_limited", "server", "bad_request", "config"
]


class BackendError(Exception):
    """A request that failed for good (after retries). Exit code 3, or 2 for kind == "config"."""

    def __init__(self, kind: BackendErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Backend(Protocol):
    name: str

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> AsyncIterator[Delta]: ...

    async def aclose(self) -> None: ...
