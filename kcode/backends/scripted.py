"""A backend that replays a script of model turns: for tests and reproducible demos.

Script format (JSON file or Python list), one entry per model call:
    {"text": "...", "reasoning": "...", "tool_calls": [{"name": "grep", "arguments": {...}}],
     "usage": [prompt_tokens, completion_tokens], "delay_s": 0.0}
A turn may also be a callable `(messages) -> dict` for scripts that react to what the tools returned.
Several agents can share one backend: each conversation picks the script keyed by its first user
message prefix when `scripts` is given as a dict (key "*" is the default).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from kcode.backends.base import (
    BackendError,
    BackendOptions,
    Delta,
    FinishChunk,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.messages import Message
from kcode.safety.json_input import loads_json

Turn = dict[str, Any] | Callable[[Sequence[Message]], dict[str, Any]]


class ScriptedBackend:
    name = "scripted"

    def __init__(self, turns: Sequence[Turn] | dict[str, Sequence[Turn]]) -> None:
        scripts = turns if isinstance(turns, dict) else {"*": turns}
        self._scripts: dict[str, list[Turn]] = {k: list(v) for k, v in scripts.items()}
        self._positions: dict[str, int] = {}
        self.calls = 0

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedBackend:
        try:
            data = loads_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise BackendError("config", f"cannot read the script {path}: {err}") from err
        if not isinstance(data, list | dict):
            raise BackendError("config", f"the script {path} must be a JSON list of turns")
        return cls(data)

    def _script_key(self, messages: Sequence[Message]) -> str:
        first_user = next((m.text for m in messages if m.role == "user"), "")
        for key in self._scripts:
            if key != "*" and first_user.startswith(key):
                return key
        return "*"

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], options: BackendOptions
    ) -> AsyncIterator[Delta]:
        key = self._script_key(messages)
        script = self._scripts.get(key, [])
        # Position = assistant messages already in this conversation, so replays survive resume.
        position = sum(1 for m in messages if m.role == "assistant")
        if position >= len(script):
            raise BackendError(
                "server",
                f"the scripted model has no turn {position + 1} (script has {len(script)})",
            )
        self.calls += 1
        entry = script[position]
        turn = entry(messages) if callable(entry) else entry
        delay = float(turn.get("delay_s", 0.0))
        if delay:
            await asyncio.sleep(delay)
        if turn.get("error"):
            raise BackendError("server", str(turn["error"]))
        if turn.get("reasoning"):
            yield ReasoningChunk(turn["reasoning"])
        text = turn.get("text", "")
        for i in range(0, len(text), 16):
            yield TextChunk(text[i : i + 16])
        for index, call in enumerate(turn.get("tool_calls", [])):
            args = call.get("arguments", {})
            raw = args if isinstance(args, str) else json.dumps(args)
            yield ToolCallChunk(
                index, call.get("id", f"call_{position}_{index}"), call["name"], raw
            )
        usage = turn.get("usage", [len(str(messages)) // 4, max(1, len(text) // 4)])
        yield UsageChunk(int(usage[0]), int(usage[1]))
        yield FinishChunk("tool_calls" if turn.get("tool_calls") else "stop")

    async def aclose(self) -> None:
        return None
