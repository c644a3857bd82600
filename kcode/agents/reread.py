"""Repeated reads (issue #16, token economics): a read_file whose result is, byte for byte, what the
conversation's latest read of the same file and window returned is answered with a short note
pointing at that earlier result.

Models re-read files they have read before (to check a detail, after a sub-agent fan-out, out of
habit); each re-read re-sends the whole file and is paid again on every later request of the
conversation, cached or not. Claude Code answers such a read the same way.

The rule compares with what is *in the history now*, not with a ledger of past reads:
- only the latest read of that path with the same offset and limit counts: after an edit and a
  revert, the file may read like an older result, but the model last saw another text;
- after an edit (by the agent, a hook, a user or a sub-agent's merge) the text differs, and the file
  goes to the model in full;
- compaction keeps the latest exchange verbatim and summarises what came before: a note whose
  earlier result was summarised away gets the full text back (`restore_summarised_reads`, from the
  note's meta, which the session log keeps);
- only read_file results count: a `cat` through the shell or an MCP tool's output that happens to be
  equal is not the same promise.

The note says "the same text", not "unchanged": a change the tool does not show (past its line
cap, CRLF to LF) gives the same result, and the model should not conclude that an edit of its own
had no effect.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from kcode.messages import Message, TextPart, ToolCall

READ_TOOL = "read_file"
# A note costs about this much; shorter results are sent again as they are.
MIN_SAVED_CHARS = 200
SAME_AS = "same_as"  # meta of a note: the call id whose result holds the text
FULL_TEXT = "full_text"  # meta of a note: the text it stands for


def note_repeated_read(history: Sequence[Message], call: ToolCall, message: Message) -> Message:
    """`message` (the result of a successful `call`), or a note in its place when the latest read
    of the same file and window in `history` returned exactly the same text."""
    text = message.text
    if call.name != READ_TOOL or message.images or len(text) < MIN_SAVED_CHARS:
        return message
    window = _window(call)
    if window is None:
        return message
    earlier = _latest_read(history, window)
    if earlier is None or _full_text(earlier) != text:
        return message
    source = str(earlier.meta.get(SAME_AS) or earlier.tool_call_id)
    path, offset, limit = window
    where = "".join(
        part
        for part in (f", offset {offset}" if offset else "", f", limit {limit}" if limit else "")
    )
    note = (
        f"[same text as your earlier read_file of {path}{where} (call {source}): "
        "the tool returns that result again; use it]"
    )
    return Message(
        "tool",
        (TextPart(note),),
        tool_call_id=message.tool_call_id,
        meta={SAME_AS: source, FULL_TEXT: text},
    )


def restore_summarised_reads(history: Sequence[Message]) -> list[Message]:
    """`history` with every note whose earlier result is no longer in it (compaction summarised
    it) replaced by the full text that note stood for."""
    present = {m.tool_call_id for m in history if m.role == "tool"}
    out = []
    for message in history:
        source = message.meta.get(SAME_AS) if message.role == "tool" else None
        if source is not None and source not in present:
            message = Message(
                "tool", (TextPart(_full_text(message)),), tool_call_id=message.tool_call_id
            )
        out.append(message)
    return out


Window = tuple[str, Any, Any]  # (normalised path, offset, limit)


def _window(call: ToolCall) -> Window | None:
    path = call.arguments.get("path")
    if not isinstance(path, str):
        return None
    return os.path.normpath(path), call.arguments.get("offset"), call.arguments.get("limit")


def _full_text(message: Message) -> str:
    full = message.meta.get(FULL_TEXT)
    return full if isinstance(full, str) else message.text


def _latest_read(history: Sequence[Message], window: Window) -> Message | None:
    """The result message of the latest read_file call of `window` in `history`, if any. Calls and
    results are paired by position (a result answers a call of the assistant message before it),
    so a provider that reuses call ids (`call_0` every turn) cannot pair a read with another
    tool's result."""
    latest = None
    pending: dict[str, ToolCall] = {}
    for message in history:
        if message.role == "assistant":
            pending = {call.id: call for call in message.tool_calls}
        elif message.role == "tool" and message.tool_call_id is not None:
            call = pending.pop(message.tool_call_id, None)
            if call is not None and call.name == READ_TOOL and _window(call) == window:
                latest = message
    return latest
