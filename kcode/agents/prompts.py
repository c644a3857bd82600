"""System prompts: the main agent's, with project memory (AGENTS.md, KIMI.md, CLAUDE.md) appended."""

from __future__ import annotations

import functools
import time
from importlib import resources
from pathlib import Path

MEMORY_FILES = ("AGENTS.md", "KIMI.md", "CLAUDE.md")
MEMORY_MAX_CHARS = 20_000


@functools.cache  # packaged files: read once, not once per sub-agent of a 64-wide fan-out
def load_prompt(name: str) -> str:
    return resources.files("kcode.agents").joinpath(f"prompts/{name}.md").read_text("utf-8")


def project_memory(root: Path) -> str:
    sections = []
    for name in MEMORY_FILES:
        path = root / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")[:MEMORY_MAX_CHARS]
            sections.append(f"\n\n# {name} (project instructions)\n{text.strip()}")
    return "".join(sections)


def main_system_prompt(root: Path, *, interactive: bool) -> str:
    return load_prompt("main").format(
        cwd=root,
        date=time.strftime("%Y-%m-%d"),
        mode_rules="" if interactive else load_prompt("noninteractive").rstrip("\n"),
        memory=project_memory(root),
    )
