"""The explicit list of tools and which roles get which (SPEC §5, §6).

Modules are imported only when a tool set is built, so `kcode --version` stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from kcode.backends.base import ToolSpec
from kcode.tools.base import Tool

# name -> (module, class). The order here is the order the model sees.
TOOL_CLASSES: dict[str, tuple[str, str]] = {
    "read_file": ("kcode.tools.read_file", "ReadFileTool"),
    "write_file": ("kcode.tools.write_file", "WriteFileTool"),
    "edit_file": ("kcode.tools.edit_file", "EditFileTool"),
    "apply_patch": ("kcode.tools.apply_patch", "ApplyPatchTool"),
    "grep": ("kcode.tools.grep", "GrepTool"),
    "glob": ("kcode.tools.glob_tool", "GlobTool"),
    "shell": ("kcode.tools.shell", "ShellTool"),
    "run_tests": ("kcode.tools.run_tests", "RunTestsTool"),
    "spawn_agents": ("kcode.tools.spawn_agents", "SpawnAgentsTool"),
    "todo_write": ("kcode.tools.todo", "TodoWriteTool"),
    "view_image": ("kcode.tools.view_image", "ViewImageTool"),
}

SEARCH_TOOLS = ("read_file", "grep", "glob")
EDIT_TOOLS = ("edit_file", "write_file", "apply_patch")

ROLE_TOOLS: dict[str, tuple[str, ...]] = {
    "main": tuple(TOOL_CLASSES),
    "search": SEARCH_TOOLS,
    "edit": (*SEARCH_TOOLS, *EDIT_TOOLS),
    "test": (*SEARCH_TOOLS, "run_tests", "shell"),
    "general": tuple(n for n in TOOL_CLASSES if n != "spawn_agents"),
}


def build_tools(names: tuple[str, ...] | list[str]) -> dict[str, Tool[Any]]:
    tools: dict[str, Tool[Any]] = {}
    for name in names:
        module_name, class_name = TOOL_CLASSES[name]
        cls = getattr(importlib.import_module(module_name), class_name)
        tools[name] = cls()
    return tools


def tool_specs(tools: Mapping[str, Tool[Any]]) -> list[ToolSpec]:
    return [ToolSpec(t.name, t.description, t.schema()) for t in tools.values()]


class LazyTools(Mapping[str, "Tool[Any]"]):
    """A tool set whose modules are imported on first use (the names are known up front)."""

    def __init__(self, names: tuple[str, ...] | list[str]) -> None:
        self._names = tuple(names)
        self._built: dict[str, Tool[Any]] = {}

    def __getitem__(self, name: str) -> Tool[Any]:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._built:
            self._built.update(build_tools([name]))
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
