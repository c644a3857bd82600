"""Who may do what: approval policies and the Approver protocol.

The core never asks a human itself. Tools describe the action they are about to take as an
`ApprovalRequest`; the injected `Approver` answers. The non-interactive approver never waits: an action its
policy does not grant raises `ApprovalRequired`, which ends the run with exit 4 and names the flag.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

# Defined once, with the other sets of choices; re-exported for the approval code's callers.
from kcode.config.schema import APPROVAL_MODES as APPROVAL_MODES
from kcode.config.schema import ApprovalMode as ApprovalMode

if TYPE_CHECKING:
    from kcode.safety.rules import RuleSet

Action = Literal["edit", "shell", "mcp"]  # mcp: a tool of an MCP server (kcode.mcp)

# plan (kcode.extensions.plan): read tools only, like read-only; the turn ends with a plan.
READ_ONLY_MODES = ("read-only", "plan")


@dataclass(frozen=True)
class ApprovalRequest:
    action: Action
    tool: str
    summary: str  # one line: the command, or "edit src/app.py"
    detail: str = ""  # the diff or the full command
    # Actions a project's own test runner performs are treated as safe under auto-edit (see README).
    trusted_test_run: bool = False
    # Workspace-relative paths an edit writes, for edit(...) rules; empty = read from `summary`.
    paths: tuple[str, ...] = ()
    # The tool call asking (filled by ToolContext.approve): a front end pairs the prompt with the call.
    call_id: str = ""


@dataclass(frozen=True)
class ApprovalDecision:
    allowed: bool
    reason: str = ""
    remember: bool = False  # "always for this session"


# How an action reads in "`shell` needs approval to run a command: ..." (not "to shell:").
ACTION_WORDS = {"shell": "run a command", "edit": "change files"}


class ApprovalRequired(Exception):
    """The non-interactive policy does not grant an action. Ends the run with exit code 4."""

    def __init__(self, request: ApprovalRequest, flag: str) -> None:
        self.request = request
        self.flag = flag
        super().__init__(
            f"`{request.tool}` needs approval to {ACTION_WORDS.get(request.action, request.action)}"
            f": {request.summary}. "
            f"The approval policy does not allow it without asking; rerun with {flag} to allow it."
        )


class Approver(Protocol):
    async def decide(self, request: ApprovalRequest) -> ApprovalDecision: ...


def policy_verdict(mode: ApprovalMode, request: ApprovalRequest) -> Literal["allow", "ask", "deny"]:
    """What a mode says about an action before any human is involved."""
    if mode == "auto":
        return "allow"
    if mode in READ_ONLY_MODES:
        return "deny"
    if mode == "auto-edit":
        if request.action == "edit" or request.trusted_test_run:
            return "allow"
        return "ask"
    return "ask"


def rules_verdict(
    rules: RuleSet | None, request: ApprovalRequest
) -> tuple[Literal["allow", "ask", "deny"] | None, str]:
    """What the configured rules say (deny beats ask beats allow); None = the mode decides."""
    if rules is None or not rules.rules:
        return None, ""
    if request.action == "shell":
        return rules.shell_verdict(request.detail or request.summary)
    if request.action == "mcp":
        return rules.tool_verdict(request.tool, request.detail)
    paths = list(request.paths)
    if not paths and request.summary.startswith("edit "):
        paths = [p.strip() for p in request.summary[5:].split(",")]
    if not paths:
        # Unknown paths cannot be matched against edit rules, so they cannot pass an ask/deny.
        return ("ask", "the files of this edit are not known") if rules.has("edit") else (None, "")
    return rules.paths_verdict("edit", paths)


def combined_verdict(
    mode: ApprovalMode, rules: RuleSet | None, request: ApprovalRequest
) -> tuple[Literal["allow", "ask", "deny"], str]:
    verdict, why = rules_verdict(rules, request)
    if verdict == "deny" or mode in READ_ONLY_MODES:
        return "deny", why or f"approval mode is {mode}"
    if verdict is not None:
        return verdict, why
    return policy_verdict(mode, request), ""


def flag_that_allows(request: ApprovalRequest) -> str:
    if request.action == "mcp":
        return f'--approval auto (or an allow rule "{request.tool}" in your config)'
    return "--approval auto-edit" if request.action == "edit" else "--approval auto"


class NonInteractiveApprover:
    """CI policy: allow what the mode allows; anything else stops the run (never hangs, never skips)."""

    def __init__(self, mode: ApprovalMode, rules: RuleSet | None = None) -> None:
        self.mode = mode
        self.rules = rules

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        verdict, why = combined_verdict(self.mode, self.rules, request)
        if verdict == "allow":
            return ApprovalDecision(True, why or f"allowed by --approval {self.mode}")
        if verdict == "deny" and why and self.mode != "read-only":
            return ApprovalDecision(False, f"denied: {why}")  # the model hears it and adapts
        flag = flag_that_allows(request)
        if why:
            flag = f"{flag} and an allow rule ({why})"
        raise ApprovalRequired(request, flag)


AskHuman = Callable[[ApprovalRequest], Awaitable[ApprovalDecision]]


class InteractiveApprover:
    """REPL policy: allow what the mode allows, ask the human for the rest, remember 'always'."""

    def __init__(self, mode: ApprovalMode, ask: AskHuman, rules: RuleSet | None = None) -> None:
        self.mode: ApprovalMode = mode
        self._ask = ask
        self._always: set[tuple[str, str]] = set()
        self.rules = rules

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        verdict, why = combined_verdict(self.mode, self.rules, request)
        if verdict == "allow":
            return ApprovalDecision(True, why or f"allowed by approval mode {self.mode}")
        if verdict == "deny":
            if why and self.mode != "read-only":
                return ApprovalDecision(False, f"denied: {why}")
            return ApprovalDecision(
                False, f"approval mode is {self.mode}; switch with /approval to allow this"
            )
        if why:  # an ask rule or an unparseable command: never remembered as "always"
            return await self._ask(request)
        # Shell: the exact command; MCP: the tool ("call mcp__srv__tool"); edits: all of them.
        key = (request.action, "*" if request.action == "edit" else request.summary)
        if key in self._always:
            return ApprovalDecision(True, "allowed earlier for this session")
        decision = await self._ask(request)
        if decision.allowed and decision.remember:
            self._always.add(key)
        return decision


class AllowAll:
    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(True, "allowed")
