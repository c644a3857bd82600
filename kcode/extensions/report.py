"""`kcode doctor`'s extensions section: what loads, what is not used until trusted, what is broken."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from kcode.extensions.agents import project_agent_files
from kcode.extensions.commands import project_command_files
from kcode.extensions.hook_config import project_has_hooks, project_hook_files

if TYPE_CHECKING:
    from kcode.config.loader import Config

PROJECT_MCP_FILES = (".mcp.json", ".kcode/mcp.json")


def untrusted_project_files(root: Path) -> list[str]:
    """Project files that run (or steer) programs and so need trust; relative paths, sorted."""
    found: list[Path] = []
    if project_has_hooks(root):
        found += project_hook_files(root)
    found += project_command_files(root) + project_agent_files(root)
    found += [root / p for p in PROJECT_MCP_FILES if (root / p).is_file()]
    return sorted(os.path.relpath(p, root) for p in found)


def extensions_report(config: Config, root: Path) -> tuple[bool, str]:
    from kcode.extensions.session import load_extensions

    ext = load_extensions(root, config, interactive=True)
    lines: list[str] = []
    events = Counter(spec.event for spec in ext.hooks.specs)
    hooks = ", ".join(f"{event} ×{n}" for event, n in sorted(events.items())) or "none"
    summary = (
        f"hooks: {hooks}; skills: {len(ext.skills)}; commands: {len(ext.commands)}; "
        f"agents: {len(ext.agents)}; project {'trusted' if ext.trusted else 'not trusted'}"
    )
    pad = " " * 15
    if ext.skills:
        lines.append(f"{pad}skills: {', '.join(sorted(ext.skills))}")
    if ext.commands:
        lines.append(f"{pad}commands: {', '.join('/' + n for n in sorted(ext.commands))}")
    if ext.agents:
        lines.append(f"{pad}agent roles: {', '.join(sorted(ext.agents))}")
    if not ext.trusted:
        skipped = untrusted_project_files(root)
        if skipped:
            lines.append(
                f"{pad}not used until you trust this repository (answer the REPL's question, "
                "add it to `trusted`, or pass --trust-project):"
            )
            lines += [f"{pad}  - {p}" for p in skipped]
    warnings = list(ext.warnings)
    if not ext.trusted:  # checked (never run) so the files can be fixed before trusting them
        warnings += [w for w in _untrusted_warnings(root, config) if w not in warnings]
    for warning in warnings:
        lines.append(f"{pad}warning: {warning}")
    from kcode.safety.terminal_text import visible

    # Names and messages come from repository files: control characters are shown, not sent.
    detail = summary + "".join("\n" + visible(line, one_line=True) for line in lines)
    return not warnings, detail


def _untrusted_warnings(root: Path, config: Config) -> list[str]:
    from kcode.extensions.agents import discover_agents
    from kcode.extensions.commands import discover_commands
    from kcode.extensions.files import Source, Warnings
    from kcode.extensions.hook_config import read_hook_file
    from kcode.extensions.session import user_config_dir

    found = Warnings()
    for path in project_hook_files(root):
        read_hook_file(path, Source(path.parent, root), found)
    user_dir = user_config_dir()
    discover_commands(root, user_dir, found, trusted=True)
    discover_agents(root, user_dir, found, trusted=True)
    return found.items + _untrusted_mcp_warnings(root)


def _untrusted_mcp_warnings(root: Path) -> list[str]:
    """The project's MCP files, parsed (never started) so their mistakes can be fixed first."""
    from kcode.mcp.config import MAX_PROJECT_FILE, PROJECT_FILES, parse_servers_json
    from kcode.safety.workspace_files import UnsafeFile, read_workspace_file

    warnings: list[str] = []
    for rel in PROJECT_FILES:
        try:
            raw = read_workspace_file(root, rel, MAX_PROJECT_FILE, control=True)
        except UnsafeFile as err:
            warnings.append(f"{root / rel}: ignored; {err}")
            continue
        if raw is not None:
            text = raw.decode("utf-8", "replace")
            parse_servers_json(text, str(root / rel), "project", warnings)
    return warnings
