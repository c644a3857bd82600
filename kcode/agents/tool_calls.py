"""Running the tool calls of one model reply (the agent loop's second half).

The loop (kcode.agents.loop) streams a reply, then hands its calls here: they run concurrently where
their footprints allow (kcode.agents.scheduling), approvals are asked one at a time in call order,
and the events the tools emit while they run are drained into the turn's stream. Whatever happens,
every call gets exactly one result message, in call order (`result_messages`, `dangling_results`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from kcode.agents.scheduling import dependencies, footprint
from kcode.events import Event, ToolCallFinished, ToolCallStarted
from kcode.messages import Message, TextPart, ToolCall, ToolResult
from kcode.safety.text_input import valid_unicode, valid_unicode_in
from kcode.tools.approval_order import ApprovalOrder, take_slot
from kcode.tools.base import Tool, ToolContext, run_tool

# Identical consecutive tool-call sets: warn the model at WARN (the loop stops the turn at STOP).
REPEAT_WARN = 3

Emit = Callable[[Event], Awaitable[None]]


async def run_calls(
    calls: Sequence[ToolCall],
    results: list[ToolResult | None],
    tools: Mapping[str, Tool[Any]],
    ctx: ToolContext,
    agent_id: str,
    emit: Emit,
) -> None:
    """Run `calls`, writing each one's result into `results[i]`; independent calls overlap."""
    footprints = [footprint(tools.get(c.name), c) for c in calls]
    waits = dependencies(footprints)
    finished = [asyncio.Event() for _ in calls]
    order = ApprovalOrder(len(calls))  # approvals one at a time, in call order

    async def run_one(i: int) -> None:
        take_slot(order, i, tools.get(calls[i].name))
        try:
            for j in waits[i]:
                await finished[j].wait()
            results[i] = await run_call(calls[i], tools, ctx, agent_id, emit)
        finally:
            finished[i].set()
            order.release(i)

    async with asyncio.TaskGroup() as group:
        for i in range(len(calls)):
            group.create_task(run_one(i))


async def run_call(
    call: ToolCall, tools: Mapping[str, Tool[Any]], ctx: ToolContext, agent_id: str, emit: Emit
) -> ToolResult:
    await emit(
        ToolCallStarted(agent=agent_id, call_id=call.id, name=call.name, arguments=call.arguments)
    )
    t0 = time.monotonic()
    tool = tools.get(call.name)
    if tool is None:
        result = ToolResult(
            call.id, False, f"unknown tool {call.name!r}; available tools: {', '.join(tools)}"
        )
    else:
        ext = ctx.extensions  # plan-mode gate and Pre/PostToolUse hooks around the call
        result = await (ext.run_tool if ext is not None else run_tool)(tool, call, ctx)
    # A file name that is not UTF-8, a binary's output, an MCP server's "\ud800": from here on the
    # text goes to the model, the session log and the terminal, all of which need valid Unicode.
    data = valid_unicode_in(result.data) if result.data else result.data
    result = ToolResult(
        result.call_id, result.ok, valid_unicode(result.content), data, result.images
    )
    await emit(
        ToolCallFinished(
            agent=agent_id,
            call_id=call.id,
            name=call.name,
            ok=result.ok,
            content=result.content,
            data=result.data,
            duration_s=round(time.monotonic() - t0, 4),
        )
    )
    return result


async def drain(queue: asyncio.Queue[Event], runner: asyncio.Task[None]) -> AsyncIterator[Event]:
    """Yield events the tools emit while they run, until the runner task is done."""
    while True:
        getter = asyncio.ensure_future(queue.get())
        try:
            done, _ = await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The runner is a separate task: cancel it too and let its tools clean up
            # (kill processes, remove sub-agent worktrees) before the turn ends.
            getter.cancel()
            runner.cancel()
            await asyncio.wait({runner})
            raise
        if getter in done:
            yield getter.result()
            # Take what else is queued without a new task and wait each: 64 sub-agents'
            # events arrive in bursts, and a task per event was a good part of the overhead.
            while not queue.empty():
                yield queue.get_nowait()
            continue
        getter.cancel()
        while not queue.empty():
            yield queue.get_nowait()
        return


def result_messages(
    calls: Sequence[ToolCall], results: Sequence[ToolResult | None], repeats: int
) -> list[Message]:
    """One tool message per call, in call order; a call that never ran says so."""
    out = []
    for call, result in zip(calls, results, strict=True):
        if result is None:
            result = ToolResult(call.id, False, "not run: the turn stopped before this call")
        if repeats >= REPEAT_WARN:
            note = (
                f"\n[kcode: this exact call was made {repeats} times in a row with the same "
                "arguments. Do something different, or answer if you are done.]"
            )
            result = ToolResult(result.call_id, result.ok, result.content + note, result.data)
        out.append(Message.tool(result))
    return out


def dangling_results(history: Sequence[Message]) -> list[Message]:
    """After cancellation or a crash: a result for every unanswered call of the last reply."""
    answered = {m.tool_call_id for m in history if m.role == "tool"}
    for message in reversed(history):
        if message.role == "assistant":
            return [
                Message(
                    "tool",
                    (TextPart("cancelled: the user interrupted this call"),),
                    tool_call_id=call.id,
                )
                for call in message.tool_calls
                if call.id not in answered
            ]
    return []
