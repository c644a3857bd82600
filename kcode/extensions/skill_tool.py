"""The `skill` tool: the model loads a listed skill's instructions (kcode.extensions.skills)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from kcode.extensions.skills import Skill, skill_prompt
from kcode.messages import ToolResult
from kcode.tools.args import ToolArgs
from kcode.tools.base import Tool, ToolContext, ToolError, ok


class SkillArgs(ToolArgs):
    name: str = Field(description="The skill's name, as listed under # Skills.")
    arguments: str = Field("", description="Arguments for the skill, if it takes any.")


class SkillTool(Tool[SkillArgs]):
    name = "skill"
    description = (
        "Load a skill listed in the system prompt: returns its instructions (and its directory) "
        "to follow for the current task."
    )
    args_model = SkillArgs
    read_only: ClassVar[bool] = True

    def __init__(self, skills: dict[str, Skill], variables: dict[str, str]) -> None:
        self.skills = skills
        self.variables = variables

    async def run(self, args: SkillArgs, ctx: ToolContext) -> ToolResult:

        skill = self.skills.get(args.name.strip().lstrip("/"))
        if skill is None or not skill.model_invocable:
            names = ", ".join(sorted(n for n, s in self.skills.items() if s.model_invocable))
            raise ToolError(f"no skill named {args.name!r}; available: {names or '(none)'}")
        text = skill_prompt(skill, args.arguments, self.variables)
        return ok(text, {"skill": skill.name, "directory": str(skill.directory)})
