"""Counting model calls and tokens per agent, and the critical path (SPEC §6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kcode.backends.base import UsageChunk


@dataclass
class AgentStats:
    agent_id: str = "main"
    role: str = "main"
    steps: int = 0  # this agent's own model calls
    requests: int = 0  # HTTP requests including retries
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0
    # Added by spawn_agents: sub-agents' calls, and per fan-out the largest sub-agent step count.
    sub_steps: int = 0
    sub_critical_steps: int = 0
    sub_prompt_tokens: int = 0
    sub_completion_tokens: int = 0
    sub_requests: int = 0
    sub_agents: list[dict[str, Any]] = field(default_factory=list)
    # Issue #16: cache hits and reasoning (parts of prompt/completion tokens) and cost in USD
    # (None while no request of this agent had a known price).
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None
    sub_cached_tokens: int = 0
    sub_reasoning_tokens: int = 0
    sub_cost: float | None = None

    def add_usage(self, usage: UsageChunk) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cached_tokens += usage.cached_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        if usage.cost is not None:
            self.cost = (self.cost or 0.0) + usage.cost

    @property
    def total_steps(self) -> int:
        return self.steps + self.sub_steps

    @property
    def critical_steps(self) -> int:
        return self.steps + self.sub_critical_steps

    def add_fanout(self, children: list[AgentStats]) -> None:
        """Account for one spawn_agents call whose sub-agents ran concurrently."""
        if not children:
            return
        self.sub_critical_steps += max(c.total_steps for c in children)
        for child in children:
            self.sub_steps += child.total_steps
            self.sub_prompt_tokens += child.prompt_tokens + child.sub_prompt_tokens
            self.sub_completion_tokens += child.completion_tokens + child.sub_completion_tokens
            self.sub_requests += child.requests + child.sub_requests
            self.sub_cached_tokens += child.cached_tokens + child.sub_cached_tokens
            self.sub_reasoning_tokens += child.reasoning_tokens + child.sub_reasoning_tokens
            self.sub_cost = _add_cost(self.sub_cost, _add_cost(child.cost, child.sub_cost))
            self.sub_agents.append(child.summary())

    def summary(self) -> dict[str, Any]:
        return {
            "agent": self.agent_id,
            "role": self.role,
            "steps": self.steps,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "duration_s": round(self.duration_s, 3),
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost": _round_cost(self.cost),
            "cache_hit_rate": hit_rate(self.cached_tokens, self.prompt_tokens),
        }

    def usage(self) -> dict[str, Any]:
        prompt = self.prompt_tokens + self.sub_prompt_tokens
        cached = self.cached_tokens + self.sub_cached_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.completion_tokens + self.sub_completion_tokens,
            "requests": self.requests + self.sub_requests,
            "cached_tokens": cached,
            "reasoning_tokens": self.reasoning_tokens + self.sub_reasoning_tokens,
            "cost": _round_cost(_add_cost(self.cost, self.sub_cost)),
            "cache_hit_rate": hit_rate(cached, prompt),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.total_steps,
            "critical_steps": self.critical_steps,
            "usage": self.usage(),
            "agents": [self.summary(), *self.sub_agents],
        }


def hit_rate(cached: int, prompt: int) -> float | None:
    """The share of prompt tokens the server's cache served; None before any prompt was sent."""
    return round(cached / prompt, 4) if prompt > 0 else None


def _add_cost(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def _round_cost(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 6)
