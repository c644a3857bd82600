"""Bounded waits for tests (issue #12 item 8): a poll that never ends hangs CI instead of failing.

Each wait fails with what it was waiting for once `timeout` passes; the condition is re-checked
every `interval` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_TIMEOUT_S = 30.0


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 0.02,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def async_wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 0.02,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
