"""Rendering the event stream with rich: streamed markdown, reasoning, tool lines, diffs, todos.

Flicker-free streaming works by committing: finished markdown blocks (everything up to the last blank
line outside a code fence) are printed once, for good; only the unfinished tail lives in a small
`Live` region that is redrawn. Redrawing the whole answer on every chunk would cost O(n²) and make the
terminal jump once the answer is taller than the screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, assert_never

from rich.console import Console, Group, RenderableType
from rich.text import Text

from kcode.agents.usage_report import describe_notice
from kcode.events import (
    AgentFinished,
    AgentSpawned,
    AnyEvent,
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
from kcode.ui.agents_view import AgentsView
from kcode.ui.redacted_text import visible
from kcode.ui.status import BusyStatus
from kcode.ui.tool_lines import EDIT_TOOLS, diff_text, shorten, todo_text, tool_label, tool_outcome

if TYPE_CHECKING:
    from rich.live import Live

# Re-exported: the REPL's other modules found these here before they moved to kcode.ui.tool_lines.
__all__ = ["MIN_WIDTH", "Renderer", "commit_point", "diff_text", "markdown", "todo_text",
           "tool_label", "tool_outcome"]  # fmt: skip


def markdown(text: str) -> RenderableType:
    # rich.markdown pulls in markdown-it (~100 ms): imported on the first answer, not at startup.
    from rich.markdown import Markdown

    # Untrusted text: controls made visible; no OSC 8 links whose text hides the real target.
    return Markdown(visible(text), hyperlinks=False)


MIN_WIDTH = 40


def commit_point(text: str) -> int:
    """Index up to which streamed markdown is complete: after the last blank line outside a fence."""
    in_fence = False
    point = 0
    offset = 0
    for line in text.splitlines(keepends=True):
        offset += len(line)
        if not line.endswith("\n"):
            break  # the last line is still arriving
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            if not in_fence:
                point = offset  # a closed fence is a complete block
        elif not stripped and not in_fence:
            point = offset
    return point


@dataclass
class _RunningTool:
    label: str
    agent: str
    args: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    spinner: Any = None


class Renderer:
    """Consumes events and draws them. One instance per REPL; `finish()` at the end of each turn."""

    def __init__(self, console: Console, *, refresh_per_second: float = 12) -> None:
        self.console = console
        self.refresh_per_second = refresh_per_second
        self.agents = AgentsView()
        self._answer = ""  # streamed markdown not yet committed
        self._reasoning = ""
        self._reasoning_started = 0.0
        self._running: dict[str, _RunningTool] = {}
        self._pending_diffs: dict[tuple[str, str], str] = {}
        self._shown_in_prompt: set[tuple[str, str]] = set()
        self._live: Live | None = None
        self.status: BusyStatus | None = None  # set while a turn (or /compact) runs
        # While an approval question owns the terminal nothing else may draw: no live region, and
        # lines printed meanwhile (sub-agents keep working) wait until the answer is in.
        self._held = False
        self._held_prints: list[RenderableType] = []

    # --- live region -------------------------------------------------------------------------------
    def _ensure_live(self) -> None:
        if self._live is None and self.console.is_terminal and not self._held:
            from rich.live import Live

            self._live = Live(
                console=self.console,
                refresh_per_second=self.refresh_per_second,
                transient=True,
                vertical_overflow="crop",
                get_renderable=self._live_view,
            )
            self._live.start()

    def pause(self) -> None:
        """Stop redrawing (before an approval prompt takes the terminal)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def hold(self) -> None:
        """An approval question is about to be asked: it must stay the last thing on screen."""
        self._held = True
        self.pause()

    def release(self) -> None:
        """The question was answered: print what waited, then resume the live region."""
        self._held = False
        held, self._held_prints = self._held_prints, []
        for renderable in held:
            self.console.print(renderable)
        if self.status is not None or self._running or self._answer or self.agents.active:
            self._ensure_live()

    def begin_busy(self, status: BusyStatus) -> None:
        """Show the status line (spinner, elapsed, tokens, how to interrupt) until `end_busy`."""
        self.status = status
        self._ensure_live()

    def end_busy(self) -> None:
        self.status = None
        self.pause()

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def _tail_lines(self, text: str, keep: int) -> str:
        lines = text.splitlines()
        return "\n".join(lines[-keep:])

    def _live_view(self) -> RenderableType:
        parts: list[RenderableType] = []
        room = max(self.console.height - 6, 3)
        if self._reasoning and not self._answer:
            parts.append(Text(visible(self._tail_lines(self._reasoning, 3)), style="dim italic"))
        if self._answer:
            parts.append(markdown(self._tail_lines(self._answer, room)))
        for tool in list(self._running.values()):
            if tool.agent == "main":
                if tool.spinner is None:  # kept across frames, so it animates
                    from rich.spinner import Spinner

                    tool.spinner = Spinner("dots", text=Text(tool.label), style="cyan")
                parts.append(tool.spinner)
        if self.agents.active:
            parts.append(self.agents.table())
        if self.status is not None:
            parts.append(self.status.renderable(self.console.width))
        return Group(*parts)

    def print(self, renderable: RenderableType) -> None:
        if self._held:
            self._held_prints.append(renderable)
            return
        self.console.print(renderable)

    # --- events ------------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        event = closed(event)
        if event.agent != "main":
            if isinstance(event, Usage) and self.status is not None:
                self.status.add_usage(event.prompt_tokens, event.completion_tokens)
            self.agents.update(event)
            self._ensure_live()
            return
        self._handle_main(event)

    def _handle_main(self, event: AnyEvent) -> None:
        # Exhaustive (issue #12): a new event type fails mypy here until the REPL decides.
        match event:
            case ReasoningDelta():
                if not self._reasoning:
                    self._reasoning_started = time.monotonic()
                self._reasoning += event.text
                self._streamed(len(event.text), "Thinking…")
                self._ensure_live()
            case TextDelta():
                self._fold_reasoning()
                self._streamed(len(event.text), "Writing…")
                self._answer += event.text
                point = commit_point(self._answer)
                if point:
                    self.print(markdown(self._answer[:point]))
                    self._answer = self._answer[point:]
                self._ensure_live()
            case AssistantMessage():
                self._fold_reasoning()
                self._flush_answer()
            case ToolCallStarted():
                self._fold_reasoning()
                self._flush_answer()
                label = tool_label(event.name, event.arguments)
                self._running[event.call_id] = _RunningTool(label, event.agent, event.arguments)
                if self.status is not None:
                    self.status.label = f"Running {visible(event.name, one_line=True)}…"
                self._ensure_live()
            case ToolCallFinished():
                self._tool_finished(event)
            case ApprovalRequested():
                if event.detail:  # keyed by call: parallel edits each get their own diff (#12)
                    self._pending_diffs[(event.agent, event.call_id)] = event.detail
            case ApprovalDecided():
                if not event.allowed:
                    self.print(Text(f"  ✗ declined: {visible(event.reason)}", style="yellow"))
            case AgentSpawned() | AgentFinished():
                self.agents.update(event)
            case Retrying():
                why = f"(attempt {event.attempt}): {visible(event.reason)}"
                self.print(Text(f"  ↻ retrying in {event.delay_s:.1f}s {why}", style="yellow"))
            case Error():
                self._flush_answer()
                self.print(Text(f"✗ {visible(event.message)}", style="bold red"))
            case TurnFinished():
                self.finish()
            case Usage():
                if self.status is not None:
                    self.status.add_usage(event.prompt_tokens, event.completion_tokens)
            case StepStarted():
                if self.status is not None:
                    self.status.label = "Working…"  # waiting for the model again
            case BudgetWarning() | CacheWarning():
                self.print(Text(f"  ! {visible(describe_notice(event))}", style="yellow"))
            case SessionStarted() | TurnStarted() | VisualIteration():
                pass  # nothing to draw: the REPL greets, echoes the prompt, has no fix loop
            case _:
                assert_never(event)

    def _streamed(self, chars: int, label: str) -> None:
        if self.status is not None:
            self.status.streamed_chars += chars
            self.status.label = label

    def note_prompted(self, agent: str, call_id: str) -> None:
        """The approval prompt already showed this call's diff; do not repeat it after the call."""
        self._shown_in_prompt.add((agent, call_id))

    def _fold_reasoning(self) -> None:
        if not self._reasoning:
            return
        seconds = time.monotonic() - self._reasoning_started
        words = len(self._reasoning.split())
        first = visible(shorten(self._reasoning, max(self.console.width - 40, 20)), one_line=True)
        self.print(Text(f"✻ thought for {seconds:.0f}s ({words} words): {first}", style="dim"))
        self._reasoning = ""

    def _flush_answer(self) -> None:
        if self._answer.strip():
            self.print(markdown(self._answer))
        self._answer = ""

    def _tool_finished(self, event: ToolCallFinished) -> None:
        running = self._running.pop(event.call_id, None)
        args = running.args if running else {}
        label = running.label if running else tool_label(event.name, {})
        mark, style = ("✓", "green") if event.ok else ("✗", "red")
        line = Text()
        line.append(f"{mark} ", style=style)
        line.append(label)
        line.append(f" → {tool_outcome(event.name, event.ok, event.content, event.data)}", "dim")
        self.print(line)
        key = (event.agent, event.call_id)
        diff = (event.data or {}).get("diff") or self._pending_diffs.pop(key, "")
        shown = key in self._shown_in_prompt
        self._shown_in_prompt.discard(key)
        if event.ok and event.name in EDIT_TOOLS and diff and not shown:
            self.print(diff_text(str(diff)))
        if event.ok and event.name == "todo_write":
            self.print(todo_text(list(args.get("items") or [])))
        if event.name == "spawn_agents":
            for summary in self.agents.summaries():
                self.print(summary)
            self.agents.clear()

    def finish(self) -> None:
        """End of a turn (or a cancellation): commit whatever is pending, stop the live region."""
        self._fold_reasoning()
        self._flush_answer()
        for tool in self._running.values():
            self.print(Text(f"✗ {tool.label} → cancelled", style="yellow"))
        self._running.clear()
        self._pending_diffs.clear()
        self._shown_in_prompt.clear()
        if self.agents.active:
            for summary in self.agents.summaries():
                self.print(summary)
            self.agents.clear()
        if self.status is None:
            self.pause()
