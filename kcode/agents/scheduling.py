"""Which tool calls of one model reply may run at the same time.

Reads and searches run concurrently; a call that writes waits for every earlier call touching an
overlapping path; `exclusive` tools (shell, run_tests: they may touch anything) wait for everything before
them and everything after them waits for them. The order of results always follows the order of calls.

An exclusive tool may say that one particular call only reads (`call_reads_only(args)`: a shell
command kcode.safety.shell_readonly classifies as read-only, such as `grep`, `ls` or `git diff`). Such a
call reads everything and writes nothing: it runs beside other reads, and any writing or exclusive
call is a barrier on either side of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kcode.messages import ToolCall
from kcode.tools.base import Tool

EVERYTHING = "*"


@dataclass(frozen=True)
class Footprint:
    paths: frozenset[str]  # normalised relative paths, or {EVERYTHING}
    writes: bool
    exclusive: bool


def footprint(tool: Tool[Any] | None, call: ToolCall) -> Footprint:
    if tool is None:
        return Footprint(frozenset(), writes=False, exclusive=False)
    if getattr(tool, "exclusive", False):
        if _call_reads_only(tool, call):
            return Footprint(frozenset({EVERYTHING}), writes=False, exclusive=False)
        return Footprint(frozenset({EVERYTHING}), writes=True, exclusive=True)
    if tool.read_only:
        path = call.arguments.get("path")
        paths = {_norm(path)} if isinstance(path, str) and path.strip() else {EVERYTHING}
        return Footprint(frozenset(paths), writes=False, exclusive=False)
    try:
        written = tool.written_paths(tool.args_model.model_validate(call.arguments))
    except Exception:
        written = []
    paths = {_norm(p) for p in written} if written else {EVERYTHING}
    return Footprint(frozenset(paths), writes=True, exclusive=False)


def _call_reads_only(tool: Tool[Any], call: ToolCall) -> bool:
    check = getattr(tool, "call_reads_only", None)
    if check is None or call.invalid_arguments is not None:
        return False
    try:
        return bool(check(tool.args_model.model_validate(call.arguments)))
    except Exception:
        return False  # bad arguments: the call fails on its own, in order


def _norm(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts) or EVERYTHING


def _overlap(a: frozenset[str], b: frozenset[str]) -> bool:
    if EVERYTHING in a or EVERYTHING in b:
        return True
    return any(x == y or x.startswith(y + "/") or y.startswith(x + "/") for x in a for y in b)


def conflicts(earlier: Footprint, later: Footprint) -> bool:
    if earlier.exclusive or later.exclusive:
        return True
    if not (earlier.writes or later.writes):
        return False
    return _overlap(earlier.paths, later.paths)


def dependencies(footprints: list[Footprint]) -> list[list[int]]:
    """For each call, the indexes of earlier calls it must wait for."""
    return [
        [j for j in range(i) if conflicts(footprints[j], footprints[i])]
        for i in range(len(footprints))
    ]
