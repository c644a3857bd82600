"""Agent Skills (agentskills.io): `NAME/SKILL.md` directories, listed by name and description.

Progressive loading: only the name and description go into the system prompt (sorted, within a
budget, so the prompt is byte-stable per session); the body is read when the model calls the `skill`
tool (kcode.extensions.skill_tool, imported only when there are skills: it needs pydantic) or the user types `/name args`. Front-matter fields kcode does not know are ignored. Project
skills load without trust: a skill is text for the model, and anything it makes the model run goes
through the normal approval path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcode.extensions.files import (
    Source,
    Warnings,
    bool_field,
    list_dir,
    read_text,
    split_front_matter,
    str_field,
)

PROJECT_SKILL_DIRS = (".kcode/skills", ".agents/skills", ".claude/skills", ".kimi-code/skills")
# The user's: $XDG_CONFIG_HOME/kcode/skills and ~/.agents/skills (the cross-tool path).
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DESCRIPTION_MAX = 1024
LISTING_ENTRY_MAX = 1536  # description + when_to_use, as Claude truncates them
LISTING_BUDGET = 8_000  # characters for the whole listing (Codex's figure; ~2k tokens)


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    path: Path  # the SKILL.md file
    scope: str  # project | user
    when_to_use: str = ""
    model_invocable: bool = True
    user_invocable: bool = True
    argument_hint: str = ""

    @property
    def directory(self) -> Path:
        return self.path.parent

    def body(self, warnings: Warnings | None = None) -> str:
        """Read now (progressive loading); the file may have changed since the listing."""
        w = warnings or Warnings()
        root = None if self.scope == "user" else _project_root(self.path)
        text = read_text(self.path, Source(self.directory, root), w) or ""
        _, body = split_front_matter(text, self.path, w)
        return body.strip("\n") + "\n"


def _project_root(skill_md: Path) -> Path:
    # <root>/.claude/skills/<name>/SKILL.md → <root>
    return skill_md.parents[3]


def discover_skills(root: Path, user_dir: Path, home: Path, warnings: Warnings) -> dict[str, Skill]:
    """Project skills first (they win a name clash), then the user's; one entry per name."""
    found: dict[str, Skill] = {}
    sources = [Source(root / d, root) for d in PROJECT_SKILL_DIRS]
    sources += [Source(user_dir / "skills", None), Source(home / ".agents/skills", None)]
    for source in sources:
        for entry in list_dir(source.base):
            skill_md = entry / "SKILL.md"
            if entry.name.startswith(".") or not skill_md.is_file():
                continue
            skill = load_skill(skill_md, source, warnings)
            if skill is not None and skill.name not in found:
                found[skill.name] = skill
    return found


def load_skill(path: Path, source: Source, warnings: Warnings) -> Skill | None:
    text = read_text(path, source, warnings)
    if text is None:
        return None
    meta, _ = split_front_matter(text, path, warnings)
    if meta is None:
        warnings.add(path, "skill skipped: its front matter cannot be read")
        return None
    dir_name = path.parent.name
    name = str_field(meta, "name", path, warnings) or dir_name
    if not NAME.match(name) or len(name) > 64:
        warnings.add(path, f"{name!r} is not a skill name (a-z, 0-9, single hyphens, ≤ 64)", "name")
        return None
    if name != dir_name:
        # The spec wants them equal; peers accept either. Say so, keep the declared name.
        warnings.add(path, f"{name!r} differs from the directory name {dir_name!r}", "name")
    description = str_field(meta, "description", path, warnings, limit=DESCRIPTION_MAX)
    if not description:
        warnings.add(path, "skill skipped: a description is required", "description")
        return None
    disabled = bool_field(meta, "disable_model_invocation", path, warnings)
    user = bool_field(meta, "user_invocable", path, warnings)
    return Skill(
        name=name,
        description=description,
        path=path,
        scope=source.scope,
        when_to_use=str_field(meta, "when_to_use", path, warnings) or "",
        model_invocable=not disabled,
        user_invocable=user is not False,
        argument_hint=str_field(meta, "argument_hint", path, warnings) or "",
    )


def skills_listing(skills: dict[str, Skill], budget: int = LISTING_BUDGET) -> str:
    """The system-prompt section: sorted, each entry capped, the whole within `budget`."""
    shown = [s for _, s in sorted(skills.items()) if s.model_invocable]
    if not shown:
        return ""
    head = (
        "\n\n# Skills\nSkills are instructions for specific tasks. When one fits the task, call "
        "the `skill` tool with its name (and arguments) first and follow what it returns.\n"
    )
    lines: list[str] = []
    used = len(head)
    for skill in shown:
        text = skill.description + (f" {skill.when_to_use}" if skill.when_to_use else "")
        if len(text) > LISTING_ENTRY_MAX:
            text = text[: LISTING_ENTRY_MAX - 1] + "…"
        line = f"- {skill.name}: {' '.join(text.split())}\n"
        if used + len(line) > budget:
            lines.append(f"- ({len(shown) - len(lines)} more skills not listed: over the budget)\n")
            break
        lines.append(line)
        used += len(line)
    return head + "".join(lines)


def skill_prompt(skill: Skill, arguments: str, variables: dict[str, str]) -> str:
    from kcode.extensions.expand import substitute

    env: dict[str, Any] = dict(variables)
    for key in ("CLAUDE_SKILL_DIR", "KIMI_SKILL_DIR", "KCODE_SKILL_DIR"):
        env[key] = str(skill.directory)
    body = substitute(skill.body(), arguments, env, positional=False)
    return f"# Skill: {skill.name} (directory {skill.directory})\n\n{body}"
