"""One agent turn: stream the model, run its tool calls, feed results back, until it answers.

`Agent.run_turn` is an async generator of events; it never prints and never asks (approvals go through
the Approver in the ToolContext). The same class runs the main agent and every sub-agent. The tool
calls of a reply run in kcode.agents.tool_calls (concurrency, approval order, result messages).

Invariants the loop keeps, whatever happens (errors, approval stops, cancellation):
- every assistant tool call in the history gets exactly one tool result, in call order;
- the turn ends with exactly one TurnFinished event whose `reason` maps to an exit code (cli/main.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kcode.agents.budget import BUDGET_EXCEEDED, BudgetExceeded, BudgetNotice, Meter
from kcode.agents.reread import note_repeated_read
from kcode.agents.stats import AgentStats
from kcode.agents.tool_calls import dangling_results, drain, result_messages, run_calls
from kcode.backends.base import (
    Backend,
    BackendError,
    BackendOptions,
    FinishChunk,
    ReasoningChunk,
    RetryNotice,
    TextChunk,
    ToolCallChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.events import (
    AssistantMessage,
    Error,
    Event,
    ReasoningDelta,
    Retrying,
    StepStarted,
    TextDelta,
    TurnFinished,
    TurnReason,
    TurnStarted,
    Usage,
)
from kcode.messages import Message, ToolCall, ToolResult
from kcode.safety.approval import ApprovalRequired
from kcode.safety.json_input import MAX_ARGUMENT_DEPTH, loads_json
from kcode.safety.text_input import valid_unicode, valid_unicode_in
from kcode.tools.base import Tool, ToolContext
from kcode.tools.registry import tool_specs
from kcode.vcs.checkpoints import CheckpointError

# Identical consecutive tool-call sets: warn the model at REPEAT_WARN (kcode.agents.tool_calls),
# stop the turn at REPEAT_STOP.
REPEAT_STOP = 5
FAILED_PREFIX = "FAILED"

# TurnFinished.reason values
COMPLETED: Final = "completed"
FAILED: Final = "failed"
MAX_STEPS: Final = "max_steps"
REPEATED: Final = "repeated_calls"
APPROVAL: Final = "approval_required"
BACKEND_ERROR: Final = "backend_error"
CANCELLED: Final = "cancelled"
TIMEOUT: Final = "timeout"
HOOK_STOPPED: Final = "stopped_by_hook"


@dataclass
class _CallParts:
    """One tool call as it streams in: its id, and its name and arguments in pieces."""

    id: str = ""
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Reply:
    """One streamed reply, kept in pieces and joined when read: `+=` on an attribute or a dict
    item copies the whole string every time (CPython's in-place concatenation helps only local
    variables), and a 2 MB reply in 8-character deltas took 89 s."""

    text_parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    calls: dict[int, _CallParts] = field(default_factory=dict)
    finish: str = ""

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    def restart(self) -> None:
        """The backend retries the request: whatever streamed so far is void."""
        self.text_parts, self.reasoning_parts, self.calls = [], [], {}

    def tool_calls(self) -> tuple[ToolCall, ...]:
        out = []
        for index in sorted(self.calls):
            raw = self.calls[index]
            call_id = valid_unicode(raw.id or f"call_{uuid.uuid4().hex[:12]}")
            text = valid_unicode("".join(raw.arguments).strip())
            try:
                # valid_unicode_in: a "\ud800" escape decodes to a string no encoder accepts.
                args = valid_unicode_in(loads_json(text, MAX_ARGUMENT_DEPTH)) if text else {}
                invalid = None if isinstance(args, dict) else text
            except ValueError:
                args, invalid = {}, text
            name = valid_unicode("".join(raw.name))
            out.append(ToolCall(call_id, name, args if invalid is None else {}, invalid))
        return tuple(out)


class Agent:
    def __init__(
        self,
        *,
        backend: Backend,
        tools: Mapping[str, Tool[Any]],
        ctx: ToolContext,
        system_prompt: str,
        options: BackendOptions,
        max_steps: int = 100,
        agent_id: str = "main",
        role: str = "main",
        history: list[Message] | None = None,
        on_message: Callable[[Message], None] | None = None,
        specs: list[ToolSpec] | None = None,
    ) -> None:
        self.backend = backend
        self.tools = tools
        self.ctx = ctx
        self.options = options
        self.max_steps = max_steps
        self.agent_id = agent_id
        self.stats = AgentStats(agent_id=agent_id, role=role)
        self.history: list[Message] = history or [Message.system(system_prompt)]
        self._on_message = on_message
        # Precomputed specs (tools/spec_cache.py) let the first request go out before tool import.
        self._specs = specs if specs is not None else tool_specs(tools)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        # Usage, cost and budgets (kcode.agents.budget); set by the runtime and the orchestrator.
        self.meter: Meter | None = None
        # The end-of-turn snapshot or --auto-commit that failed (Runtime.run_turn reports it).
        self.checkpoint_note = ""

    def _add(self, message: Message) -> None:
        self.history.append(message)
        if self._on_message is not None:
            self._on_message(message)

    async def _emit(self, event: Event) -> None:
        await self._queue.put(event)

    async def run_turn(self, message: Message) -> AsyncIterator[Event]:
        started = time.monotonic()
        self.ctx.emit = self._emit
        self.ctx.agent_id = self.agent_id
        self.ctx.last_tests = None  # "tests still red" means red in this turn, not an earlier one
        snapshot_failed = await self._snapshot(message.text)
        # Extensions (kcode.extensions): hooks, `/command` expansion, plan mode; may end the turn.
        ext = self.ctx.extensions
        start = await ext.start_turn(self, message) if ext is not None else None
        message = start.message if start is not None else message
        if start is None or start.stop is None:
            self._add(message)
        yield TurnStarted(agent=self.agent_id, prompt=message.text)
        if snapshot_failed:
            yield Error(agent=self.agent_id, message=snapshot_failed, kind="checkpoint")
        previous_signature, repeats = "", 0
        stop_hook_active = False
        try:
            if start is not None:
                for event in start.events:
                    yield event
                if start.stop is not None:
                    yield Error(agent=self.agent_id, message=start.stop, kind=start.reason)
                    yield self.finish_event(start.reason, start.stop, started)
                    return
            for step in range(1, self.max_steps + 1):
                yield StepStarted(agent=self.agent_id, step=step)
                reply = _Reply()
                try:
                    async for event in self._stream_reply(reply):
                        yield event
                except BackendError as err:
                    yield Error(agent=self.agent_id, message=err.message, kind=err.kind)
                    yield self.finish_event(BACKEND_ERROR, err.message, started)
                    return
                except BudgetExceeded as over:
                    yield Error(agent=self.agent_id, message=over.message, kind=BUDGET_EXCEEDED)
                    yield self.finish_event(BUDGET_EXCEEDED, over.message, started)
                    return
                calls = reply.tool_calls()
                self._add(Message.assistant(reply.text, calls, reply.reasoning or None))
                yield AssistantMessage(
                    agent=self.agent_id,
                    text=reply.text,
                    reasoning=reply.reasoning or None,
                    tool_calls=[
                        {"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls
                    ],
                )
                if not calls:
                    again = await ext.on_stop(self, reply.text, stop_hook_active) if ext else None
                    if again:  # a Stop hook blocked: the model goes on with its reason
                        stop_hook_active = True
                        self._add(Message.user(again))
                        continue
                    yield self.finish_event(self._judge(reply.text), reply.text, started)
                    return

                signature = json.dumps([(c.name, c.arguments) for c in calls], sort_keys=True)
                repeats = repeats + 1 if signature == previous_signature else 1
                previous_signature = signature

                results: list[ToolResult | None] = [None] * len(calls)
                runner = asyncio.create_task(self._run_calls(calls, results))
                async for event in drain(self._queue, runner):
                    yield event
                stop_for_approval: ApprovalRequired | None = None
                try:
                    runner.result()
                except* ApprovalRequired as group:
                    first = group.exceptions[0]
                    assert isinstance(first, ApprovalRequired)
                    stop_for_approval = first
                self._add_results(calls, results, repeats)
                if stop_for_approval is not None:
                    yield Error(agent=self.agent_id, message=str(stop_for_approval), kind=APPROVAL)
                    yield self.finish_event(APPROVAL, str(stop_for_approval), started)
                    return
                halt = ext.take_halt(self.agent_id) if ext is not None else None
                if halt is not None:  # a hook answered `continue: false`
                    yield Error(agent=self.agent_id, message=halt, kind=HOOK_STOPPED)
                    yield self.finish_event(HOOK_STOPPED, halt, started)
                    return
                if repeats >= REPEAT_STOP:
                    why = (
                        f"the model made the same tool call(s) {repeats} times in a row; "
                        "stopped to save tokens. Rephrase the task or check the tool results."
                    )
                    yield Error(agent=self.agent_id, message=why, kind=REPEATED)
                    yield self.finish_event(REPEATED, why, started)
                    return
            why = (
                f"stopped after {self.max_steps} model steps (--max-steps); raise it to go further"
            )
            yield Error(agent=self.agent_id, message=why, kind=MAX_STEPS)
            yield self.finish_event(MAX_STEPS, why, started)
        finally:
            self._close_dangling_calls()
            self.stats.duration_s += time.monotonic() - started
            if self.ctx.checkpoints is not None:
                try:
                    await self.ctx.checkpoints.after_turn()  # end snapshot, --auto-commit
                except (CheckpointError, OSError) as err:
                    # The turn has ended: the runtime hands this on after its TurnFinished.
                    self.checkpoint_note = (
                        f"could not record the work tree after this turn ({err}); undoing it "
                        "compares with the tree as it is then, and --auto-commit (if on) did not "
                        "commit"
                    )

    async def _snapshot(self, prompt: str) -> str:
        """Snapshot the work tree for /undo; what went wrong, or "". A failed snapshot (a full
        disk, a broken repository) does not stop the turn: the user is told that /undo cannot
        restore it."""
        if self.ctx.checkpoints is None:
            return ""
        try:
            await self.ctx.checkpoints.before_turn(prompt)
        except (CheckpointError, OSError) as err:
            return (
                f"could not snapshot the work tree before this turn ({err}); /undo and "
                "`kcode undo` cannot restore what it changes"
            )
        return ""

    async def _stream_reply(self, reply: _Reply) -> AsyncIterator[Event]:
        self.stats.steps += 1
        self.stats.requests += 1
        stream: AsyncIterator[Any] = self.backend.stream(
            self.history, self.current_specs(), self.options
        )
        if self.meter is not None:
            stream = self.meter.wrap(stream, self)
        async for delta in stream:
            if isinstance(delta, TextChunk):
                text = valid_unicode(delta.text)
                reply.text_parts.append(text)
                yield TextDelta(agent=self.agent_id, text=text)
            elif isinstance(delta, ReasoningChunk):
                text = valid_unicode(delta.text)
                reply.reasoning_parts.append(text)
                yield ReasoningDelta(agent=self.agent_id, text=text)
            elif isinstance(delta, ToolCallChunk):
                slot = reply.calls.setdefault(delta.index, _CallParts())
                if delta.id:
                    slot.id = delta.id
                if delta.name:
                    slot.name.append(delta.name)
                slot.arguments.append(delta.arguments)
            elif isinstance(delta, UsageChunk):
                self.stats.add_usage(delta)
                yield Usage(
                    agent=self.agent_id,
                    prompt_tokens=delta.prompt_tokens,
                    completion_tokens=delta.completion_tokens,
                    cached_tokens=delta.cached_tokens,
                    reasoning_tokens=delta.reasoning_tokens,
                    cost=delta.cost,
                    agent_cost=self.stats.cost,
                )
            elif isinstance(delta, BudgetNotice):
                yield delta.event
            elif isinstance(delta, RetryNotice):
                reply.restart()
                self.stats.requests += 1
                yield Retrying(
                    agent=self.agent_id,
                    attempt=delta.attempt,
                    delay_s=delta.delay_s,
                    reason=delta.reason,
                )
            elif isinstance(delta, FinishChunk):
                reply.finish = delta.reason
                if delta.note:  # an answer cut by a token cap or a loop: say so
                    yield Error(agent=self.agent_id, message=delta.note, kind="truncated")

    def current_specs(self) -> list[ToolSpec]:
        """The tools offered in this request. A tool set that grows during a session (MCP servers
        that connect late, kcode.mcp.tools) adds its part here, read again before every request."""
        extra = getattr(self.tools, "extra_specs", None)
        return self._specs if extra is None else [*self._specs, *extra()]

    async def _run_calls(
        self, calls: tuple[ToolCall, ...], results: list[ToolResult | None]
    ) -> None:
        await run_calls(calls, results, self.tools, self.ctx, self.agent_id, self._emit)

    def _add_results(
        self, calls: tuple[ToolCall, ...], results: list[ToolResult | None], repeats: int
    ) -> None:
        messages = result_messages(calls, results, repeats)
        for call, result, message in zip(calls, results, messages, strict=True):
            if result is not None and result.ok:
                # A read_file that returns what its last read returned costs a note, not the file.
                message = note_repeated_read(self.history, call, message)
            self._add(message)

    def _close_dangling_calls(self) -> None:
        """After cancellation or a crash, give every unanswered tool call a result."""
        for message in dangling_results(self.history):
            self._add(message)

    def _judge(self, final_text: str) -> TurnReason:
        if final_text.lstrip().upper().startswith(FAILED_PREFIX):
            return FAILED
        tests = self.ctx.last_tests
        if tests and (tests.get("failed", 0) or tests.get("errors", 0)):
            return FAILED
        return COMPLETED

    def finish_event(self, reason: TurnReason, result: str, started: float) -> TurnFinished:
        stats = self.stats.as_dict()
        stats["duration_s"] = round(time.monotonic() - started, 3)
        if stats.get("agents"):  # this turn's time is added to stats only after this event
            total = self.stats.duration_s + time.monotonic() - started
            stats["agents"][0]["duration_s"] = round(total, 3)
        stats["files_changed"] = self.ctx.changes.changed_paths(self.ctx.root)
        stats["tests"] = self.ctx.last_tests
        return TurnFinished(agent=self.agent_id, reason=reason, result=result, stats=stats)
