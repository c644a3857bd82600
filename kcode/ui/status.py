"""The status line under a running turn: what is happening, for how long, tokens, how to stop it.

    ⠹ Working… 12s · ↑ 3.4k ↓ 812 tokens · esc/Ctrl-C to interrupt
    queued: also update the README
    › half-typed next mess

Tokens: `in` is what the requests of this turn sent (from the backend's usage reports); `out` is what
came back, counted from usage once a request ends and estimated (4 characters a token) while it streams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from kcode.safety.terminal_text import visible
from kcode.ui.keytap import QueuedExit, TypedAhead


def short_count(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def elapsed_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}m {whole % 60:02d}s" if whole >= 60 else f"{whole}s"


@dataclass
class BusyStatus:
    label: str = "Working…"
    started: float = field(default_factory=time.monotonic)
    tokens_in: int = 0
    tokens_out: int = 0
    streamed_chars: int = 0  # of the request in flight, not yet covered by a usage report
    estimated_in: int = 0  # the first request's size, estimated until its usage report arrives
    typed: TypedAhead | None = None
    # One spinner for the whole busy stretch: a new one per frame would always show frame one.
    _spinner: Any = field(default=None, repr=False)

    def add_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens_in += prompt_tokens
        self.tokens_out += completion_tokens
        self.streamed_chars = 0
        self.estimated_in = 0

    def line(self, now: float | None = None) -> str:
        seconds = (now if now is not None else time.monotonic()) - self.started
        out = self.tokens_out + self.streamed_chars // 4
        return (
            f"{self.label} {elapsed_text(seconds)} · ↑ {short_count(self.tokens_in + self.estimated_in)} "
            f"↓ {short_count(out)} tokens · esc/Ctrl-C to interrupt"
        )

    def renderable(self, width: int) -> RenderableType:
        from rich.spinner import Spinner

        if self._spinner is None:
            self._spinner = Spinner("dots", style="cyan")
        self._spinner.update(text=Text(self.line(), style="dim"))
        parts: list[RenderableType] = [self._spinner]
        typed = self.typed
        if typed is not None:
            for item in typed.queued:
                if isinstance(item, QueuedExit):
                    parts.append(Text("queued: exit (Ctrl-D)", style="yellow"))
                else:
                    shown = visible(item, one_line=True)
                    if len(shown) > width - 10:
                        shown = shown[: max(width - 11, 10)] + "…"
                    parts.append(Text(f"queued: {shown}", style="yellow"))
            if typed.line:
                shown = visible(typed.line, one_line=True)[-(width - 4) :]
                parts.append(Text(f"› {shown}", style="bold"))
        return Group(*parts)


# Approximate list prices in USD per million tokens (input, output); other models show tokens only.
PRICES: dict[str, tuple[float, float]] = {"gpt-5-mini": (0.25, 2.0), "kimi-k2.5": (0.6, 3.0)}


def toolbar_cost(model: str, usage: dict[str, Any]) -> str:
    """The toolbar's running cost: dollars for a model with a known price, else tokens."""
    price = PRICES.get(model)
    if price:
        dollars = (usage["prompt_tokens"] * price[0] + usage["completion_tokens"] * price[1]) / 1e6
        return f" · ${dollars:.3f}"
    return f" · {usage['prompt_tokens'] + usage['completion_tokens']:,} tok"
