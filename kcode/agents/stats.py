"""Counting model calls and tokens per agent, and the critical path (SPEC §6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
        }

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens + self.sub_prompt_tokens,
            "completion_tokens": self.completion_tokens + self.sub_completion_tokens,
            "requests": self.requests + self.sub_requests,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.total_steps,
            "critical_steps": self.critical_steps,
            "usage": self.usage(),
            "agents": [self.summary(), *self.sub_agents],
        }
