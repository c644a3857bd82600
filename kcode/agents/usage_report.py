"""Words for usage, cost, cache and budget figures, shared by the REPL (/stats), printers and events.

Formatting only: the numbers come from AgentStats (kcode.agents.stats) and the events.
"""

from __future__ import annotations

from typing import Any

from kcode.events import BudgetWarning, CacheWarning, Event


def money(cost: float | None) -> str:
    """`$0.0123`, or `-` when the model's price is unknown (unknown is not free)."""
    return "-" if cost is None else f"${cost:.4f}"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def usage_line(usage: dict[str, Any]) -> str:
    """The run's totals on one line: requests, tokens in (cached), out (reasoning), cost, hits."""
    return (
        f"requests {usage.get('requests', 0)} · tokens {usage.get('prompt_tokens', 0):,} in "
        f"({usage.get('cached_tokens', 0):,} cached, hit rate "
        f"{percent(usage.get('cache_hit_rate'))}) / {usage.get('completion_tokens', 0):,} out "
        f"({usage.get('reasoning_tokens', 0):,} reasoning) · cost {money(usage.get('cost'))}"
    )


def agent_row(row: dict[str, Any]) -> list[str]:
    """One /stats table row: columns AGENT_COLUMNS."""
    return [
        str(row["agent"]),
        str(row["role"]),
        str(row["steps"]),
        str(row["requests"]),
        f"{row['prompt_tokens']:,}",
        f"{row.get('cached_tokens', 0):,}",
        f"{row['completion_tokens']:,}",
        f"{row.get('reasoning_tokens', 0):,}",
        money(row.get("cost")),
        f"{row['duration_s']:.1f}s",
    ]


AGENT_COLUMNS = ("agent", "role", "steps", "requests", "in", "cached", "out", "reasoning", "cost",
                 "time")  # fmt: skip


def describe_notice(event: Event) -> str:
    if isinstance(event, BudgetWarning):
        whose = "the run's" if event.scope == "run" else f"{event.agent}'s"
        if event.unit == "usd":
            amount = f"${event.used:.4f} of ${event.limit:.4f}"
        else:
            amount = f"{int(event.used):,} of {int(event.limit):,} tokens"
        return f"{event.fraction:.0%} of {whose} budget used ({amount})"
    if isinstance(event, CacheWarning):
        return event.message
    return ""
