from __future__ import annotations

from typing import Any

from kcode.agents.compaction import compact_history, estimate_tokens, needs_compaction
from kcode.backends.base import BackendOptions
from kcode.backends.scripted import ScriptedBackend
from kcode.messages import Message, ToolCall, ToolResult
from kcode.session import repair_history


def long_history() -> list[Message]:
    history = [Message.system("system prompt\n# AGENTS.md (project instructions)\nuse tabs")]
    for n in range(3):
        history.append(Message.user(f"task {n}"))
        call = ToolCall(f"c{n}", "read_file", {"path": f"f{n}.py"})
        history.append(Message.assistant("", (call,)))
        history.append(Message.tool(ToolResult(f"c{n}", True, "x" * 4000)))
        history.append(Message.assistant(f"done {n}"))
    return history


async def test_compaction_keeps_user_messages_and_valid_pairs() -> None:
    seen: list[Any] = []

    def summary(messages: Any) -> dict[str, Any]:
        seen.append(messages)
        return {"text": "read f0.py and f1.py; both fine"}

    history = long_history()
    todos = [{"text": "fix f2", "status": "in_progress"}]
    result = await compact_history(history, ScriptedBackend([summary]), BackendOptions(), todos)
    assert result is not None
    new = result.history
    assert new[0] == history[0]
    assert [m.text for m in new if m.role == "user"] == ["task 0", "task 1", "task 2"]
    assert "read f0.py and f1.py" in new[3].text and "[~] fix f2" in new[3].text
    assert new[-4:] == history[-4:]  # the latest exchange is verbatim
    assert repair_history(new) == new  # every tool call still has its result
    assert result.tokens_after < result.tokens_before
    assert "TOOL CALL read_file" in seen[0][1].text  # one request, old traffic as transcript


async def test_nothing_to_compact_with_a_single_exchange() -> None:
    history = long_history()[:5]
    assert await compact_history(history, ScriptedBackend([]), BackendOptions()) is None


def test_trigger_at_80_percent_of_the_window() -> None:
    history = [Message.system("s"), Message.user("u" * 4000)]
    assert estimate_tokens(history) == 1000
    assert needs_compaction(history, 1200) and not needs_compaction(history, 1300)


async def test_compact_text_tells_the_summary_what_to_keep() -> None:
    seen: list[Any] = []

    def summary(messages: Any) -> dict[str, Any]:
        seen.append(messages)
        return {"text": "kept the API decisions"}

    backend = ScriptedBackend([summary, summary])
    await compact_history(long_history(), backend, BackendOptions(), focus="the API decisions")
    await compact_history(long_history(), backend, BackendOptions())
    focused, plain = (str(messages[0].text) for messages in seen)
    assert "focus on: the API decisions" in focused
    assert "focus on" not in plain
