"""Runtime.switch_backend (issue #12): sub-agents spawned after a switch use the new backend and
model, and the old backend is closed only once no turn runs (a sub-agent may still be on it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kcode.events import AgentFinished, Event, TurnFinished
from kcode.messages import Message
from kcode.runtime import build_runtime
from kcode.safety.approval import NonInteractiveApprover
from tests.ui.helpers import scripted_config
from tests.ui.test_repl import git_repo
from tests.ui.test_runtime_door import RecordingBackend
from tests.waiting import async_wait_until


def spawn(prompt: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "spawn_agents",
                            "arguments": {"tasks": [{"role": "search", "prompt": prompt}]}}]}  # fmt: skip


async def collect(runtime: Any, text: str) -> list[Event]:
    return [event async for event in runtime.run_turn(Message.user(text))]


async def test_a_switch_reaches_sub_agents_and_closes_the_old_backend_after_the_turn(
    tmp_path: Path,
) -> None:
    root = git_repo(tmp_path)
    config = scripted_config(root, sandbox="off")
    old = RecordingBackend({"main:": [{"text": "slow first answer", "delay_s": 0.3}]})
    runtime = build_runtime(config, root, NonInteractiveApprover("auto"), interactive=False,
                            backend=old)  # fmt: skip
    new = RecordingBackend({
        "main:": [{"text": "unused"}, spawn("find the entry point"), {"text": "all done"}],
        "*": [{"text": "sub-agent found it"}],
    })  # fmt: skip
    new_config = config.overridden("/model", model="model-b")
    first = asyncio.create_task(collect(runtime, "main: one"))
    await async_wait_until(lambda: old.calls == 1, "the first request")
    await runtime.switch_backend(new_config, new)  # while the turn still runs on `old`
    assert not old.closed
    events = await first
    assert isinstance(events[-1], TurnFinished)
    await async_wait_until(lambda: old.closed, "the old backend to be closed after the turn")

    events = await collect(runtime, "main: two")
    finished = [e for e in events if isinstance(e, AgentFinished)]
    assert finished and finished[0].ok, events
    assert old.calls == 1  # nothing more went to the old backend
    assert {o.model for o in new.options} == {"model-b"}  # the main agent and its sub-agent
    assert len(new.options) == 3  # main: spawn, sub-agent answer, main: final
    assert runtime.model == "model-b" and runtime.backend is new
    await runtime.aclose()


async def test_retire_images_drops_earlier_fix_loop_pictures(tmp_path: Path) -> None:
    from dataclasses import replace

    from kcode.messages import ImagePart
    from kcode.visual.prompt import FIX_LOOP_META

    root = git_repo(tmp_path)
    runtime = build_runtime(scripted_config(root, sandbox="off"), root,
                            NonInteractiveApprover("auto"), interactive=False,
                            backend=RecordingBackend([{"text": "seen"}]))  # fmt: skip
    picture = Message.user("iteration 1", (ImagePart(b"png"),))
    # A fix-loop message, as kcode fix sends it; the runtime's own turn puts it in the history.
    events = await collect_message(runtime, replace(picture, meta={FIX_LOOP_META: 1}))
    assert isinstance(events[-1], TurnFinished)
    assert runtime.history[1].images
    runtime.retire_images()
    assert not runtime.history[1].images and "images of this earlier iteration were dropped" in (
        runtime.history[1].text
    )
    await runtime.aclose()


async def collect_message(runtime: Any, message: Message) -> list[Event]:
    return [event async for event in runtime.run_turn(message)]
