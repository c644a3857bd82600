"""What a real provider refuses in a request, checked by the fake OpenAI server (issue #12).

OpenAI answers 400 when an assistant message's tool calls are not each followed by a tool message
with that `tool_call_id` (and when a tool message answers no call); Codex's test server asserts the
same. The fake server does too, so a history the agent leaves broken (a cancelled call, a crash
mid-batch, a compaction that cut a pair) fails the test that caused it, not a user's next request.
"""

from __future__ import annotations

from typing import Any


def tool_pairing_problem(messages: Any) -> str | None:
    """Why `messages` would be refused, or None when every tool call has exactly one result."""
    if not isinstance(messages, list):
        return None  # the handler's other checks (or the backend under test) deal with shape
    pending: dict[str, int] = {}  # call id → index of the assistant message that made it
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                return (
                    f"messages[{index}] is a tool result for {call_id!r}, which no preceding "
                    "assistant message with tool_calls is waiting for (unknown or answered twice)"
                )
            del pending[call_id]
            continue
        if pending:
            return _missing(pending, index)
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                call_id = call.get("id") if isinstance(call, dict) else None
                if not call_id:
                    return f"messages[{index}] has a tool call without an id"
                if call_id in pending:
                    return f"messages[{index}] repeats the tool call id {call_id!r}"
                pending[call_id] = index
    if pending:
        return _missing(pending, len(messages))
    return None


def _missing(pending: dict[str, int], index: int) -> str:
    ids = ", ".join(repr(c) for c in pending)
    where = f"before messages[{index}]" if index else "at the end"
    return (
        f"an assistant message with 'tool_calls' must be followed by tool messages responding to "
        f"each 'tool_call_id'; no result for {ids} (called in messages[{min(pending.values())}]) "
        f"{where}"
    )
