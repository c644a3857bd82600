"""The extensions of one session, and the few calls the agent loop and the front ends make into them.

`load_extensions` reads everything once (hooks, skills, commands, custom agents) with the trust
decision applied; `ExtensionRuntime` sits on the ToolContext (`ctx.extensions`, shared with
sub-agents) and is called by the loop at turn start, around each tool call and when the model stops.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcode.backends.base import ToolSpec
from kcode.events import Error, Event
from kcode.extensions import plan
from kcode.extensions.agents import AgentDef, agents_listing, discover_agents
from kcode.extensions.commands import Command, discover_commands
from kcode.extensions.files import Warnings
from kcode.extensions.hook_config import load_hooks
from kcode.extensions.hooks import HookOutcome, HookRunner, tool_names
from kcode.extensions.skills import Skill, discover_skills, skill_prompt, skills_listing
from kcode.messages import Message, ToolCall, ToolResult
from kcode.safety.approval import ApprovalRequest, ApprovalRequired
from kcode.tools.base import Tool, ToolContext, ToolError, run_tool

if TYPE_CHECKING:
    from kcode.config.loader import Config


@dataclass
class TurnStart:
    """What the loop needs at the start of a turn: the (expanded) message, events to show, and
    a reason to end the turn before the model is asked (a blocking hook, a refused approval)."""

    message: Message
    events: list[Event] = field(default_factory=list)
    stop: str | None = None
    reason: str = "blocked"


def user_config_dir() -> Path:
    from kcode.config.loader import user_config_path

    return user_config_path().parent


def load_extensions(
    root: Path, config: Config, *, interactive: bool, session_id: str = "", transcript: str = ""
) -> ExtensionRuntime:
    from kcode.config.loader import user_config_path
    from kcode.extensions.trust import is_project_trusted

    trusted = is_project_trusted(root, config)
    warnings = Warnings()
    user_dir = user_config_dir()
    home = Path.home()
    specs = load_hooks(root, user_dir, config, str(user_config_path()), warnings, trusted=trusted)
    ext = ExtensionRuntime(
        root=root,
        hooks=HookRunner(specs, session_id=session_id, transcript_path=transcript),
        skills=discover_skills(root, user_dir, home, warnings),
        commands=discover_commands(root, user_dir, warnings, trusted=trusted),
        agents=discover_agents(root, user_dir, warnings, trusted=trusted),
        warnings=warnings.items,
        trusted=trusted,
        interactive=interactive,
        session_id=session_id,
    )
    return ext


@dataclass
class ExtensionRuntime:
    root: Path
    hooks: HookRunner
    skills: dict[str, Skill] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)
    agents: dict[str, AgentDef] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    trusted: bool = False
    interactive: bool = True
    session_id: str = ""
    _session_started: bool = False
    # SessionStart hooks fire between turns (launch, /clear, compaction): what they say waits here
    # for the next turn's message (additionalContext) and events (notices).
    _pending_context: list[str] = field(default_factory=list)
    _pending_events: list[Event] = field(default_factory=list)
    _halts: dict[str, str] = field(default_factory=dict)
    _extra: dict[str, Tool[Any]] | None = None

    # --- what the runtime builds the agent with --------------------------------------------------
    def variables(self) -> dict[str, str]:
        return {
            "CLAUDE_PROJECT_DIR": str(self.root), "KCODE_PROJECT_DIR": str(self.root),
            "CLAUDE_SESSION_ID": self.session_id, "KCODE_SESSION_ID": self.session_id,
        }  # fmt: skip

    def prompt_section(self) -> str:
        """Appended to the main system prompt; sorted, so byte-stable for the session."""
        return skills_listing(self.skills) + agents_listing(self.agents)

    def extra_tools(self) -> dict[str, Tool[Any]]:
        if self._extra is None:
            self._extra = {}
            if any(s.model_invocable for s in self.skills.values()):
                from kcode.extensions.skill_tool import SkillTool

                self._extra["skill"] = SkillTool(self.skills, self.variables())
        return self._extra

    def tools(self, base: Mapping[str, Tool[Any]]) -> Mapping[str, Tool[Any]]:
        """The agent's tool set: `base` plus the extension tools."""
        extra = self.extra_tools()
        if not extra:
            return base
        from kcode.extensions.setup import MergedTools

        return MergedTools(base, extra)

    def specs(self) -> list[ToolSpec]:
        from kcode.tools.registry import tool_specs

        return tool_specs(self.extra_tools())

    def user_command(self, name: str) -> Command | Skill | None:
        """What `/name` runs: a skill wins over a command with the same name (as in Claude)."""
        skill = self.skills.get(name)
        if skill is not None and skill.scope == "project" and not self.trusted:
            # An untrusted repository's skill never shadows the user's own command.
            skill = None if name in self.commands else skill
        if skill is not None and skill.user_invocable:
            return skill
        return self.commands.get(name)

    # --- the loop's calls ------------------------------------------------------------------------
    async def start_turn(self, agent: Any, message: Message) -> TurnStart:
        ctx: ToolContext = agent.ctx
        start = TurnStart(message)
        contexts: list[str] = []
        main = agent.agent_id == "main"
        mode = plan.approval_mode(ctx.approver)
        if main and not self._session_started:  # a front end that did not start the session
            await self.session_start("resume" if len(agent.history) > 1 else "startup", ctx)
        if main:
            contexts += self._pending_context
            start.events += self._pending_events
            self._pending_context, self._pending_events = [], []
        if not main:
            role = agent.stats.role
            got = await self._fire("SubagentStart", {}, ctx, (role,), mode, role)
            contexts += got.context
            start.events += _notices(got, ctx)
        text = message.text
        if main:  # on the prompt as typed: a block stops a `/command` before its !`cmd` runs
            got = await self._fire("UserPromptSubmit", {"prompt": text}, ctx, (), mode)
            start.events += _notices(got, ctx)
            if got.blocked or got.stop:
                why = got.reason or got.stop or "blocked"
                start.stop = f"the prompt was blocked by a UserPromptSubmit hook: {why}"
                return start
            contexts += got.context
        if main and text.startswith("/"):
            try:
                text = await self.expand_user_command(text, ctx)
            except ApprovalRequired as err:
                start.stop, start.reason = str(err), "approval_required"
                return start
        if contexts:
            text += "\n\n[context from hooks]\n" + "\n".join(contexts)
        if main and mode == plan.PLAN_MODE:
            text += plan.PLAN_REMINDER
        if text != message.text:
            start.message = Message.user(text, message.images)
        return start

    async def session_start(self, source: str, ctx: ToolContext) -> None:
        """SessionStart hooks: at launch ("startup", or "resume"; once), after /clear ("clear") and
        after compaction ("compact"), as in Claude. Their additionalContext goes with the next
        message; the REPL shows the extension warnings at that turn too."""
        if source in ("startup", "resume"):
            if self._session_started:
                return
            self._session_started = True
            if self.interactive:
                self._pending_events += [Error(message=w, kind="warning") for w in self.warnings]
        mode = plan.approval_mode(ctx.approver)
        got = await self._fire("SessionStart", {"source": source}, ctx, (source,), mode)
        self._pending_context += got.context
        self._pending_events += _notices(got, ctx)

    async def expand_user_command(self, line: str, ctx: ToolContext) -> str:
        """`/name args` → the skill's or command's prompt; any other text is returned unchanged."""
        from kcode.extensions.expand import expand_dynamic, substitute

        name, _, arguments = line[1:].partition(" ")
        target = self.user_command(name.strip())
        if target is None:
            return line

        async def run(call: ToolCall) -> ToolResult:
            tool_name = call.name
            from kcode.tools.registry import build_tools

            tool = build_tools([tool_name])[tool_name]
            return await self.run_tool(tool, call, ctx)

        if isinstance(target, Skill):
            body = skill_prompt(target, arguments.strip(), self.variables())
        else:
            body = substitute(target.body, arguments.strip(), self.variables(), positional=True)
        # An untrusted repository's skill is text: its !`cmd` lines are not run (as its commands
        # are not loaded at all), or a clone could run commands when the user types its name.
        untrusted = isinstance(target, Skill) and target.scope == "project" and not self.trusted
        return await expand_dynamic(body, run, run_commands=not untrusted)

    async def run_tool(self, tool: Tool[Any], call: ToolCall, ctx: ToolContext) -> ToolResult:
        """run_tool with the plan-mode gate and the Pre/PostToolUse hooks around it; a refused
        non-interactive approval is a Notification (kcode.extensions.notify)."""
        try:
            return await self._run_tool(tool, call, ctx)
        except ApprovalRequired as err:
            from kcode.extensions.notify import notify_refused

            await notify_refused(self, err, ctx)
            raise

    async def _run_tool(self, tool: Tool[Any], call: ToolCall, ctx: ToolContext) -> ToolResult:
        mode = plan.approval_mode(ctx.approver)
        if mode == plan.PLAN_MODE:
            why = plan.gate(call)
            if why is not None:
                return ToolResult(call.id, False, why)
        names = tool_names(call.name)
        notes: list[str] = []
        if self.hooks.matching("PreToolUse", names):
            got = await self._fire("PreToolUse", _tool_fields(call, ctx), ctx, names, mode)
            await _emit_notices(got, ctx)
            if got.stop:  # `continue: false` wins over any decision: nothing runs, the turn ends
                self._note_halt(got, ctx)
                return ToolResult(call.id, False, f"not run: a PreToolUse hook stopped: {got.stop}")
            if got.blocked or got.decision == "deny":
                reason = got.reason or "no reason given"
                return ToolResult(call.id, False, f"blocked by a PreToolUse hook: {reason}")
            if got.decision == "ask":
                try:
                    await ctx.approve(
                        ApprovalRequest(
                            "shell", call.name, f"{call.name}: a hook asks ({got.reason or '?'})",
                            detail=json.dumps(call.arguments, ensure_ascii=False)[:2000],
                        )
                    )  # fmt: skip
                except ToolError as err:
                    return ToolResult(call.id, False, str(err))
            if got.updated_input is not None:
                call = ToolCall(call.id, call.name, _updated(call, got.updated_input, ctx))
            notes += got.context
        result = await run_tool(tool, call, ctx)
        event = "PostToolUse" if result.ok else "PostToolUseFailure"
        if self.hooks.matching(event, names):
            fields = _tool_fields(call, ctx)
            fields["tool_response"] = {"ok": result.ok, "content": result.content[:50_000]}
            if not result.ok:
                fields["error"] = result.content[:2000]
            got = await self._fire(event, fields, ctx, names, mode)
            await _emit_notices(got, ctx)
            if got.blocked and got.reason:
                notes.append(f"{event} hook: {got.reason}")
            notes += got.context
            self._note_halt(got, ctx)
        if notes:
            extra = "\n".join(f"[hook] {n}" for n in notes)
            result = ToolResult(result.call_id, result.ok, f"{result.content}\n\n{extra}",
                                result.data, result.images)  # fmt: skip
        return result

    def take_halt(self, agent_id: str) -> str | None:
        """A `continue: false` from a tool hook: the loop ends this agent's turn."""
        return self._halts.pop(agent_id, None)

    async def on_stop(self, agent: Any, text: str, active: bool) -> str | None:
        """Stop / SubagentStop hooks; a block returns the message that makes the model go on."""
        ctx: ToolContext = agent.ctx
        main = agent.agent_id == "main"
        event = "Stop" if main else "SubagentStop"
        role = agent.stats.role
        fields = {"stop_hook_active": active, "last_assistant_message": text[:20_000]}
        got = await self._fire(event, fields, ctx, () if main else (role,),
                               plan.approval_mode(ctx.approver), role)  # fmt: skip
        await _emit_notices(got, ctx)
        if got.blocked and not got.stop:
            return f"[kcode: a {event} hook asks you to continue] {got.reason}"
        return None

    async def pre_compact(
        self, trigger: str, ctx: ToolContext, instructions: str = ""
    ) -> str | None:
        """PreCompact hooks (`trigger` manual or auto; `custom_instructions`: what followed
        `/compact`, as in Claude); returns why compaction is blocked, or None."""
        fields = {"trigger": trigger, "custom_instructions": instructions}
        got = await self._fire(
            "PreCompact", fields, ctx, (trigger,), plan.approval_mode(ctx.approver)
        )
        return (got.reason or "blocked by a PreCompact hook") if got.blocked else None

    async def notify(self, message: str, kind: str, ctx: ToolContext) -> None:
        fields = {"message": message, "title": "kcode", "notification_type": kind}
        await self._fire("Notification", fields, ctx, (kind,), plan.approval_mode(ctx.approver))

    async def session_end(self, reason: str, ctx: ToolContext) -> None:
        await self._fire("SessionEnd", {"reason": reason}, ctx, (reason,), "")

    # --- helpers ---------------------------------------------------------------------------------
    async def _fire(
        self, event: str, fields: dict[str, Any], ctx: ToolContext, names: tuple[str, ...],
        mode: str, role: str = "main",
    ) -> HookOutcome:  # fmt: skip
        if not self.hooks.has(event):
            return HookOutcome()
        if role == "main" and ctx.agent_id != "main":
            role = ctx.agent_id.rsplit("-", 1)[0]  # the orchestrator names agents ROLE-N
        return await self.hooks.fire(
            event, fields, cwd=ctx.root, names=names, mode=mode,
            agent_id=ctx.agent_id, agent_type=role,
        )  # fmt: skip

    def _note_halt(self, got: HookOutcome, ctx: ToolContext) -> None:
        if got.stop:
            self._halts[ctx.agent_id] = got.stop


def _tool_fields(call: ToolCall, ctx: ToolContext) -> dict[str, Any]:
    tool_input = dict(call.arguments)
    path = tool_input.get("path")
    if isinstance(path, str) and path and "file_path" not in tool_input:
        # Claude's file tools call it file_path (absolute): guard hooks written for Claude read it.
        tool_input["file_path"] = os.path.normpath(os.path.join(ctx.root, path))
    return {"tool_name": call.name, "tool_input": tool_input, "tool_use_id": call.id}


def _updated(call: ToolCall, updated: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    out = dict(updated)
    shown = _tool_fields(call, ctx)["tool_input"].get("file_path")
    file_path = out.pop("file_path", None)
    if isinstance(file_path, str) and file_path != shown and "path" in call.arguments:
        out["path"] = file_path  # the hook moved the write: confinement still applies in the tool
    return out


def _notices(got: HookOutcome, ctx: ToolContext) -> list[Event]:
    return [Error(agent=ctx.agent_id, message=n, kind="hook") for n in got.notices]


async def _emit_notices(got: HookOutcome, ctx: ToolContext) -> None:
    for event in _notices(got, ctx):
        await ctx.emit(event)
