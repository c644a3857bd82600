"""Typed events: the only way the core talks to front ends, tests and the session log.

Every event serialises to one JSON object with `type`, `agent` and `ts`. The stream-json output prints
exactly these objects, so field names here are a public, versioned contract (SCHEMA_VERSION).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias, cast, get_args

SCHEMA_VERSION = 2


@dataclass(kw_only=True)
class Event:
    type: ClassVar[str] = "event"
    agent: str = "main"
    ts: float = field(default_factory=time.time)
    # On a sub-agent's events (and its agent_spawned/agent_finished): the id of the parent's
    # spawn_agents call, so a consumer can nest them under that call. None on the main agent's own.
    parent_call_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def for_agent(self, agent: str) -> Event:
        return dataclasses.replace(self, agent=agent)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


@dataclass(kw_only=True)
class SessionStarted(Event):
    type: ClassVar[str] = "session_started"
    session_id: str
    cwd: str
    backend: str
    model: str
    schema_version: int = SCHEMA_VERSION


@dataclass(kw_only=True)
class TurnStarted(Event):
    type: ClassVar[str] = "turn_started"
    prompt: str


@dataclass(kw_only=True)
class StepStarted(Event):
    type: ClassVar[str] = "step_started"
    step: int


@dataclass(kw_only=True)
class TextDelta(Event):
    type: ClassVar[str] = "text_delta"
    text: str


@dataclass(kw_only=True)
class ReasoningDelta(Event):
    type: ClassVar[str] = "reasoning_delta"
    text: str


@dataclass(kw_only=True)
class AssistantMessage(Event):
    type: ClassVar[str] = "assistant_message"
    text: str
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass(kw_only=True)
class ToolCallStarted(Event):
    type: ClassVar[str] = "tool_call_started"
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(kw_only=True)
class ToolCallFinished(Event):
    type: ClassVar[str] = "tool_call_finished"
    call_id: str
    name: str
    ok: bool
    content: str
    data: dict[str, Any] | None = None
    duration_s: float = 0.0


@dataclass(kw_only=True)
class ApprovalRequested(Event):
    type: ClassVar[str] = "approval_requested"
    call_id: str  # the tool call that asked (tool_call_started.call_id)
    action: str
    tool: str
    summary: str
    detail: str = ""


@dataclass(kw_only=True)
class ApprovalDecided(Event):
    type: ClassVar[str] = "approval_decided"
    call_id: str  # the tool call that asked (tool_call_started.call_id)
    action: str
    tool: str
    allowed: bool
    reason: str = ""


@dataclass(kw_only=True)
class AgentSpawned(Event):
    type: ClassVar[str] = "agent_spawned"
    agent_id: str
    role: str
    prompt: str


@dataclass(kw_only=True)
class AgentFinished(Event):
    type: ClassVar[str] = "agent_finished"
    agent_id: str
    role: str
    ok: bool
    report: str
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0
    files_changed: list[str] = field(default_factory=list)
    error: str | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None  # USD; None when the model's price is unknown


@dataclass(kw_only=True)
class Usage(Event):
    type: ClassVar[str] = "usage"
    prompt_tokens: int
    completion_tokens: int
    requests: int = 1
    # Issue #16: parts of the above (prompt tokens the server's cache served, completion tokens
    # spent reasoning), this request's cost and the agent's running total (USD; None = unknown).
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None
    agent_cost: float | None = None


@dataclass(kw_only=True)
class Retrying(Event):
    type: ClassVar[str] = "retrying"
    attempt: int
    delay_s: float
    reason: str


@dataclass(kw_only=True)
class VisualIteration(Event):
    type: ClassVar[str] = "visual_iteration"
    iteration: int
    score: float
    metrics: dict[str, Any] = field(default_factory=dict)
    best: bool = False


@dataclass(kw_only=True)
class BudgetWarning(Event):
    """A budget is 80 % used (kcode.agents.budget). scope: "run" | "agent"; unit: "tokens" | "usd"."""

    type: ClassVar[str] = "budget_warning"
    scope: str
    unit: str
    used: float
    limit: float
    fraction: float


@dataclass(kw_only=True)
class CacheWarning(Event):
    """The server's prompt cache for this conversation will not be reused (model switch, /clear)."""

    type: ClassVar[str] = "cache_warning"
    reason: str
    message: str


@dataclass(kw_only=True)
class Error(Event):
    type: ClassVar[str] = "error"
    message: str
    kind: str = "error"


# Why a turn ended. Every reason has exactly one exit code in kcode.exit_codes.EXIT_CODES (SPEC §3);
# tests/seam/test_protocol.py refuses a reason without one.
TurnReason: TypeAlias = Literal[
    "completed",
    "failed",
    "max_steps",
    "repeated_calls",
    "approval_required",
    "backend_error",
    "budget_exceeded",
    "timeout",
    "cancelled",
    "error",
    "stopped_by_hook",  # a hook answered continue: false (kcode.extensions)
]
TURN_REASONS: tuple[TurnReason, ...] = get_args(TurnReason)


@dataclass(kw_only=True)
class TurnFinished(Event):
    type: ClassVar[str] = "turn_finished"
    reason: TurnReason
    result: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


# The closed protocol (issue #12): every event a front end can receive, and nothing else. Adding an
# event is one line here; consumers `match` on AnyEvent with `assert_never`, so mypy names every
# consumer that does not handle it, and tests/seam/golden_events.json pins its JSON fields.
AnyEvent: TypeAlias = (
    SessionStarted
    | TurnStarted
    | StepStarted
    | TextDelta
    | ReasoningDelta
    | AssistantMessage
    | ToolCallStarted
    | ToolCallFinished
    | ApprovalRequested
    | ApprovalDecided
    | AgentSpawned
    | AgentFinished
    | Usage
    | Retrying
    | VisualIteration
    | Error
    | TurnFinished
    | BudgetWarning
    | CacheWarning
)

EVENT_TYPES: dict[str, type[Event]] = {cls.type: cls for cls in get_args(AnyEvent)}


def closed(event: Event) -> AnyEvent:
    """`event` as a member of the closed protocol; an event class outside AnyEvent is a bug."""
    if EVENT_TYPES.get(event.type) is not type(event):
        raise TypeError(f"{type(event).__name__} is not part of the event protocol (AnyEvent)")
    return cast("AnyEvent", event)  # checked above: its class is one of AnyEvent's
