"""Mistral's tool calls, read while the answer streams (toolcall_formats.py).

What follows `[TOOL_CALLS]` comes in two shapes:
- v3 (Mistral 7B v0.3, Nemo, Small 3): a JSON list, `[TOOL_CALLS][{"name": ..., "arguments": {...}}]`;
- v11+ (Mistral Small 3.2, Magistral, Devstral): `[TOOL_CALLS]NAME[ARGS]{...}`, with
  `[CALL_ID]ID` between name and `[ARGS]` in some templates, one `[TOOL_CALLS]` per call.
Nothing closes a call but the end of its JSON, so the reader counts brackets (`json_object_end`)
and hands back how much it consumed; whatever follows (another `[TOOL_CALLS]`, prose, the end) is
the stream parser's again. A shape it cannot read becomes one malformed call, reported back to
the model like every malformed call, rather than text that silently drops a call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from kcode.backends.base import ToolSpec
from kcode.backends.llama.toolcall_bodies import ParsedCall, json_object_end, parse_hermes_body
from kcode.safety.json_input import MAX_ARGUMENT_DEPTH, loads_json

MISTRAL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"
CALL_ID = "[CALL_ID]"
# What may stand between [TOOL_CALLS] and [ARGS]: a function name, maybe [CALL_ID] and an id.
_HEAD = re.compile(r"([\w.\-]+)(?:\[CALL_ID\]([\w.\-]*))?")
_MAX_HEAD = 256  # a head longer than this without [ARGS] is not a call head


def _could_grow_into_head(text: str) -> bool:
    """`text` is a proper prefix of `NAME[CALL_ID]ID[ARGS]` (more text may complete it)."""
    if len(text) > _MAX_HEAD:
        return False
    for marker in (CALL_ID, ARGS):
        for size in range(len(marker) - 1, 0, -1):
            if text.endswith(marker[:size]):
                text = text[:-size]
                break
    return bool(_HEAD.fullmatch(text)) or not text


def _json_calls(body: str, tools: Mapping[str, ToolSpec]) -> list[ParsedCall]:
    """v3: a list of `{"name", "arguments"}` objects (or one object)."""
    try:
        value = loads_json(body, MAX_ARGUMENT_DEPTH)
    except ValueError:
        return parse_hermes_body(body, tools)  # reported as malformed, with the name if seen
    items = value if isinstance(value, list) else [value]
    calls = [call for item in items for call in parse_hermes_body(json.dumps(item), tools)]
    return calls or [ParsedCall("", None, body)]


def read_mistral_calls(
    buffer: str, final: bool, tools: Mapping[str, ToolSpec]
) -> tuple[list[ParsedCall], int] | None:
    """The calls at the start of `buffer` (the text after `[TOOL_CALLS]`) and how many characters
    they take, or None to wait for more text (never when `final`)."""
    text = buffer.lstrip()
    skipped = len(buffer) - len(text)
    if not text:
        return None if not final else ([ParsedCall("", None, "")], len(buffer))
    if text[0] in "[{":  # v3: a JSON list of calls (or one call object)
        end = json_object_end(text)
        if end < 0:
            return None if not final else (_json_calls(text, tools), len(buffer))
        return _json_calls(text[:end], tools), skipped + end
    head_end = text.find(ARGS)
    head = text if head_end < 0 else text[:head_end]
    match = _HEAD.fullmatch(head)
    if head_end < 0 or match is None:
        if not final and head_end < 0 and _could_grow_into_head(text):
            return None
        found = _HEAD.match(text)
        return [ParsedCall(found.group(1) if found else "", None, text)], len(buffer)
    name, call_id = match.group(1), match.group(2) or None
    rest = text[head_end + len(ARGS) :]
    arguments_text = rest.lstrip()
    start = skipped + head_end + len(ARGS) + len(rest) - len(arguments_text)
    end = json_object_end(arguments_text) if arguments_text[:1] == "{" else -1
    if end < 0:
        if not final and (not arguments_text or arguments_text[0] == "{"):
            return None
        return [ParsedCall(name, None, arguments_text, call_id)], len(buffer)
    raw = arguments_text[:end]
    try:
        value = loads_json(raw, MAX_ARGUMENT_DEPTH)
    except ValueError:
        value = None
    arguments = value if isinstance(value, dict) else None
    return [ParsedCall(name, arguments, raw, call_id)], start + end
