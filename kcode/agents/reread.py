"""Unchanged re-reads (issue #16, token economics): a read_file whose result is, byte for byte, one
the conversation already holds is answered with a short note pointing at that earlier result.

Models re-read files they have read before (to check a detail, after a sub-agent fan-out, out of
habit); each re-read re-sends the whole file and is paid again on every later request of the
conversation, cached or not. Claude Code answers such a read the same way.

The rule compares with what is *in the history now*, not with a ledger of past reads: after
compaction has summarised the earlier result away, after an edit (by the agent, a hook, a user or a
sub-agent's merge) or for a different window of the file, the text differs or is gone, and the full
result goes to the model as usual. Only read_file results count: a `cat` through the shell or an
MCP tool's output that happens to be equal is not the same promise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from kcode.messages import Message, ToolCall, ToolResult

READ_TOOL = "read_file"
# A note costs about this much; shorter results are sent again as they are.
MIN_SAVED_CHARS = 200


def shorten_unchanged_read(
    history: Sequence[Message], call: ToolCall, result: ToolResult | None
) -> ToolResult | None:
    """`result`, or a note in its place when an earlier read_file result in `history` has exactly
    the same text."""
    if (
        result is None
        or call.name != READ_TOOL
        or not result.ok
        or result.images
        or len(result.content) < MIN_SAVED_CHARS
    ):
        return result
    earlier = _earlier_read(history, _path_of(call), result.content)
    if earlier is None:
        return result
    # Short on purpose: the call's own arguments, just above it, already name the file and window.
    note = f"[unchanged since your read_file call {earlier}: that result is still current]"
    return ToolResult(result.call_id, True, note, result.data)


def _path_of(call: ToolCall) -> str | None:
    path = call.arguments.get("path")
    return os.path.normpath(path) if isinstance(path, str) else None


def _earlier_read(history: Sequence[Message], path: str | None, content: str) -> str | None:
    """The call id of a read_file of the same `path` in `history` whose result text is `content`.
    Two files with the same text (a vendored copy) are not one file: the path must match too."""
    if path is None:
        return None
    read_ids = {
        call.id
        for message in history
        if message.role == "assistant"
        for call in message.tool_calls
        if call.name == READ_TOOL and _path_of(call) == path
    }
    for message in reversed(history):
        if (
            message.role == "tool"
            and message.tool_call_id in read_ids
            and len(message.text) == len(content)  # cheap test first
            and message.text == content
        ):
            return message.tool_call_id
    return None
