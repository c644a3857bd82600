"""Tool schemas for the model without importing the tools: a small JSON cache.

Building the schemas means importing every tool module and pydantic (~0.25 s here), and the first
request must carry them. The cache key covers the kcode version and the size and mtime of every
module in kcode/tools/, so any edit to a tool or its arguments rebuilds it. A missing or unwritable
cache only costs the import.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from kcode import __version__
from kcode.backends.base import ToolSpec
from kcode.safety.json_input import loads_json

TOOLS_DIR = Path(__file__).resolve().parent


def _cache_path() -> Path:
    stamp = [__version__]
    for entry in sorted(os.scandir(TOOLS_DIR), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            info = entry.stat()
            stamp.append(f"{entry.name}:{info.st_size}:{info.st_mtime_ns}")
    key = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kcode" / f"tool-specs-{key}.json"


def cached_tool_specs(names: tuple[str, ...] | list[str]) -> list[ToolSpec]:
    """The specs of `names`, from the cache when it is current, else built (and cached)."""
    path = _cache_path()
    try:
        table = loads_json(path.read_text(encoding="utf-8"))
        if all(name in table for name in names):
            return [ToolSpec(n, table[n]["description"], table[n]["parameters"]) for n in names]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from kcode.tools.registry import TOOL_CLASSES, build_tools, tool_specs

    specs = tool_specs(build_tools(list(TOOL_CLASSES)))
    table = {s.name: {"description": s.description, "parameters": s.parameters} for s in specs}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
    by_name = {s.name: s for s in specs}
    return [by_name[n] for n in names]
