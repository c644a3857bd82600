"""Putting the session's extensions on the runtime: tools, system-prompt section, warnings, roles."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcode.extensions.session import ExtensionRuntime, load_extensions
from kcode.tools.base import Tool, ToolContext

if TYPE_CHECKING:
    from kcode.config.loader import Config


class MergedTools(Mapping[str, "Tool[Any]"]):
    """The built-in (lazy) tool set plus the extension tools (e.g. `skill`), in that order."""

    def __init__(self, base: Mapping[str, Tool[Any]], extra: dict[str, Tool[Any]]) -> None:
        self._base = base
        self._extra = {k: v for k, v in extra.items() if k not in base}

    def __getitem__(self, name: str) -> Tool[Any]:
        if name in self._extra:
            return self._extra[name]
        return self._base[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        yield from self._extra

    def __len__(self) -> int:
        return len(self._base) + len(self._extra)


def attach_extensions(
    ctx: ToolContext, config: Config, root: Path, session: Any, *, interactive: bool
) -> ExtensionRuntime:
    """Load the extensions, register custom roles, put the runtime on `ctx`. Warnings go to stderr
    now in `-p` (like config warnings); the REPL shows them as events at the first turn."""
    from kcode.extensions.agents import set_custom_agents

    ext = load_extensions(
        root,
        config,
        interactive=interactive,
        session_id=getattr(session, "session_id", ""),
        transcript=str(getattr(session, "path", "")),
    )
    set_custom_agents(ext.agents)
    ctx.extensions = ext
    if not interactive:
        from kcode.safety.terminal_text import visible

        for warning in ext.warnings:  # file names come from the repository: show, never obey
            sys.stderr.write(f"kcode: warning: {visible(warning, one_line=True)}\n")
        if not ext.trusted:
            from kcode.extensions.report import untrusted_project_files

            skipped = untrusted_project_files(root)
            if skipped:  # a CI run that silently lost its guard hooks would be worse than noise
                shown = visible(", ".join(skipped), one_line=True)
                sys.stderr.write(
                    f"kcode: note: not using {shown}: this repository is not trusted "
                    "(pass --trust-project or add it to `trusted` in your user config)\n"
                )
    return ext
