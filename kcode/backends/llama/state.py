"""KV states of recent conversations kept in memory, so sub-agents taking turns on one llama
context each resume from their own prefix (engine.py)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

# Switching states only pays off when it saves at least this many tokens of prompt evaluation.
MIN_TOKENS_WORTH_SWITCHING = 32


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class SavedState:
    tokens: tuple[int, ...]
    data: bytes


class StateCache:
    """KV states of recent conversations, least recently used evicted beyond `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, ...], SavedState] = OrderedDict()

    def put(self, state: SavedState) -> None:
        # A state whose tokens extend an older one supersedes it.
        for key in [k for k in self._entries if state.tokens[: len(k)] == k]:
            del self._entries[key]
        self._entries[state.tokens] = state
        while sum(len(s.data) for s in self._entries.values()) > self.max_bytes and self._entries:
            self._entries.popitem(last=False)

    def best_match(self, tokens: Sequence[int]) -> tuple[SavedState | None, int]:
        best: SavedState | None = None
        best_length = 0
        for state in self._entries.values():
            length = common_prefix(state.tokens, tokens)
            if length > best_length:
                best, best_length = state, length
        if best is not None:
            self._entries.move_to_end(best.tokens)
        return best, best_length

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
