"""How much the adaptive limiter saves when a server rate-limits a fleet of sub-agents.

A fake server admits at most CAP chat requests at a time and answers 429 (Retry-After 0.05 s) to
the rest. 48 agents each make one request through one OpenAIBackend (max_concurrency 16): once
with the adaptive limiter (halves on 429, grows back by one), once with the same limiter frozen at
16 (baseline, same run). Figure: 429 responses with the adaptive limiter / 429s with the fixed cap
(lower is better), printed on the last line.
Usage: python bench/rate_limit_backoff.py [--agents N] [--cap N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kcode.backends.base import BackendOptions, TextChunk
from kcode.backends.openai.api import OpenAIBackend
from kcode.backends.openai.retry import AdaptiveLimiter
from kcode.messages import Message
from tests.fake_openai import FakeOpenAIServer, Reply


class FixedLimiter(AdaptiveLimiter):
    def _on_rate_limited(self, epoch: int) -> None:
        return None


async def run(agents: int, cap: int, adaptive: bool) -> tuple[int, float]:
    server: FakeOpenAIServer | None = None

    def responder(body: dict[str, Any]) -> Reply:
        assert server is not None
        if server.in_flight > cap:
            return Reply.fault(429, retry_after=0.05, message="too many requests in flight")
        return Reply.text("done", delay_s=0.1)

    server = FakeOpenAIServer(responder).start()
    try:
        backend = OpenAIBackend(
            server.base_url, "k", "fake-model", max_concurrency=16, max_retries=50
        )
        if not adaptive:
            backend.limiter = FixedLimiter(16)

        async def agent(i: int) -> str:
            stream = backend.stream([Message.user(f"task {i}")], [], BackendOptions())
            return "".join([d.text async for d in stream if isinstance(d, TextChunk)])

        started = time.perf_counter()
        answers = await asyncio.gather(*(agent(i) for i in range(agents)))
        elapsed = time.perf_counter() - started
        await backend.aclose()
        assert answers == ["done"] * agents
        rate_limited = sum(1 for r in server.requests if r.reply_index is not None) - agents
        return rate_limited, elapsed
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=48)
    parser.add_argument("--cap", type=int, default=4)
    args = parser.parse_args()
    import openai  # noqa: F401  -- import cost (~1 s) must not land in the first timed run

    fixed_429s, fixed_s = asyncio.run(run(args.agents, args.cap, adaptive=False))
    adaptive_429s, adaptive_s = asyncio.run(run(args.agents, args.cap, adaptive=True))
    print(f"fixed cap 16:      {fixed_429s} x 429 in {fixed_s:.2f}s")
    print(f"adaptive limiter:  {adaptive_429s} x 429 in {adaptive_s:.2f}s")
    print(f"wall time ratio adaptive/fixed: {adaptive_s / fixed_s:.2f}")
    print(f"429 ratio adaptive/fixed: {adaptive_429s / max(fixed_429s, 1):.3f}")


if __name__ == "__main__":
    main()
