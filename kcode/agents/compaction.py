"""Context compaction: shrink a long conversation before it overflows the model's window.

What survives verbatim: the system prompt (which carries AGENTS.md), every user message, and the whole
latest exchange (from the last user message on). Everything older that the model produced — its
answers, tool calls and their results — is replaced by ONE summary written by the model in a single
request without tools, followed by the current todo list. Because the cut is made at user messages,
no tool call is separated from its result, so the history stays valid for the next request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from kcode.agents.reread import restore_summarised_reads
from kcode.backends.base import Backend, BackendOptions, TextChunk, UsageChunk
from kcode.messages import Message, TextPart

TRIGGER_FRACTION = 0.8
CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1_000
TRANSCRIPT_MAX_CHARS = 200_000  # the summary request itself must fit in the window
RESULT_MAX_CHARS = 2_000

SUMMARY_INSTRUCTIONS = (
    "You are compacting a coding agent's conversation to save context. Summarise the transcript "
    "below for the agent itself: what was asked, what was found (files, line numbers, facts), what "
    "was changed and verified, what failed, and what remains to do. Keep exact file paths, names "
    "and commands. Be dense; no preamble."
)
SUMMARY_HEADER = "[Summary of earlier work, written when the conversation was compacted]\n"


def estimate_tokens(history: Sequence[Message]) -> int:
    chars = 0
    images = 0
    for message in history:
        chars += len(message.text) + len(message.reasoning or "")
        images += len(message.images)
        for call in message.tool_calls:
            chars += len(call.name) + len(json.dumps(call.arguments, ensure_ascii=False))
    return chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS


def needs_compaction(history: Sequence[Message], context_window: int) -> bool:
    return estimate_tokens(history) >= TRIGGER_FRACTION * context_window


@dataclass
class CompactionResult:
    history: list[Message]
    tokens_before: int
    tokens_after: int
    summarised_messages: int
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _transcript(messages: Sequence[Message]) -> str:
    lines = []
    for m in messages:
        if m.role == "user":
            lines.append(f"USER: {m.text}")
        elif m.role == "assistant":
            if m.text:
                lines.append(f"ASSISTANT: {m.text}")
            for call in m.tool_calls:
                args = json.dumps(call.arguments, ensure_ascii=False)
                lines.append(f"TOOL CALL {call.name}({args[:RESULT_MAX_CHARS]})")
        elif m.role == "tool":
            text = m.text
            if len(text) > RESULT_MAX_CHARS:
                text = text[: RESULT_MAX_CHARS // 2] + "\n[...]\n" + text[-RESULT_MAX_CHARS // 2 :]
            lines.append(f"TOOL RESULT: {text}")
    joined = "\n".join(lines)
    return joined[-TRANSCRIPT_MAX_CHARS:]


def _todo_block(todos: Sequence[dict[str, Any]]) -> str:
    if not todos:
        return ""
    marks = {"done": "[x]", "in_progress": "[~]"}
    items = "\n".join(
        f"- {marks.get(str(t.get('status')), '[ ]')} {t.get('text', '')}" for t in todos
    )
    return f"\n\nCurrent todo list:\n{items}"


async def summarise(
    backend: Backend, options: BackendOptions, transcript: str, focus: str = ""
) -> tuple[str, int, int]:
    """One model call, no tools. Returns (summary, prompt_tokens, completion_tokens). `focus` is
    the user's text after `/compact` (Claude's custom instructions): what the summary must keep."""
    instructions = SUMMARY_INSTRUCTIONS
    if focus.strip():
        instructions += f"\n\nThe user asks the summary to focus on: {focus.strip()}"
    request = [Message.system(instructions), Message.user(transcript)]
    text, prompt_tokens, completion_tokens = "", 0, 0
    async for delta in backend.stream(request, [], replace(options, tool_choice="none")):
        if isinstance(delta, TextChunk):
            text += delta.text
        elif isinstance(delta, UsageChunk):
            prompt_tokens += delta.prompt_tokens
            completion_tokens += delta.completion_tokens
    return text.strip(), prompt_tokens, completion_tokens


async def compact_history(
    history: Sequence[Message],
    backend: Backend,
    options: BackendOptions,
    todos: Sequence[dict[str, Any]] = (),
    focus: str = "",
) -> CompactionResult | None:
    """The compacted history, or None when there is nothing old enough to summarise."""
    if not history or history[0].role != "system":
        return None
    user_indexes = [i for i, m in enumerate(history) if m.role == "user"]
    if not user_indexes:
        return None
    last_user = user_indexes[-1]
    old = list(history[1:last_user])
    old_traffic = [m for m in old if m.role != "user"]
    if not old_traffic:
        return None
    summary, prompt_tokens, completion_tokens = await summarise(
        backend, options, _transcript(old), focus
    )
    summary_message = Message(
        "assistant",
        (TextPart(SUMMARY_HEADER + (summary or "(no summary)") + _todo_block(todos)),),
        meta={"compaction": True},
    )
    new_history = [history[0], *(m for m in old if m.role == "user"), summary_message]
    new_history.extend(history[last_user:])
    # A repeated-read note kept here may point at a result just summarised: give it its text back.
    new_history = restore_summarised_reads(new_history)
    return CompactionResult(
        history=new_history,
        tokens_before=estimate_tokens(history),
        tokens_after=estimate_tokens(new_history),
        summarised_messages=len(old_traffic),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
