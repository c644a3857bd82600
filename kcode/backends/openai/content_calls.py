"""Tool calls a server left as markup in `content`, read with the local backend's parsers.

A server that does not parse tool calls itself (llama.cpp's server without `--jinja`,
llama-cpp-python's server with a plain chat format, vLLM without `--tool-call-parser`, Ollama with
some models) streams the model's tool-call markup as `content`. `ContentToolCalls` sits between
the chunk reader and the loop and turns that markup into real `ToolCallChunk`s with
`ToolCallStreamParser`, the one implementation of the formats (llama/toolcall_formats.py), so the markup
reaches neither the user nor the history as text.

How the format is chosen (the `tool_format` setting):
- "auto" (the default): text streams as it comes. Only a line start (after spaces/tabs) that could
  still grow into a call's start marker (`<tool_call>`, `<function=`, Kimi's section/call begin
  tokens, `<|python_tag|>`) is held back until the next chunk says whether it is one; every other
  character goes out at once. A marker counts only when (1) the request offered tools, (2) it
  opens the message or a line, (3) it is outside a ``` / ~~~ fenced code block and outside a
  `<think>` block opening the message (a thinking model drafts calls there; the block itself
  stays text: reasoning_content is the server's job), and (4) the server has sent no native
  tool call. From the first such marker on, the rest of the message is read by that format's
  parser, with all of its rules (several calls, prose after them, markers anywhere).
  Not recognised in auto: Llama 3's bare JSON call (`{"name": ..., "parameters": ...}` opening the
  answer), because a JSON answer is not an unambiguous marker (set "llama3"), nor a Kimi call
  inside a `<think>` the model never closes (set "kimi").
- a format name ("hermes", "kimi", "qwen3-coder", "llama3"): the whole content goes through that
  parser from the first byte, exactly as the local backend reads its model's output (`<think>`
  blocks become reasoning, bare Llama 3 JSON calls count, markers count anywhere).
- "none": content passes verbatim.

Native tool calls win. Once the server sends a `tool_calls` delta, the rest of the content passes
verbatim and calls parsed from earlier content of the same reply are dropped (so they are held
until the reply ends): a server that parsed calls itself owns the answer, and running a call twice
(an echo in content plus the native call) is worse than dropping the echo.

Prose that mentions `<tool_call>` inside a line, in inline code or in a fenced block stays text. A
model that writes a marker at a line start really does make a call: like every call it goes through
the approval rules and the sandbox, so the worst case is a confusing turn, never a bypass; a
marker that opens no well-formed call becomes a malformed call the loop reports back to the model
(as with the local backend), rather than text that silently drops a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from kcode.backends.base import Delta, TextChunk, ToolCallChunk, ToolSpec
from kcode.backends.llama.toolcall_formats import (
    CALL_START_MARKERS,
    FORMATS,
    HERMES,
    QWEN3_CODER,
    THINK_CLOSE,
    THINK_OPEN,
    ToolCallFormat,
    ToolCallStreamParser,
)
from kcode.config.schema import ToolFormat

# The canonical spellings of the config's ToolFormat choices (qwen3_coder is qwen3-coder).
TOOL_FORMATS = tuple(dict.fromkeys(name.replace("_", "-") for name in get_args(ToolFormat)))
_FENCES = ("```", "~~~")
_HEAD = 8  # characters of a line kept to recognise a code fence (up to 3 spaces + the fence)


class _Hold:
    """The text at a line start may still become a marker: wait for more."""


_HOLD = _Hold()


def check_tool_format(name: str) -> str:
    """The canonical spelling of a `tool_format` value; ValueError naming the choices."""
    canonical = name.strip().lower().replace("_", "-")
    if canonical not in TOOL_FORMATS:
        raise ValueError(f"tool_format {name!r} is not one of {', '.join(TOOL_FORMATS)}")
    return canonical


class ContentToolCalls:
    """One reply's filter: `read` the reader's deltas as they come, then `finish` once."""

    def __init__(self, tool_format: str, tools: Sequence[ToolSpec]) -> None:
        tool_format = check_tool_format(tool_format)
        self._tools = tuple(tools)
        self._parser: ToolCallStreamParser | None = None
        if tool_format not in ("auto", "none"):
            self._parser = ToolCallStreamParser(FORMATS[tool_format.replace("-", "_")], tools)
        # Without tools on offer no markup can be a call: nothing to look for.
        self._scanning = tool_format == "auto" and bool(tools)
        self._pending = ""  # held-back text: a line start that may grow into a marker
        self._line_blank = True  # the current line has had only spaces/tabs so far
        self._line_head = ""
        self._fence: str | None = None  # the fence of the code block we are in
        self._opening = True  # only whitespace so far: a <think> here opens a reasoning block
        self._in_think = False
        self._think_tail = ""  # the end of the reasoning seen so far, for a split </think>
        self._calls: list[ToolCallChunk] = []  # parsed from content, released at the end

    def read(self, deltas: list[Delta]) -> list[Delta]:
        if self._parser is None and not self._scanning:
            return deltas
        out: list[Delta] = []
        for delta in deltas:
            if isinstance(delta, TextChunk):
                out.extend(self._text(delta.text))
            elif isinstance(delta, ToolCallChunk):
                out.extend(self._native_call())
                out.append(delta)
            else:
                out.append(delta)
        return out

    def finish(self, finish_reason: str) -> tuple[list[Delta], str]:
        """What was held back, then the parsed calls; and the finish reason to report."""
        out: list[Delta] = []
        if self._scanning:
            out.extend(self._scan("", final=True))
        if self._parser is not None:
            out.extend(self._keep_calls(self._parser.finish()))
            self._parser = None
        if not self._calls:
            return out, finish_reason
        out.extend(self._calls)
        self._calls = []
        return out, "tool_calls"

    # --- internals -------------------------------------------------------------------------------
    def _text(self, text: str) -> list[Delta]:
        if self._parser is not None:
            return self._keep_calls(self._parser.feed(text))
        return self._scan(text, final=False)

    def _keep_calls(self, deltas: list[Delta]) -> list[Delta]:
        out: list[Delta] = []
        for delta in deltas:
            if isinstance(delta, ToolCallChunk):
                self._calls.append(delta)
            else:
                out.append(delta)
        return out

    def _native_call(self) -> list[Delta]:
        """The server parses calls itself: from now on its content is the answer as sent."""
        out: list[Delta] = []
        if self._pending:
            out.append(TextChunk(self._pending))
            self._pending = ""
        if self._parser is not None:
            out.extend(d for d in self._parser.finish() if not isinstance(d, ToolCallChunk))
            self._parser = None
        self._scanning = False
        self._calls = []
        return out

    def _scan(self, text: str, *, final: bool) -> list[Delta]:
        """Auto mode before any marker: pass text on, line by line, watching each line start."""
        buffer, self._pending = self._pending + text, ""
        position, size = 0, len(buffer)
        while position < size:
            if self._in_think:  # a model's draft of a call while it thinks is not a call
                window = self._think_tail + buffer[position:]
                close = window.find(THINK_CLOSE)
                if close < 0:
                    self._think_tail = window[1 - len(THINK_CLOSE) :]
                    break
                position += close + len(THINK_CLOSE) - len(self._think_tail)
                self._in_think, self._think_tail = False, ""
                self._line_blank, self._line_head = True, ""  # the answer starts afresh
                continue
            if self._line_blank and self._fence is None:
                start = position
                while start < size and buffer[start] in " \t":
                    start += 1
                if start < size and self._opening and buffer[start] not in "\r\n":
                    self._opening = False
                    if buffer.startswith(THINK_OPEN, start):
                        self._in_think, position = True, start + len(THINK_OPEN)
                        continue
                    if not final and THINK_OPEN.startswith(buffer[start:]):
                        self._opening = True
                        self._pending = buffer[start:]
                        return _as_text(buffer[:start])
                found = self._marker_at(buffer[start:], final) if start < size else None
                if found is _HOLD:
                    self._pending = buffer[start:]
                    return _as_text(buffer[:start])
                if isinstance(found, ToolCallFormat):
                    self._scanning = False
                    self._parser = ToolCallStreamParser(found, self._tools)
                    return _as_text(buffer[:start]) + self._text(buffer[start:])
            newline = buffer.find("\n", position)
            end = size if newline < 0 else newline
            segment = buffer[position:end]
            if len(self._line_head) < _HEAD:
                self._line_head += segment[: _HEAD - len(self._line_head)]
            if segment.strip(" \t"):
                self._line_blank = False
            if newline < 0:
                break
            self._end_line()
            position = newline + 1
        return _as_text(buffer)

    def _marker_at(self, rest: str, final: bool) -> ToolCallFormat | _Hold | None:
        for marker, tool_format in CALL_START_MARKERS.items():
            if rest.startswith(marker):
                if tool_format is not HERMES:
                    return tool_format
                # `<tool_call>` opens Hermes JSON or Qwen3-Coder XML: the body's first character
                # says which (held only while inside the markup, so nobody sees the wait).
                body = rest[len(marker) :].lstrip()
                if not body and not final:
                    return _HOLD
                return QWEN3_CODER if body.startswith("<") else HERMES
            if not final and marker.startswith(rest):
                return _HOLD
        return None

    def _end_line(self) -> None:
        head = self._line_head
        stripped = head.lstrip(" ")
        if len(head) - len(stripped) <= 3:
            for fence in _FENCES:
                if not stripped.startswith(fence):
                    continue
                if self._fence is None:
                    self._fence = fence
                elif self._fence == fence and not stripped.strip(fence[0] + " \t\r"):
                    self._fence = None  # a closing fence carries no info string
        self._line_head, self._line_blank = "", True


def _as_text(text: str) -> list[Delta]:
    return [TextChunk(text)] if text else []
