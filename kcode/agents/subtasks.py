"""What a spawn_agents call takes and gives back: the tasks, their checks, one result per agent."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from kcode.agents.roles import ROLES
from kcode.agents.stats import AgentStats
from kcode.messages import ToolResult
from kcode.tools.base import ToolError

MAX_TASKS = 128
REPORT_MAX_CHARS = 4_000


@dataclass(frozen=True)
class SubTask:
    role: str
    prompt: str
    # This sub-agent's budget (issue #16); None: a default share (kcode.agents.budget.Meter.child).
    max_tokens: int | None = None
    max_cost: float | None = None


@dataclass
class SubAgentResult:
    id: str
    role: str
    ok: bool = False
    report: str = ""
    files_changed: list[str] = field(default_factory=list)
    tests: dict[str, Any] | None = None
    error: str | None = None
    conflicts: list[dict[str, str]] = field(default_factory=list)
    ref: str | None = None  # where the agent's full commit is kept (conflict or not merged)
    see: str | None = None  # the command that shows it
    stats: AgentStats | None = None

    def to_json(self) -> dict[str, Any]:
        s = self.stats or AgentStats(self.id, self.role)
        out: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "ok": self.ok,
            "steps": s.total_steps,
            "tokens": s.prompt_tokens + s.completion_tokens,
            "cached_tokens": s.cached_tokens,
            "reasoning_tokens": s.reasoning_tokens,
            "cost": None if s.cost is None else round(s.cost, 6),
            "seconds": round(s.duration_s, 2),
            "files_changed": self.files_changed,
            "tests": self.tests,
            "error": self.error,
        }
        if self.conflicts:
            out["conflicts"] = self.conflicts
        if self.ref:
            out["ref"], out["see"] = self.ref, self.see
        out["report"] = _cap(self.report)
        return out

    def for_model(self) -> dict[str, Any]:
        """What the parent model reads: the outcome, without the usage, cost and timing figures
        (the user sees those in the agents table, the JSON output and the events). They are of
        no use to the model, differ in every run, and would be paid for again in every later
        request of the conversation."""
        out = self.to_json()
        for key in ("tokens", "cached_tokens", "reasoning_tokens", "cost", "seconds"):
            out.pop(key, None)
        for key in ("tests", "error"):
            if out.get(key) is None:
                del out[key]
        return out


def _cap(text: str) -> str:
    text = text.strip()
    return text if len(text) <= REPORT_MAX_CHARS else text[:REPORT_MAX_CHARS] + " [... cut]"


def validate_tasks(tasks: list[SubTask]) -> None:
    if not tasks:
        raise ToolError(
            "spawn_agents needs at least one task: tasks=[{role, prompt}, ...]. Nothing was run."
        )
    if len(tasks) > MAX_TASKS:
        raise ToolError(
            f"spawn_agents takes at most {MAX_TASKS} tasks per call; got {len(tasks)}. Merge "
            "small tasks or split them over several calls. Nothing was run."
        )
    for i, task in enumerate(tasks):
        if task.role not in ROLES and not _custom_role(task.role):
            raise ToolError(
                f"task {i}: unknown role {task.role!r}; use one of {', '.join(_all_roles())}. "
                "Nothing was run."
            )
        if not task.prompt.strip():
            raise ToolError(f"task {i}: the prompt is empty; say what the sub-agent should do.")
        if task.max_cost is not None and not math.isfinite(task.max_cost):
            # "inf" and 1e400 get past the schema's `> 0`; a cap nobody can reach is no cap.
            raise ToolError(
                f"task {i}: max_cost must be a finite amount of USD, such as 0.5; got "
                f"{task.max_cost}. Nothing was run."
            )


def _custom_role(role: str) -> bool:
    from kcode.extensions.agents import custom_agent

    return custom_agent(role) is not None


def _all_roles() -> list[str]:
    from kcode.extensions.agents import custom_agents

    return [*ROLES, *sorted(custom_agents())]


def tool_result(results: list[SubAgentResult], seconds: float) -> ToolResult:
    good = sum(r.ok for r in results)
    critical = max((r.stats.total_steps for r in results if r.stats), default=0)
    total = sum(r.stats.total_steps for r in results if r.stats)
    lines = [
        f"{len(results)} sub-agent(s): {good} ok, {len(results) - good} not ok; "
        f"{total} model calls, {critical} on the critical path; {seconds:.1f} s"
    ]
    lines += [json.dumps(r.for_model(), ensure_ascii=False) for r in results]
    if any(r.conflicts for r in results):
        lines.append(
            "Conflicts: the working tree kept its version of those files; each agent's full "
            "change is on its ref (see the 'see' command). Reconcile them yourself."
        )
    data = {"agents": [r.to_json() for r in results]}
    return ToolResult("", ok=good == len(results), content="\n".join(lines), data=data)
