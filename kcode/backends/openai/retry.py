"""Retry timing and a shared, self-tuning cap on concurrent requests.

`RetryPolicy` decides how long to wait before the next attempt: exponential backoff with full
jitter (so parallel agents that failed together do not retry together), or the server's
Retry-After when it sent one. `AdaptiveLimiter` gates requests like a semaphore whose size halves
on a 429 and grows back by one after a window of successes (AIMD, as TCP does), so a fleet of
sub-agents settles just under the server's rate limit instead of hammering it.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import math
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from kcode.netutil import is_loopback_url

LOOPBACK_REFUSED_RETRIES = 1


def refused(err: BaseException) -> bool:
    """Whether a connection refusal (ECONNREFUSED) is anywhere in the exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        if isinstance(current, OSError) and current.errno == errno.ECONNREFUSED:
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5  # retries after the first attempt
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 60.0  # a server asking for longer is capped, not obeyed blindly

    def retries_for(self, err: BaseException, base_url: str) -> int:
        """How many retries this failure deserves. A connection refused by this very machine means
        no server is listening: it will not appear within seconds, so one quick retry at most
        (a server being restarted), instead of ~11 s of backoff before saying so."""
        if refused(err) and is_loopback_url(base_url):
            return min(self.max_retries, LOOPBACK_REFUSED_RETRIES)
        return self.max_retries

    def delay_for(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_retry_after_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** max(attempt - 1, 0))
        return random.uniform(0.0, ceiling)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` as seconds or an HTTP date; None if absent."""
    millis = headers.get("retry-after-ms")
    if millis:
        seconds = _seconds(millis, 1000.0)
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        float(value)
    except ValueError:
        pass
    else:
        return _seconds(value, 1.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _seconds(text: str, per_second: float) -> float | None:
    """A non-negative delay from a header number; NaN is no delay at all (None): `max(nan, 0)` is
    NaN, which slept zero seconds and printed as NaN in the JSON events. Infinity is capped later
    (RetryPolicy.max_retry_after_s)."""
    try:
        value = float(text) / per_second
    except ValueError:
        return None
    return None if math.isnan(value) else max(value, 0.0)


@dataclass(frozen=True)
class LimiterSlot:
    """One admitted request. Report how it went so the limiter can adapt."""

    limiter: AdaptiveLimiter
    epoch: int

    def rate_limited(self) -> None:
        self.limiter._on_rate_limited(self.epoch)

    def succeeded(self) -> None:
        self.limiter._on_success()


class AdaptiveLimiter:
    """`async with limiter as slot:` admits at most `limit` requests at a time.

    Only one halving per epoch: when 16 requests in flight all get a 429 together, the limit halves
    once, not 16 times, because they were all admitted under the same limit.
    """

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self._limit = self.max_concurrency
        self._in_flight = 0
        self._epoch = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self) -> LimiterSlot:
        while self._in_flight >= self._limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # we were handed a turn we will not use: pass it on
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._in_flight += 1
        return LimiterSlot(self, self._epoch)

    def release(self) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        self._wake()

    async def __aenter__(self) -> LimiterSlot:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def _wake(self) -> None:
        free = self._limit - self._in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _on_rate_limited(self, epoch: int) -> None:
        if epoch != self._epoch:
            return  # admitted before the last halving; that halving already accounted for it
        self._limit = max(1, self._limit // 2)
        self._epoch += 1
        self._successes = 0

    def _on_success(self) -> None:
        if self._limit >= self.max_concurrency:
            return
        self._successes += 1
        if self._successes >= self._limit:
            self._successes = 0
            self._limit += 1
            self._epoch += 1
            self._wake()
