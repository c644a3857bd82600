"""The live table of sub-agents while `spawn_agents` runs, and the one-line summaries after.

Built only from events (AgentSpawned / AgentFinished from the main agent, and StepStarted /
ToolCallStarted / ToolCallFinished / Usage re-emitted by each sub-agent with its own `agent` id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, assert_never

from rich.text import Text

from kcode.events import (
    AgentFinished,
    AgentSpawned,
    ApprovalDecided,
    ApprovalRequested,
    AssistantMessage,
    BudgetWarning,
    CacheWarning,
    Error,
    Event,
    ReasoningDelta,
    Retrying,
    SessionStarted,
    StepStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
    TurnStarted,
    Usage,
    VisualIteration,
    closed,
)
from kcode.safety.terminal_text import visible

if TYPE_CHECKING:
    from rich.table import Table


@dataclass
class AgentRow:
    agent_id: str
    role: str
    prompt: str = ""
    step: int = 0
    tool: str = ""
    tokens: int = 0
    cost: float | None = None  # USD so far (issue #16); None: the model's price is unknown
    started: float = field(default_factory=time.monotonic)
    finished: AgentFinished | None = None

    def elapsed(self, now: float | None = None) -> float:
        if self.finished is not None:
            return self.finished.duration_s
        return (now if now is not None else time.monotonic()) - self.started


class AgentsView:
    def __init__(self) -> None:
        self.rows: dict[str, AgentRow] = {}

    @property
    def active(self) -> bool:
        return any(row.finished is None for row in self.rows.values())

    def _row(self, agent_id: str, role: str = "?") -> AgentRow:
        if agent_id not in self.rows:
            self.rows[agent_id] = AgentRow(agent_id, role)
        return self.rows[agent_id]

    def update(self, event: Event) -> None:
        event = closed(event)
        match event:  # exhaustive (issue #12): mypy names this view when an event type is added
            case AgentSpawned():
                row = self._row(event.agent_id, event.role)
                row.role, row.prompt = event.role, event.prompt
            case AgentFinished():
                row = self._row(event.agent_id, event.role)
                row.finished = event
                row.tool = ""
                row.tokens = max(row.tokens, event.prompt_tokens + event.completion_tokens)
                row.step = max(row.step, event.steps)
                row.cost = event.cost if event.cost is not None else row.cost
            case _ if event.agent == "main":
                return  # the main agent is not a row
            case StepStarted():
                self._row(event.agent).step = event.step
            case ToolCallStarted():
                self._row(event.agent).tool = event.name
            case ToolCallFinished():
                self._row(event.agent).tool = ""
            case Usage():
                self._row(event.agent).tokens += event.prompt_tokens + event.completion_tokens
                self._row(event.agent).cost = event.agent_cost
            case (
                SessionStarted() | TurnStarted() | TextDelta() | ReasoningDelta()
                | AssistantMessage() | ApprovalRequested() | ApprovalDecided() | Retrying()
                | VisualIteration() | Error() | TurnFinished() | BudgetWarning() | CacheWarning()
            ):  # fmt: skip
                pass  # a sub-agent's text and notices are not part of its row
            case _:
                assert_never(event)

    def table(self, now: float | None = None) -> Table:
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
        for column in ("agent", "role", "step", "tool", "elapsed", "tokens"):
            table.add_column(column, justify="right" if column in ("step", "tokens") else "left")
        for row in list(self.rows.values()):
            if row.finished is not None:
                state = Text("✓ done" if row.finished.ok else "✗ failed", style="dim")
            else:
                state = Text(visible(row.tool or "thinking…", one_line=True), style="cyan")
            table.add_row(
                Text(visible(row.agent_id, one_line=True)),
                Text(visible(row.role, one_line=True)),
                str(row.step),
                state,
                f"{row.elapsed(now):.1f}s",
                f"{row.tokens:,}" + ("" if row.cost is None else f" ${row.cost:.4f}"),
            )
        return table

    def summaries(self) -> list[Text]:
        """One line per agent once they are done: `✓ a1 search · 4 steps · 3.2s · 1,234 tok · …`."""
        out = []
        for row in self.rows.values():
            done = row.finished
            ok = done.ok if done is not None else False
            line = Text()
            line.append("  ✓ " if ok else "  ✗ ", style="green" if ok else "red")
            line.append(f"{visible(row.agent_id, one_line=True)} ", style="bold")
            line.append(
                f"{visible(row.role, one_line=True)} · {row.step} steps · {row.elapsed():.1f}s"
                f" · {row.tokens:,} tok"
            )
            if done is not None and done.files_changed:
                changed = visible(", ".join(done.files_changed), one_line=True)
                line.append(f" · changed {changed}")
            if done is not None and (done.error or not ok):
                line.append(f" · {visible(done.error or 'failed', one_line=True)}", style="red")
            elif done is not None and done.report:
                report = visible(word_cut(" ".join(done.report.split()), 80), one_line=True)
                line.append(" · " + report, style="dim")
            elif done is None:
                line.append(" · cancelled", style="yellow")
            out.append(line)
        return out

    def clear(self) -> None:
        self.rows.clear()


def word_cut(text: str, limit: int) -> str:
    """`text` cut at a word boundary before `limit` characters, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"
