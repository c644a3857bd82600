"""A randomised fault-injection run against the fake OpenAI server (shared by the test and bench).

Each turn asks the model to write a file; the fake model answers with a write_file call, then with
"done". Between and instead of those replies it injects faults: 429 with Retry-After, 5xx, connection
resets, streams cut mid-way, stalls past the backend's timeout and truncated tool-call JSON. A turn
is *lost* unless it completes or ends with the documented backend error, with a valid history.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcode.agents.loop import BACKEND_ERROR, COMPLETED, Agent
from kcode.backends.base import BackendOptions
from kcode.backends.openai.api import OpenAIBackend
from kcode.events import TurnFinished
from kcode.messages import Message
from kcode.session import Session
from kcode.tools.base import ToolContext
from kcode.tools.registry import build_tools
from tests.fake_openai import FakeOpenAIServer, Reply

FAULT_KINDS = ("429", "500", "502", "503", "reset", "cut", "stall", "truncated_args")
STALL_TIMEOUT_S = 0.25
TURNS_PER_SESSION = 10


@dataclass
class FaultReport:
    turns: int = 0
    faults: int = 0
    lost: int = 0
    completed: int = 0
    documented_errors: int = 0
    bad_log_lines: int = 0


class FaultyModel:
    """The responder: a correct reply or, with probability `rate`, a fault instead."""

    def __init__(self, seed: int, rate: float) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.faults = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            messages = body.get("messages", [])
            after_tool = bool(messages) and messages[-1].get("role") == "tool"
            prompt = next(m["content"] for m in reversed(messages) if m.get("role") == "user")
            name = str(prompt).split()[-1] if isinstance(prompt, str) else "out.txt"
            good = (
                Reply.text("done")
                if after_tool
                else Reply.tool_call("write_file", {"path": name, "content": "ok\n"})
            )
            if self.rng.random() >= self.rate:
                return good
            self.faults += 1
            kind = self.rng.choice(FAULT_KINDS)
            if kind == "429":
                return Reply.fault(429, retry_after=0)
            if kind in ("500", "502", "503"):
                return Reply.fault(int(kind))
            if kind == "reset":
                return Reply.connection_reset()
            if kind == "cut":
                good.cut_after = self.rng.randint(0, 3)
                good.content = good.content or "partial"
                return good
            if kind == "stall":
                good.delay_s = STALL_TIMEOUT_S * 2.5
                return good
            if after_tool:  # truncated JSON only makes sense for a tool call
                return Reply.tool_call(
                    "write_file", {"path": name, "content": "x"}, malformed_args=True
                )
            return Reply.tool_call(
                "write_file", {"path": name, "content": "ok\n"}, malformed_args=True
            )


def _history_is_valid(history: list[Message]) -> bool:
    pending: set[str] = set()
    for message in history:
        if message.role == "assistant":
            if pending:
                return False
            pending = {c.id for c in message.tool_calls}
        elif message.role == "tool":
            pending.discard(message.tool_call_id or "")
    return not pending


async def _run_session(
    backend: OpenAIBackend, workdir: Path, start: int, turns: int, report: FaultReport
) -> None:
    ctx = ToolContext(root=workdir)
    session = Session.create(workdir, {"test": "faults"}, redact=["sk-fault-test"])
    agent = Agent(
        backend=backend,
        tools=build_tools(["write_file"]),
        ctx=ctx,
        system_prompt="test",
        options=BackendOptions(model="fake-model"),
        max_steps=12,
        on_message=session.log_message,
    )
    try:
        for turn in range(start, start + turns):
            finished: TurnFinished | None = None
            async for event in agent.run_turn(Message.user(f"write file f{turn}.txt")):
                session.log_event(event)
                if isinstance(event, TurnFinished):
                    finished = event
            report.turns += 1
            if finished is not None and finished.reason == COMPLETED:
                report.completed += 1
            elif finished is not None and finished.reason == BACKEND_ERROR:
                report.documented_errors += 1
            else:
                report.lost += 1
            if not _history_is_valid(agent.history):
                report.lost += 1
    finally:
        session.close()
    for line in session.path.read_text(encoding="utf-8").splitlines():
        try:
            json.loads(line)
        except ValueError:
            report.bad_log_lines += 1
        if "sk-fault-test" in line:
            report.bad_log_lines += 1


async def run_fault_injection(
    workdir: Path, turns: int, seed: int, rate: float = 0.45
) -> FaultReport:
    model = FaultyModel(seed, rate)
    report = FaultReport()
    with FakeOpenAIServer(model) as server:
        backend = OpenAIBackend(
            server.base_url,
            "sk-fault-test",
            "fake-model",
            timeout_s=STALL_TIMEOUT_S,
            max_retries=6,
            backoff_base_s=0.001,
            backoff_max_s=0.005,
            retry_after_cap_s=0.01,
        )
        try:
            # A fresh conversation every few turns keeps requests small (each one resends the
            # whole history); faults are per request, so this changes nothing else.
            for start in range(0, turns, TURNS_PER_SESSION):
                count = min(TURNS_PER_SESSION, turns - start)
                await _run_session(backend, workdir, start, count, report)
        finally:
            await backend.aclose()
    report.faults = model.faults
    return report
