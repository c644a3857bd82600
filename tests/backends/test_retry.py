"""Retry timing and the adaptive concurrency limiter, on their own."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from kcode.backends.openai.retry import AdaptiveLimiter, RetryPolicy, parse_retry_after


def test_backoff_grows_and_stays_within_its_cap() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, max_retry_after_s=30.0)
    for attempt in range(1, 10):
        ceiling = min(5.0, 2.0 ** (attempt - 1))
        assert all(0.0 <= policy.delay_for(attempt) <= ceiling for _ in range(50))


def test_retry_after_is_honoured_but_capped() -> None:
    policy = RetryPolicy(max_retry_after_s=30.0)
    assert policy.delay_for(1, retry_after_s=7.0) == 7.0
    assert policy.delay_for(1, retry_after_s=3600.0) == 30.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_limiter_admits_at_most_its_limit() -> None:
    limiter = AdaptiveLimiter(3)
    peak = 0

    async def request() -> None:
        nonlocal peak
        async with limiter:
            peak = max(peak, limiter.in_flight)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(request() for _ in range(20)))
    assert peak == 3
    assert limiter.in_flight == 0


async def test_limiter_halves_once_per_burst_and_recovers_additively() -> None:
    limiter = AdaptiveLimiter(8)
    slots = [await limiter.acquire() for _ in range(8)]
    for slot in slots:  # eight 429s from one burst: one halving, not eight
        slot.rate_limited()
        limiter.release()
    assert limiter.limit == 4
    for expected in (5, 6):
        for _ in range(limiter.limit):
            async with limiter as slot:
                slot.succeeded()
        assert limiter.limit == expected


async def test_limiter_never_drops_below_one_and_a_cancelled_waiter_frees_nothing() -> None:
    limiter = AdaptiveLimiter(2)
    for _ in range(5):
        slot = await limiter.acquire()
        slot.rate_limited()
        limiter.release()
    assert limiter.limit == 1
    holder = await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert limiter.in_flight == 1
    holder.succeeded()
    limiter.release()
    async with limiter:
        assert limiter.in_flight == 1


def test_importing_the_backend_does_not_import_openai() -> None:
    code = "import sys, kcode.backends.openai.api; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
