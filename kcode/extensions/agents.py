"""Custom sub-agents from Markdown files: usable as `spawn_agents` roles next to the built-in four.

`.kcode/agents/*.md`, `.claude/agents/*.md`, `.agents/agents/*.md`, `~/.config/kcode/agents/*.md`: YAML
front matter (`name`, `description`, `tools`, `model`, `maxTurns`) and a body that becomes the agent's
system prompt. Claude's tool names are mapped to kcode's; a tool kcode does not have is dropped with a
warning naming the file and the field (the agent keeps the rest; if none is left it is skipped, since
"no tools" would silently mean something else). Omitting `tools` gives the `general` tool set.
Project agent files are used only in a trusted repository (their prompts steer sub-agents that edit).

The session's custom roles live in a module-level table (`set_custom_agents`): the orchestrator looks
roles up by name and there is one session per process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kcode.extensions.files import (
    Source,
    Warnings,
    list_dir,
    name_list,
    read_text,
    split_front_matter,
    str_field,
)

PROJECT_AGENT_DIRS = (".kcode/agents", ".claude/agents", ".agents/agents")
USER_AGENT_DIR = "agents"  # in the user config dir ($XDG_CONFIG_HOME/kcode)
BUILT_IN_ROLES = ("search", "edit", "test", "general")
AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KCODE_TOOLS = (
    "read_file", "write_file", "edit_file", "apply_patch", "grep", "glob", "shell", "run_tests",
    "todo_write", "view_image",
)  # fmt: skip
# Claude Code's and Kimi Code's tool names → kcode's.
TOOL_ALIASES: dict[str, tuple[str, ...]] = {
    "Bash": ("shell",),
    "Read": ("read_file",),
    "Write": ("write_file",),
    "Edit": ("edit_file", "apply_patch"),
    "MultiEdit": ("edit_file", "apply_patch"),
    "Grep": ("grep",),
    "Glob": ("glob",),
    "LS": ("glob",),
    "TodoWrite": ("todo_write",),
    "Shell": ("shell",),
    "ReadFile": ("read_file",),
    "WriteFile": ("write_file",),
    "StrReplaceFile": ("edit_file",),
}
WRITERS = frozenset({"write_file", "edit_file", "apply_patch", "shell"})
# Claude's model aliases mean "a Claude model", which another backend does not serve: inherit.
INHERIT_MODELS = frozenset({"inherit", "sonnet", "opus", "haiku", "default"})


@dataclass(frozen=True)
class AgentDef:
    name: str
    description: str
    prompt: str
    tools: tuple[str, ...]
    path: Path
    scope: str
    model: str | None = None
    max_turns: int | None = None

    @property
    def isolated(self) -> bool:
        """Writes files (or may, through shell): in a git repo it gets its own worktree."""
        return bool(WRITERS & set(self.tools))


_CUSTOM: dict[str, AgentDef] = {}


def set_custom_agents(agents: dict[str, AgentDef]) -> None:
    _CUSTOM.clear()
    _CUSTOM.update(agents)


def custom_agent(name: str) -> AgentDef | None:
    return _CUSTOM.get(name)


def custom_agents() -> dict[str, AgentDef]:
    return dict(_CUSTOM)


def project_agent_files(root: Path) -> list[Path]:
    return [p for d in PROJECT_AGENT_DIRS for p in list_dir(root / d) if p.suffix == ".md"]


def discover_agents(
    root: Path, user_dir: Path, warnings: Warnings, *, trusted: bool
) -> dict[str, AgentDef]:
    sources = [Source(root / d, root) for d in PROJECT_AGENT_DIRS] if trusted else []
    sources.append(Source(user_dir / USER_AGENT_DIR, None))
    found: dict[str, AgentDef] = {}
    for source in sources:
        for path in list_dir(source.base):
            if path.suffix != ".md" or not path.is_file():
                continue
            agent = load_agent(path, source, warnings)
            if agent is not None and agent.name not in found:
                found[agent.name] = agent
    return found


def map_tools(names: list[str], path: Path, warnings: Warnings) -> list[str]:
    out: list[str] = []
    for raw in names:
        name = raw.split("(", 1)[0].strip()  # Claude's `Bash(git *)` scoping: the tool part
        if name in KCODE_TOOLS:
            mapped: tuple[str, ...] = (name,)
        elif name in TOOL_ALIASES:
            mapped = TOOL_ALIASES[name]
        elif name in ("skill", "Skill"):  # loading a skill (kcode.agents.sub_tools)
            mapped = ("skill",)
        elif name.startswith("mcp__") and len(name) > 5:  # MCP tools (kcode.agents.sub_tools)
            mapped = (name,)
        elif name in ("Task", "Agent", "spawn_agents"):
            warnings.add(path, f"dropped {raw!r}: sub-agents cannot spawn agents", "tools")
            continue
        else:
            warnings.add(path, f"dropped unknown tool {raw!r}; kcode has {', '.join(KCODE_TOOLS)}",
                         "tools")  # fmt: skip
            continue
        out.extend(t for t in mapped if t not in out)
    return out


def load_agent(path: Path, source: Source, warnings: Warnings) -> AgentDef | None:
    text = read_text(path, source, warnings)
    if text is None:
        return None
    meta, body = split_front_matter(text, path, warnings)
    if meta is None:
        warnings.add(path, "agent skipped: its front matter cannot be read")
        return None
    name = str_field(meta, "name", path, warnings) or path.stem
    if not AGENT_NAME.match(name):
        warnings.add(
            path, f"agent skipped: {name!r} is not a role name (a-z, 0-9, - and _)", "name"
        )
        return None
    if name in BUILT_IN_ROLES:
        warnings.add(path, f"agent skipped: {name!r} is a built-in role", "name")
        return None
    description = str_field(meta, "description", path, warnings, limit=1024)
    if not description:
        warnings.add(path, "agent skipped: a description is required", "description")
        return None
    listed = name_list(meta, "tools", path, warnings)
    if listed is None:
        tools = [t for t in KCODE_TOOLS]
    else:
        tools = map_tools(listed, path, warnings)
        if not tools:
            warnings.add(path, "agent skipped: none of its tools exists in kcode", "tools")
            return None
    model = str_field(meta, "model", path, warnings)
    if model and (model.lower() in INHERIT_MODELS or model.lower().startswith("claude-")):
        model = None
    return AgentDef(
        name=name,
        description=description,
        prompt=body.strip() + "\n",
        tools=tuple(tools),
        path=path,
        scope=source.scope,
        model=model or None,
        max_turns=_max_turns(meta, path, warnings),
    )


def _max_turns(meta: dict[str, object], path: Path, warnings: Warnings) -> int | None:
    value = meta.get("max_turns", meta.get("max_steps"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        warnings.add(path, f"must be a whole number from 1 to 1000, not {value!r}", "maxTurns")
        return None
    return value


def agents_listing(agents: dict[str, AgentDef]) -> str:
    if not agents:
        return ""
    lines = [
        "\n\n# Custom sub-agent roles\nBesides search, edit, test and general, spawn_agents "
        "accepts these roles:\n"
    ]
    for name, agent in sorted(agents.items()):
        lines.append(f"- {name}: {' '.join(agent.description.split())} "
                     f"(tools: {', '.join(agent.tools)})\n")  # fmt: skip
    return "".join(lines)
