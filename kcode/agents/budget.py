"""Token and cost budgets, checked while a reply streams in (issue #16).

One `RunBudget` per run (per REPL session) holds the caps of `--max-tokens` / `--max-cost` /
`[limits]` and what all agents used. Every agent has a `Meter` with its own caps (a sub-agent's cap
comes from its spawn_agents task, or is a default share, see `Meter.child`). The meter wraps the
backend's delta stream (`Meter.wrap`) and after every delta compares, for the agent and for the
run, the tokens and cost used so far with the caps:

    used = what the server reported for finished requests
         + an estimate for the request in flight: its prompt (the previous request's reported prompt
           tokens plus ~4 characters a token for the messages added since) and what has streamed
           back so far (~4 characters a token), replaced by the real figures once the usage arrives.

Over a cap while a reply streams, the meter closes the stream (the HTTP connection is dropped,
the server stops generating) and raises `BudgetExceeded`; a reply whose final usage crosses a cap
is complete and paid for, so it is kept and the agent stops before its next request instead; the loop ends the turn with reason `budget_exceeded`
(exit 5). Crossing 80 % of a cap yields a `BudgetWarning` event once per cap. Tokens are prompt +
completion tokens (cached prompt tokens included: they count against context and are billed, at
the cached price); cost is the priced sum (kcode.agents.prices).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from kcode.agents.prices import Price, PriceTable
from kcode.backends.base import (
    Delta,
    ReasoningChunk,
    RetryNotice,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from kcode.events import BudgetWarning, Event

if TYPE_CHECKING:
    from kcode.agents.loop import Agent
    from kcode.messages import Message

WARN_FRACTION = 0.8
CHARS_PER_TOKEN = 4
BUDGET_EXCEEDED: Final = "budget_exceeded"  # TurnFinished.reason; exit code 5


class BudgetError(ValueError):
    """A budget value that cannot be used (negative, not a number); one line, says how to fix it."""


@dataclass(frozen=True)
class Limits:
    max_tokens: int | None = None
    max_cost: float | None = None

    def __bool__(self) -> bool:
        return self.max_tokens is not None or self.max_cost is not None


def parse_max_tokens(value: Any, source: str = "--max-tokens") -> int:
    text = str(value).strip().replace("_", "")
    if isinstance(value, bool) or not text.isdigit():
        raise BudgetError(f"{source} {value!r}: give a whole number of tokens > 0, e.g. 200000")
    number = int(text)
    if number <= 0:
        raise BudgetError(f"{source} {value!r}: give a whole number of tokens > 0, e.g. 200000")
    return number


def parse_max_cost(value: Any, source: str = "--max-cost") -> float:
    try:
        number = float(str(value).strip().lstrip("$")) if not isinstance(value, bool) else -1.0
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise BudgetError(f"{source} {value!r}: give an amount in US dollars > 0, e.g. 2.50")
    return number


def parse_limits(raw: Any) -> Limits:
    """The `[limits]` table of a config file."""
    if not isinstance(raw, Mapping):
        raise BudgetError("[limits] must be a table: max_tokens = 200000, max_cost = 2.5")
    unknown = sorted(set(raw) - {"max_tokens", "max_cost"})
    if unknown:
        raise BudgetError(
            f"[limits]: unknown key(s) {', '.join(unknown)}; use max_tokens, max_cost"
        )
    tokens, cost = raw.get("max_tokens"), raw.get("max_cost")
    return Limits(
        None if tokens is None else parse_max_tokens(tokens, "[limits] max_tokens ="),
        None if cost is None else parse_max_cost(cost, "[limits] max_cost ="),
    )


class BudgetExceeded(Exception):
    def __init__(self, scope: str, message: str) -> None:
        super().__init__(message)
        self.scope = scope  # "run" | "agent"
        self.message = message


@dataclass(frozen=True)
class BudgetNotice:
    """A delta the meter slips into the stream: an event the loop passes on as it is."""

    event: Event


class RunBudget:
    """What every agent of one run used, against the run's caps."""

    def __init__(self, limits: Limits | None = None, prices: PriceTable | None = None) -> None:
        self.limits = limits or Limits()
        self.prices = prices or PriceTable()
        self.tokens = 0  # reported by the server
        self.cost = 0.0
        self.est_tokens = 0  # requests in flight, estimated
        self.est_cost = 0.0
        self.warned: set[str] = set()

    def used(self) -> tuple[int, float]:
        return self.tokens + self.est_tokens, self.cost + self.est_cost

    def remaining(self) -> Limits:
        tokens, cost = self.tokens, self.cost
        cap = self.limits
        return Limits(
            None if cap.max_tokens is None else max(0, cap.max_tokens - tokens),
            None if cap.max_cost is None else max(0.0, cap.max_cost - cost),
        )

    def meter(self, agent_id: str = "main", caps: Limits | None = None) -> Meter:
        return Meter(self, agent_id, caps or Limits())


