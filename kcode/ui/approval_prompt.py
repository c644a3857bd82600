"""Asking the human: show exactly what will run or change, then yes / no / always / tell the model why.

"Always for this project" rules are NOT written into the repository's `.kcode/config.toml`: a repo's
config is untrusted (anyone can commit one), so an allow rule there would let a cloned repo approve its
own commands. They are saved in the user's data dir instead, keyed by the project's path:
`$XDG_DATA_HOME/kcode/projects/<sha256(path)[:16]>/rules.toml` (see README).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.text import Text

from kcode.config.loader import data_dir
from kcode.safety.approval import ApprovalDecision, ApprovalRequest
from kcode.safety.json_input import loads_toml
from kcode.safety.terminal_text import visible
from kcode.ui.render import diff_text

ReadChoice = Callable[[str], Awaitable[str]]

CHOICES = "[y] yes  [n] no  [a] always (this session)  [p] always (this project)  [t] no, tell why"
PROMPT = "Allow? [y/n/a/p/t] "


def project_rules_path(root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode("utf-8")).hexdigest()[:16]
    return data_dir() / "projects" / key / "rules.toml"


@dataclass(frozen=True)
class AllowRule:
    action: str
    pattern: str  # the exact shell command, or "*" for every edit in the project

    def matches(self, request: ApprovalRequest) -> bool:
        if self.action != request.action:
            return False
        return self.pattern == "*" or self.pattern == request.summary


def rule_for(request: ApprovalRequest) -> AllowRule:
    # Edits are allowed project-wide; shell commands only verbatim (a prefix rule would let
    # `pytest; rm -rf ~` through on the strength of `pytest`).
    return AllowRule(request.action, "*" if request.action == "edit" else request.summary)


class ProjectRules:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = project_rules_path(root)
        self.rules: list[AllowRule] = self._load()

    def _load(self) -> list[AllowRule]:
        try:
            data = loads_toml(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            return []
        out = []
        for item in data.get("allow", []):
            if isinstance(item, dict) and "action" in item and "pattern" in item:
                out.append(AllowRule(str(item["action"]), str(item["pattern"])))
        return out

    def allows(self, request: ApprovalRequest) -> bool:
        return any(rule.matches(request) for rule in self.rules)

    def add(self, rule: AllowRule) -> None:
        if rule in self.rules:
            return
        self.rules.append(rule)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lines = [f"# kcode allow rules for {self.root} (edit or delete freely)"]
        lines.append(f"project = {json.dumps(str(self.root))}")
        for r in self.rules:
            # JSON string escapes are valid TOML basic strings.
            lines += ["", "[[allow]]", f"action = {json.dumps(r.action)}"]
            lines.append(f"pattern = {json.dumps(r.pattern)}")
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def approval_view(request: ApprovalRequest) -> RenderableType:
    """The panel shown before asking: the full command, or the diff that will be applied."""
    from rich.panel import Panel

    # Everything here is untrusted (the model chose it): controls are shown, never obeyed, and the
    # title is a Text so `[bold]` in a file name is not rich markup.
    parts: list[RenderableType] = []
    if request.action == "shell":
        parts.append(Text("$ " + visible(request.detail or request.summary), style="bold"))
        title = Text(f"{visible(request.tool, one_line=True)} wants to run")
    else:
        title = Text(
            f"{visible(request.tool, one_line=True)} wants to "
            f"{visible(request.summary, one_line=True)}"
        )
        if request.paths:
            shown = ", ".join(visible(p, one_line=True) for p in request.paths)
            parts.append(Text(f"files: {shown}", style="bold"))
        parts.append(
            diff_text(request.detail) if request.detail else Text(visible(request.summary))
        )
    return Panel(
        Group(*parts, Text(CHOICES, style="dim")),
        title=title,
        title_align="left",
        border_style="yellow",
    )


class ApprovalAsker:
    """The `ask` callback given to InteractiveApprover. One question at a time."""

    def __init__(
        self,
        console: Console,
        rules: ProjectRules,
        read_choice: ReadChoice,
        before_ask: Callable[[ApprovalRequest], None] | None = None,
        after_ask: Callable[[ApprovalRequest], None] | None = None,
    ) -> None:
        self.console = console
        self.rules = rules
        self._read = read_choice
        self._before_ask = before_ask
        self._after_ask = after_ask
        self._lock = asyncio.Lock()

    async def __call__(self, request: ApprovalRequest) -> ApprovalDecision:
        if self.rules.allows(request):
            return ApprovalDecision(True, f"allowed by a project rule in {self.rules.path}")
        async with self._lock:
            # before_ask stops every other drawing and key reading, so the question stays the last
            # thing on screen and the answer's keys reach it; after_ask (always) gives them back.
            if self._before_ask is not None:
                self._before_ask(request)
            try:
                self.console.print(approval_view(request))
                while True:
                    answer = (await self._read(PROMPT)).strip().lower()
                    decision = await self._interpret(answer, request)
                    if decision is not None:
                        return decision
                    self.console.print(Text(f"Please answer one of: {CHOICES}", style="yellow"))
            finally:
                if self._after_ask is not None:
                    self._after_ask(request)

    async def _interpret(self, answer: str, request: ApprovalRequest) -> ApprovalDecision | None:
        if answer in ("y", "yes"):
            return ApprovalDecision(True, "approved by the user")
        if answer in ("n", "no"):
            return ApprovalDecision(False, "the user said no")
        if answer in ("a", "always"):
            return ApprovalDecision(True, "approved for this session", remember=True)
        if answer in ("p", "project"):
            self.rules.add(rule_for(request))
            self.console.print(Text(f"Saved an allow rule to {self.rules.path}", style="dim"))
            return ApprovalDecision(True, "approved for this project", remember=True)
        if answer in ("t", "tell"):
            why = (await self._read("Tell the model why (Enter to skip): ")).strip()
            return ApprovalDecision(False, why or "the user said no")
        return None
