"""Approvals of one reply's calls are asked one at a time and in call order, even when the calls run
concurrently (read-only shell commands, reads beside writes to other files).

The agent loop gives each call's task a slot (`take_slot(order, i)`: a context variable, so it is
private to that task and to what the task starts); `ToolContext.approve` waits in `approval_turn()`
until every earlier call of the reply has had its approval answered or has finished. A human never
sees two questions at once, and sees them in the order the model made the calls.

No deadlock: a call only waits for calls with a smaller index, and a call's scheduling dependencies
(kcode.agents.scheduling) also point only to smaller indexes, so the earliest unanswered call can
always go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from kcode.safety.approval import ApprovalRequired


class ApprovalOrder:
    """The approval queue of one model reply with `n` tool calls."""

    def __init__(self, n: int) -> None:
        self._released = [asyncio.Event() for _ in range(n)]
        self._lock = asyncio.Lock()
        # An approval the non-interactive policy refused ends the turn: later calls ask nothing.
        self.stopped: BaseException | None = None

    def release(self, index: int) -> None:
        """Call `index` no longer holds up later approvals (answered, or finished without one)."""
        self._released[index].set()


_SLOT: ContextVar[tuple[ApprovalOrder, int] | None] = ContextVar(
    "kcode_approval_slot", default=None
)


def take_slot(order: ApprovalOrder, index: int, tool: Any = None) -> None:
    """Mark the current task as call `index` of `order` (call at the start of the call's task).
    A read-only tool (or an unknown one) never asks, so later calls need not wait for it to end."""
    _SLOT.set((order, index))
    if tool is None or getattr(tool, "read_only", False):
        order.release(index)


@asynccontextmanager
async def approval_turn() -> AsyncIterator[None]:
    slot = _SLOT.get()
    if slot is None:  # outside a reply's calls (tests, post-merge checks run by a plain caller)
        yield
        return
    order, index = slot
    for earlier in range(index):
        await order._released[earlier].wait()
    async with order._lock:  # a call that asks twice still never overlaps a later call's question
        if order.stopped is not None:
            raise order.stopped
        try:
            yield
        except ApprovalRequired as err:
            order.stopped = err
            raise
        finally:
            order.release(index)