class Meter:
    """One agent's usage against its own caps and the run's."""

    def __init__(self, run: RunBudget, agent_id: str, caps: Limits) -> None:
        self.run = run
        self.agent_id = agent_id
        self.caps = caps
        self.tokens = 0
        self.cost = 0.0
        self.est_tokens = 0
        self.est_cost = 0.0
        self.warned: set[str] = set()
        self._last_prompt_tokens = 0  # reported for this agent's previous request
        self._last_history_len = 0

    def child(self, agent_id: str, caps: Limits, tasks: int, left: Limits | None = None) -> Meter:
        """A sub-agent's meter. A cap the task did not set is a default share: what was left of
        the run's budget when the fan-out started (`left`), divided by the number of tasks in it.
        Whatever the share, the run's own cap still applies to every agent."""
        left = left if left is not None else self.run.remaining()
        share = Limits(
            None if left.max_tokens is None else max(1, left.max_tokens // max(1, tasks)),
            None if left.max_cost is None else left.max_cost / max(1, tasks),
        )
        own = Limits(
            caps.max_tokens if caps.max_tokens is not None else share.max_tokens,
            caps.max_cost if caps.max_cost is not None else share.max_cost,
        )
        return Meter(self.run, agent_id, own)

    # --- the stream ------------------------------------------------------------------------------
    async def wrap(self, stream: AsyncIterator[Delta], agent: Agent) -> AsyncIterator[Any]:
        model = agent.options.model or str(getattr(agent.backend, "model", ""))
        price = self.run.prices.lookup(model)
        prompt_estimate = self._prompt_estimate(agent.history)
        streamed = 0
        # No cap anywhere: only the usage needs pricing; skip the per-delta estimates.
        limited = bool(self.run.limits) or bool(self.caps)
        settled = False  # the reply's usage arrived: it is complete
        try:
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                self._estimate(prompt_estimate, 0, price)
                self._check(price, model)  # before the request leaves: nothing left to spend
                async for delta in stream:
                    if not limited:
                        if isinstance(delta, UsageChunk):
                            delta = self._commit(delta, price)
                        yield delta
                        continue
                    if isinstance(delta, TextChunk | ReasoningChunk):
                        streamed += len(delta.text)
                        self._estimate(prompt_estimate, streamed, price)
                    elif isinstance(delta, ToolCallChunk):
                        streamed += len(delta.arguments) + len(delta.name or "")
                        self._estimate(prompt_estimate, streamed, price)
                    elif isinstance(delta, RetryNotice):
                        streamed = 0  # the reply starts again
                        self._estimate(prompt_estimate, 0, price)
                    elif isinstance(delta, UsageChunk):
                        delta = self._commit(delta, price)
                        prompt_estimate = streamed = 0
                        settled = True
                    yield delta
                    for event in self._warnings():
                        yield BudgetNotice(event)
                    if not settled:
                        # The usage comes with a finished reply, already paid for: keep it and
                        # stop before the next request instead (the check at the top).
                        self._check(price, model)
        finally:
            self._estimate(0, 0, None)
            self._last_history_len = len(agent.history)

    def _prompt_estimate(self, history: list[Message]) -> int:
        new = history[self._last_history_len :] if self._last_prompt_tokens else history
        chars = 0
        for message in new:
            chars += len(message.text) + len(message.reasoning or "")
            for call in message.tool_calls:
                chars += len(call.name) + len(str(call.arguments))
        return self._last_prompt_tokens + chars // CHARS_PER_TOKEN

    def _estimate(self, prompt: int, streamed_chars: int, price: Price | None) -> None:
        completion = streamed_chars // CHARS_PER_TOKEN
        tokens = prompt + completion
        cost = price.cost(prompt, 0, completion) if price is not None else 0.0
        self.run.est_tokens += tokens - self.est_tokens
        self.run.est_cost += cost - self.est_cost
        self.est_tokens, self.est_cost = tokens, cost

    def _commit(self, usage: UsageChunk, price: Price | None) -> UsageChunk:
        self._estimate(0, 0, None)
        tokens = usage.prompt_tokens + usage.completion_tokens
        cost = None
        if price is not None:
            cost = price.cost(usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens)
            self.cost += cost
            self.run.cost += cost
        self.tokens += tokens
        self.run.tokens += tokens
        self._last_prompt_tokens = usage.prompt_tokens
        return replace(usage, cost=cost)

    # --- the caps --------------------------------------------------------------------------------
    def _check(self, price: Price | None, model: str) -> None:
        run_tokens, run_cost = self.run.used()
        cap = self.run.limits
        if cap.max_cost is not None and price is None:
            raise BudgetExceeded(
                "run",
                f"stopped: --max-cost is set but model {model!r} has no known price, so its cost "
                f'cannot be counted; add [prices."{model}"] to the config',
            )
        if cap.max_tokens is not None and run_tokens > cap.max_tokens:
            raise BudgetExceeded(
                "run",
                f"stopped: the run's token budget is used up ({run_tokens:,} of "
                f"{cap.max_tokens:,} tokens, --max-tokens); the work done so far is kept",
            )
        if cap.max_cost is not None and run_cost > cap.max_cost:
            raise BudgetExceeded(
                "run",
                f"stopped: the run's cost budget is used up (${run_cost:.4f} of "
                f"${cap.max_cost:.4f}, --max-cost); the work done so far is kept",
            )
        own = self.caps
        tokens, cost = self.tokens + self.est_tokens, self.cost + self.est_cost
        if own.max_tokens is not None and tokens > own.max_tokens:
            raise BudgetExceeded(
                "agent",
                f"stopped: this agent's budget is used up ({tokens:,} of {own.max_tokens:,} "
                "tokens); its work so far is kept, unfinished",
            )
        if own.max_cost is not None and price is not None and cost > own.max_cost:
            raise BudgetExceeded(
                "agent",
                f"stopped: this agent's budget is used up (${cost:.4f} of ${own.max_cost:.4f}); "
                "its work so far is kept, unfinished",
            )

    def _warnings(self) -> list[Event]:
        out: list[Event] = []
        run_tokens, run_cost = self.run.used()
        checks = (
            ("run", "tokens", run_tokens, self.run.limits.max_tokens, self.run.warned),
            ("run", "usd", run_cost, self.run.limits.max_cost, self.run.warned),
            ("agent", "tokens", self.tokens + self.est_tokens, self.caps.max_tokens, self.warned),
            ("agent", "usd", self.cost + self.est_cost, self.caps.max_cost, self.warned),
        )
        for scope, unit, used, limit, warned in checks:
            if limit is None or unit in warned or used < WARN_FRACTION * limit:
                continue
            warned.add(unit)
            out.append(
                BudgetWarning(
                    agent=self.agent_id,
                    scope=scope,
                    unit=unit,
                    used=round(float(used), 6),
                    limit=float(limit),
                    fraction=round(float(used) / float(limit), 3) if limit else 1.0,
                )
            )
        return out
