"""spawn_agents: fan work out to parallel sub-agents (SPEC §5, §6). The work is in agents/orchestrator."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kcode.messages import ToolResult
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError


class SubAgentTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(
        description="search: read-only lookup; edit: change files; test: run tests; general: all; "
        "or a custom role listed in the system prompt."
    )
    prompt: str = Field(description="The whole task, with every fact, path and name it needs.")


class SpawnAgentsArgs(ToolArgs):
    tasks: list[SubAgentTask] = Field(description="One entry per sub-agent; they run concurrently.")


class SpawnAgentsTool(Tool[SpawnAgentsArgs]):
    name = "spawn_agents"
    description = (
        "Run independent tasks as parallel sub-agents and get each one's report, files changed and "
        "stats. Sub-agents see only their prompt: include paths, names and conventions. Edit agents "
        "work on isolated copies merged back; conflicts are reported. Use for independent searches, "
        "edits to different places, tests; not for one small sequential job."
    )
    args_model = SpawnAgentsArgs

    def written_paths(self, args: SpawnAgentsArgs) -> list[str]:
        return []  # unknown: sub-agents may write anywhere, so this call runs alone

    async def run(self, args: SpawnAgentsArgs, ctx: ToolContext) -> ToolResult:
        from kcode.agents.orchestrator import Orchestrator
        from kcode.agents.subtasks import SubTask

        spawner = ctx.spawner
        if not isinstance(spawner, Orchestrator):
            raise ToolError(
                "spawn_agents is not available here: sub-agents cannot spawn further agents. "
                "Do this part of the work yourself."
            )
        tasks = [SubTask(t.role, t.prompt) for t in args.tasks]
        return await spawner.run(tasks, ctx)
