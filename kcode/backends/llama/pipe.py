"""`TokenPipe`: decoded text from the generation thread (engine.py) to the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


class TokenPipe:
    """Hands decoded text from the generation thread to the event loop.

    One wake-up of the loop per batch, not per token: while a wake-up is pending, or within
    MIN_WAKE_INTERVAL of the last one, further text only joins the batch. Each wake-up costs a
    self-pipe write, a loop iteration and a GIL hand-over that the generation thread waits on, so
    a fast model does not ping-pong with the loop on every token; a model slower than one token
    per interval still streams token by token, and text is never held back longer than one token.
    """

    MIN_WAKE_INTERVAL = 0.008

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._wakeup_pending = False
        self._last_wake = -1.0
        self._closed = False
        self._ready = asyncio.Event()

    def _wake(self) -> None:
        self._loop.call_soon_threadsafe(self._ready.set)

    def put(self, text: str) -> None:
        """From the generation thread."""
        now = time.monotonic()
        with self._lock:
            self._pending.append(text)
            if self._wakeup_pending or now - self._last_wake < self.MIN_WAKE_INTERVAL:
                return
            self._wakeup_pending = True
            self._last_wake = now
        self._wake()

    def close(self) -> None:
        """From the generation thread, when it is done (also after a failure)."""
        with self._lock:
            self._closed = True
        self._wake()

    async def batches(self) -> AsyncIterator[str]:
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                texts, self._pending = self._pending, []
                self._wakeup_pending = False
                closed = self._closed
            if texts:
                yield "".join(texts)
            if closed:
                return


async def wait_for_thread(worker: asyncio.Future[T]) -> None:
    """Wait until the generation thread has stopped (it checks its cancel flag after every token),
    even if we are cancelled meanwhile: the llama context must be idle before the lock is free."""
    cancelled = False
    while not worker.done():
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break
    if not worker.cancelled():
        worker.exception()  # mark retrieved; a failure already reached the caller through `await`
    if cancelled:
        raise asyncio.CancelledError
