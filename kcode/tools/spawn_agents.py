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
    max_tokens: int | None = Field(
        None, gt=0, description="Token budget of this sub-agent (default: a share of the run's)."
    )
    max_cost: float | None = Field(
        None, gt=0, description="Cost budget in USD of this sub-agent (default: a share)."
    )


class SpawnAgentsArgs(ToolArgs):
    tasks: list[SubAgentTask] | None = Field(
        default=None, description="One entry per sub-agent; they run concurrently."
    )
    prompt_template: str | None = Field(
        default=None,
        description="Instead of tasks: one prompt for many agents, with {{item}} where each "
        "item goes (use with items and role).",
    )
    items: list[str] | None = Field(
        default=None, description="With prompt_template: up to 128 distinct items, one agent each."
    )
    role: str | None = Field(
        default=None, description="Role of the items' agents (general, or a custom role)."
    )
    brief: str | None = Field(
        default=None,
        description="Shared brief every sub-agent gets first: interfaces, names, decisions they "
        "must agree on.",
    )
    check: bool = Field(
        default=False,
        description="After merging, run the project's tests and type check once and report "
        "which agents' changes broke them.",
    )


class SpawnAgentsTool(Tool[SpawnAgentsArgs]):
    name = "spawn_agents"
    description = (
        "Run independent tasks as parallel sub-agents and get each one's report, files changed and "
        "stats. Sub-agents see only their prompt (and the brief): include paths, names and "
        "conventions. Edit agents work on isolated copies merged back; conflicts are reported. Use "
        "for independent searches, edits to different places, tests; not for one small sequential "
        "job. Give either tasks or prompt_template + items; results come back in that order."
    )
    args_model = SpawnAgentsArgs

    def written_paths(self, args: SpawnAgentsArgs) -> list[str]:
        return []  # unknown: sub-agents may write anywhere, so this call runs alone

    async def run(self, args: SpawnAgentsArgs, ctx: ToolContext) -> ToolResult:
        from kcode.agents.batch import check_brief, check_duplicates, expand_items
        from kcode.agents.orchestrator import Orchestrator
        from kcode.agents.subtasks import SubTask, validate_tasks

        spawner = ctx.spawner
        if not isinstance(spawner, Orchestrator):
            raise ToolError(
                "spawn_agents is not available here: sub-agents cannot spawn further agents. "
                "Do this part of the work yourself."
            )
        batch = args.prompt_template is not None or args.items is not None
        if batch and args.tasks is not None:
            raise ToolError(
                "spawn_agents: give either tasks or prompt_template + items, not both. "
                "Nothing was run."
            )
        if batch:
            tasks = expand_items(args.prompt_template, args.items, args.role)
            check_duplicates(tasks, "items")
        else:
            if args.role is not None:
                raise ToolError(
                    "spawn_agents: role goes with prompt_template + items; each task has its own "
                    "role. Nothing was run."
                )
            tasks = [SubTask(t.role, t.prompt, t.max_tokens, t.max_cost) for t in args.tasks or []]
            validate_tasks(tasks)
            check_duplicates(tasks, "tasks")
        brief = check_brief(args.brief)
        return await spawner.run(tasks, ctx, brief=brief, check=args.check, ramp=batch)
