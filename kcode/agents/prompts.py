"""System prompts: the main agent's, with project memory (AGENTS.md, KIMI.md, CLAUDE.md) appended."""

from __future__ import annotations

import functools
import os
import time
from importlib import resources
from pathlib import Path

MEMORY_FILES = ("AGENTS.md", "KIMI.md", "CLAUDE.md")
MEMORY_MAX_CHARS = 20_000
MEMORY_MAX_BYTES = 1024 * 1024  # a bigger "memory file" is not instructions; skip it


@functools.cache  # packaged files: read once, not once per sub-agent of a 64-wide fan-out
def load_prompt(name: str) -> str:
    return resources.files("kcode.agents").joinpath(f"prompts/{name}.md").read_text("utf-8")


def project_memory(root: Path) -> str:
    """The memory files' text. A file that resolves outside `root` (a committed symlink to
    ~/.ssh/id_rsa), is not a regular file (a FIFO) or is huge is skipped with a warning (#11)."""
    from kcode.safety.workspace_files import UnsafeFile, read_workspace_file

    sections = []
    seen: set[str] = set()
    for name in MEMORY_FILES:
        try:
            raw = read_workspace_file(root, name, MEMORY_MAX_BYTES)
        except UnsafeFile:
            continue  # memory_warnings() says why, through the config's warnings
        real = os.path.realpath(root / name)
        if raw is None or real in seen:  # CLAUDE.md -> AGENTS.md: once is enough
            continue
        seen.add(real)
        text = raw.decode("utf-8", errors="replace")[:MEMORY_MAX_CHARS]
        sections.append(f"\n\n# {name} (project instructions)\n{text.strip()}")
    return "".join(sections)


def memory_warnings(root: Path) -> list[str]:
    """Why a memory file in `root` is not read into the prompt, one line each. load_config adds
    them to Config.warnings, so they reach the user the way config warnings do (the core never
    prints)."""
    from kcode.safety.workspace_files import UnsafeFile, read_workspace_file

    out = []
    for name in MEMORY_FILES:
        try:
            read_workspace_file(root, name, MEMORY_MAX_BYTES)
        except UnsafeFile as err:
            out.append(f"{root / name}: not read into the prompt; {err}")
    return out


def main_system_prompt(root: Path, *, interactive: bool) -> str:
    return load_prompt("main").format(
        cwd=root,
        date=time.strftime("%Y-%m-%d"),
        mode_rules="" if interactive else load_prompt("noninteractive").rstrip("\n"),
        memory=project_memory(root),
    )
