"""Custom slash commands: `.kcode/commands/*.md`, `.claude/commands/*.md`, `~/.config/kcode/commands/`.

The file name is the command (`review.md` → `/review`), the front matter's `description` and
`argument-hint` show in /help, the body is the prompt sent to the model after substitutions
(kcode.extensions.expand). Project commands are used only in a trusted repository: their
``!`cmd` `` lines would otherwise be a repository asking to run its own commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kcode.extensions.files import (
    Source,
    Warnings,
    list_dir,
    read_text,
    split_front_matter,
    str_field,
)

PROJECT_COMMAND_DIRS = (".kcode/commands", ".claude/commands")
USER_COMMAND_DIR = "commands"  # in the user config dir ($XDG_CONFIG_HOME/kcode)
COMMAND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    body: str
    path: Path
    scope: str
    argument_hint: str = ""


def project_command_files(root: Path) -> list[Path]:
    return [p for d in PROJECT_COMMAND_DIRS for p in list_dir(root / d) if p.suffix == ".md"]


def discover_commands(
    root: Path, user_dir: Path, warnings: Warnings, *, trusted: bool
) -> dict[str, Command]:
    """Project commands (when trusted) win over the user's with the same name."""
    sources = [Source(root / d, root) for d in PROJECT_COMMAND_DIRS] if trusted else []
    sources.append(Source(user_dir / USER_COMMAND_DIR, None))
    found: dict[str, Command] = {}
    for source in sources:
        for path in list_dir(source.base):
            if path.suffix != ".md" or not path.is_file():
                continue
            command = load_command(path, source, warnings)
            if command is not None and command.name not in found:
                found[command.name] = command
    return found


def load_command(path: Path, source: Source, warnings: Warnings) -> Command | None:
    name = path.stem
    if not COMMAND_NAME.match(name):
        warnings.add(path, f"/{name} is not a usable command name; file skipped", "file name")
        return None
    text = read_text(path, source, warnings)
    if text is None:
        return None
    meta, body = split_front_matter(text, path, warnings)
    if meta is None:
        meta = {}  # the body still works as a command; the warning says why the rest is ignored
    description = str_field(meta, "description", path, warnings, limit=300)
    if not description:
        first = next((ln.strip() for ln in body.splitlines() if ln.strip()), "")
        description = first[:80]
    return Command(
        name=name,
        description=description,
        body=body.strip("\n") + "\n",
        path=path,
        scope=source.scope,
        argument_hint=str_field(meta, "argument_hint", path, warnings) or "",
    )
