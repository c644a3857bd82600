"""Batch fan-out (spawn_agents with prompt_template + items, like Kimi Code's AgentSwarm): turning the
arguments into tasks, the start ramp, the rate-limit requeue, and the shared brief.

Ramp: a batch can be up to 128 agents, and a provider sees all their first requests at once. The
first RAMP_BURST agents start at once, then one more every RAMP_STEP_S (agent i, counted from 0, may
start RAMP_STEP_S * (i - RAMP_BURST + 1) s after the call at the earliest), and never more than
--max-parallel at a time. 128 items are all started after about 31 s; the backend's adaptive limiter
still caps requests in flight. A `tasks` list keeps starting at once (its bench/swarm.py figures).

Requeue: a sub-agent whose request is still refused with HTTP 429 after the backend's own retries
gives its slot back, waits REQUEUE_BASE_S * 2^(n-1) (n = its requeue count, plus up to 25 % jitter so
requeued agents do not return together), and goes on where it stopped: an agent refused on its first
request starts again from its prompt (the same bytes, so a prompt cache still hits); one refused
later continues its own conversation with a note. After MAX_REQUEUES it fails like any backend
error. A quota refusal (HTTP 429 `insufficient_quota`: billing, not pacing) is not requeued.

Brief: one text (interfaces, names, decisions) placed first in the system prompt of every sub-agent
of the call, byte-identical for all of them, so they agree and share a cacheable prefix.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kcode.agents.subtasks import MAX_TASKS, SubTask
from kcode.events import Error, Event, Retrying, TurnFinished
from kcode.messages import Message
from kcode.tools.base import ToolError

if TYPE_CHECKING:
    from kcode.agents.loop import Agent
    from kcode.agents.subtasks import SubAgentResult
    from kcode.tools.base import ToolContext

ITEM = "{{item}}"
MAX_BRIEF_CHARS = 20_000
RAMP_BURST = 5
RAMP_STEP_S = 0.25
REQUEUE_BASE_S = 2.0
MAX_REQUEUES = 4
NOTHING_RUN = "Nothing was run."
CONTINUE_AFTER_REQUEUE = (
    "[kcode: your last request was refused by the provider's rate limit (HTTP 429) and you were "
    "requeued. Carry on with the task where you left off.]"
)


def expand_items(
    prompt_template: str | None, items: list[str] | None, role: str | None
) -> list[SubTask]:
    """The tasks of a prompt_template/items call, one per item in item order; bad input raises."""
    if prompt_template is None or items is None:
        missing = "items" if items is None else "prompt_template"
        raise ToolError(
            f"spawn_agents: prompt_template and items go together; {missing} is missing. "
            + NOTHING_RUN
        )
    if ITEM not in prompt_template:
        raise ToolError(
            f"spawn_agents: prompt_template must contain {ITEM} (exactly that spelling) where "
            f"each item goes. {NOTHING_RUN}"
        )
    if not items:
        raise ToolError(f"spawn_agents: items is empty; give at least one item. {NOTHING_RUN}")
    if len(items) > MAX_TASKS:
        raise ToolError(
            f"spawn_agents takes at most {MAX_TASKS} items per call; got {len(items)}. Split them "
            f"over several calls. {NOTHING_RUN}"
        )
    for i, item in enumerate(items):
        if not item.strip():
            raise ToolError(f"spawn_agents: item {i} is empty. {NOTHING_RUN}")
    # One replace pass over the template: an item that itself contains {{item}} stays as it is.
    return [SubTask(role or "general", prompt_template.replace(ITEM, item)) for item in items]


def check_duplicates(tasks: list[SubTask], what: str) -> None:
    """Two sub-agents with the same role and prompt would do the same work twice: refuse."""
    seen: dict[tuple[str, str], int] = {}
    for i, task in enumerate(tasks):
        key = (task.role, task.prompt.strip())
        if key in seen:
            raise ToolError(
                f"spawn_agents: {what} {seen[key]} and {i} give the same prompt to the same role; "
                f"every sub-agent must get a different prompt. {NOTHING_RUN}"
            )
        seen[key] = i


def check_brief(brief: str | None) -> str:
    if brief is None or not brief.strip():
        return ""
    if len(brief) > MAX_BRIEF_CHARS:
        raise ToolError(
            f"spawn_agents: brief is {len(brief)} characters; keep it under {MAX_BRIEF_CHARS} "
            f"(interfaces, names, decisions; not whole files). {NOTHING_RUN}"
        )
    return brief


def brief_block(brief: str) -> str:
    """The text put at the end of every sub-agent's system prompt (identical bytes for all)."""
    if not brief:
        return ""
    return (
        "\n# Brief shared by every sub-agent of this fan-out\n"
        "The parent agent gave the same brief to all the sub-agents working beside you. Use "
        "exactly the interfaces, names and decisions it states, even where you would choose "
        "differently, so that your work fits theirs.\n\n"
        f"{brief.strip()}\n"
    )


def ramp_delay(index: int) -> float:
    """Seconds after the call before agent `index` (from 0) of a batch may start."""
    return max(0, index - RAMP_BURST + 1) * RAMP_STEP_S


def requeue_delay(count: int, base_s: float) -> float:
    return float(base_s * 2 ** (count - 1) * (1 + random.random() / 4))


def is_requeueable(event: Event) -> bool:
    """A final 429 from the backend, not a quota refusal (kcode.backends.openai.api's wording)."""
    return (
        isinstance(event, Error) and event.kind == "rate_limited" and "quota" not in event.message
    )


def held_back(event: Event, state: RequeueState) -> bool:
    """Whether an event of a sub-agent that will be requeued is kept out of the parent's stream:
    the 429 error and the turn's end (a Retrying event says what happened instead)."""
    if state.requeues >= MAX_REQUEUES:
        return False
    if is_requeueable(event):
        state.limited = True
        return True
    return state.limited and isinstance(event, TurnFinished)


class RequeueState:
    def __init__(self) -> None:
        self.requeues = 0
        self.limited = False  # the current attempt ended on a requeueable 429


def resume_message(agent: Agent) -> Message:
    """What a requeued agent is sent: its first message again if it had no answer yet (history cut
    back to the system prompt: a byte-identical first request), else a note to carry on."""
    if not any(m.role == "assistant" for m in agent.history):
        first = next((m for m in agent.history if m.role == "user"), None)
        if first is not None:
            del agent.history[1:]
            return first
    return Message.user(CONTINUE_AFTER_REQUEUE)


def put_brief(agent: Agent, brief: str) -> None:
    """The brief block goes at the end of the agent's system prompt, after what is the same for
    every fan-out (role prompt, facts, memory): a new brief then leaves the role's cached prefix
    intact. Before it, it bought nothing: the tools precede the system prompt in a request and
    differ between roles, so agents of different roles never shared the brief's bytes anyway."""
    if brief and agent.history and agent.history[0].role == "system":
        agent.history[0] = Message.system(agent.history[0].text + brief)


Drive = Callable[..., Awaitable[TurnFinished | None]]


async def drive_requeued(
    drive: Drive,
    agent: Agent,
    plan: Any,
    parent: ToolContext,
    result: SubAgentResult,
    semaphore: asyncio.Semaphore,
    base_s: float,
) -> TurnFinished | None:
    """The orchestrator's `_drive`, and again after a backoff while the agent is refused with
    HTTP 429 (see the module docstring). `plan` is the orchestrator's _Plan."""
    put_brief(agent, plan.brief)
    state = plan.requeue = RequeueState()
    finished = await drive(agent, plan, parent, result)
    while state.limited:
        state.limited = False
        state.requeues += 1
        delay = requeue_delay(state.requeues, base_s)
        await parent.emit(
            Retrying(
                agent=plan.id,
                attempt=state.requeues,
                delay_s=round(delay, 3),
                reason="rate limited (HTTP 429) after the backend's retries: requeued",
            )
        )
        semaphore.release()  # the slot goes to an agent that can run now
        try:
            await asyncio.sleep(delay)
        finally:
            await semaphore.acquire()
        result.ok, result.report, result.error = False, "", None
        finished = await drive(agent, plan, parent, result, resume_message(agent))
    return finished
