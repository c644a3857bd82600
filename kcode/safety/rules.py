"""Allow / ask / deny rules from the config, checked against a real bash parse of each command.

A rule is `kind(pattern)`: `shell(git diff*)` matches a shell command, `edit(src/**)` a file a tool
would write, `read(.env)` a file read_file/grep would read. A bare `shell` or `edit` matches all.
Deny beats ask beats allow. A command line is parsed with a bash grammar (kcode.safety.shell_parse) and
every simple command in it (lists, pipelines, if/while/for, subshells, functions, `$(...)`,
`<(...)`, `sh -c '...'`, wrappers such as env/nice/sudo/timeout/xargs) is checked; `/bin/rm` is
`rm`. A redirect's target is checked as an edit, and the paths obvious write commands name
(rm, mv, cp, tee, sed -i, ...) are checked against edit deny/ask rules.

An allow rule holds only for a literal command: any expansion (`$x`, `${...}`, `$(...)`), an
environment prefix (`VAR=x cmd`) or a dangerous option of an otherwise safe command (git
`--output`/`-c`/`--exec`/difftool, find `-exec`/`-delete`) voids it. What cannot be known before
it runs (a computed command name, brace expansion, eval/alias, `$'...'`, text piped or fed into a
shell or interpreter, what bashlex cannot parse) is asked, never allowed.

These rules are a convenience, not a security boundary: shell is too expressive for a static check
to be complete. The sandbox (`--sandbox`, kcode.safety.sandbox) is what confines a hostile command.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from kcode.safety.json_input import loads_json
from kcode.safety.shell_parse import Unparseable, walk_command

Verdict = Literal["allow", "ask", "deny"]
RuleKind = Literal["shell", "edit", "read", "mcp"]
KIND_ALIASES: dict[str, RuleKind] = {
    "shell": "shell",
    "bash": "shell",
    "edit": "edit",
    "write": "edit",
    "read": "read",
}
_RULE = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)


class RuleError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    verdict: Verdict
    kind: RuleKind
    pattern: str  # "" matches everything of the kind
    text: str
    source: str = ""

    def matches(self, kind: RuleKind, subject: str) -> bool:
        if kind != self.kind:
            return False
        if not self.pattern:
            return True
        if kind == "shell":
            return fnmatch.fnmatchcase(subject, self.pattern)
        if kind == "mcp":
            return mcp_rule_matches(self.pattern, subject)
        return path_matches(self.pattern, subject)


def path_matches(pattern: str, path: str) -> bool:
    """gitignore-like: `**` spans directories, `*` does not; a pattern without `/` matches any name."""
    path = path.lstrip("./") if path.startswith("./") else path
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    compiled = re.compile(regex + r"(?:/.*)?\Z")
    if "/" not in pattern.rstrip("/"):
        return any(compiled.match(part) for part in _suffixes(path))
    return compiled.match(path.lstrip("/")) is not None


def _suffixes(path: str) -> Iterable[str]:
    parts = path.split("/")
    for i in range(len(parts)):
        yield "/".join(parts[i:])


_MCP_RULE = re.compile(r"^\s*(mcp__[A-Za-z0-9_*?-]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


def mcp_rule_matches(pattern: str, subject: str) -> bool:
    """`mcp__srv__tool`, `mcp__srv__*`, `mcp__srv` (every tool of srv) or `mcp__srv__tool(ARGS)`,
    ARGS a glob over the call's arguments as compact JSON. `subject` is `name\0arguments`."""
    name, _, args = subject.partition("\0")
    match = _MCP_RULE.match(pattern)
    if match is None:
        return False
    name_pattern, args_pattern = match.group(1), match.group(2)
    if "__" not in name_pattern[len("mcp__") :]:  # a whole server, as in Claude's rules
        name_pattern += "__*"
    if not fnmatch.fnmatchcase(name, name_pattern):
        return False
    return args_pattern is None or fnmatch.fnmatchcase(args, args_pattern.strip())


def parse_rule(text: str, verdict: Verdict, source: str = "") -> Rule:
    if text.strip().startswith("mcp__"):
        if _MCP_RULE.match(text) is None:
            raise RuleError(
                f"rule {text!r}{' in ' + source if source else ''} does not parse: write it as "
                "mcp__SERVER__TOOL, mcp__SERVER__* or mcp__SERVER__TOOL(ARGUMENT GLOB)"
            )
        return Rule(verdict, "mcp", text.strip(), text, source)
    match = _RULE.match(text)
    where = f" in {source}" if source else ""
    if not match or match.group(1).lower() not in KIND_ALIASES:
        raise RuleError(
            f"rule {text!r}{where} does not parse: write it as shell(PATTERN), edit(GLOB) or "
            "read(GLOB), e.g. shell(git diff*), edit(src/**), read(.env)"
        )
    pattern = (match.group(2) or "").strip()
    if match.group(2) is not None and not pattern:
        raise RuleError(f"rule {text!r}{where} has an empty pattern; use e.g. shell(git diff*)")
    if pattern.count("(") != pattern.count(")"):
        raise RuleError(f"rule {text!r}{where} has unbalanced parentheses")
    return Rule(verdict, KIND_ALIASES[match.group(1).lower()], pattern, text, source)


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)

    @classmethod
    def parse(cls, lists: dict[str, list[str]], source: str = "") -> RuleSet:
        out = []
        for verdict in ("deny", "ask", "allow"):
            for text in lists.get(verdict, []):
                out.append(parse_rule(text, verdict, source))  # type: ignore[arg-type]
        return cls(out)

    def has(self, kind: RuleKind) -> bool:
        return any(r.kind == kind for r in self.rules)

    def first(self, kind: RuleKind, subject: str) -> Rule | None:
        """The strongest matching rule: deny, then ask, then allow."""
        found = [r for r in self.rules if r.matches(kind, subject)]
        for verdict in ("deny", "ask", "allow"):
            for rule in found:
                if rule.verdict == verdict:
                    return rule
        return None

    def shell_verdict(self, command: str) -> tuple[Verdict | None, str]:
        """(verdict, why) for a whole command line; None = no rule decides, the mode does."""
        if not self.rules:
            return None, ""
        try:
            walk = walk_command(command)
        except Unparseable as err:
            return "ask", f"the command cannot be checked part by part ({err})"
        found: list[tuple[Rule | None, str]] = []
        for simple in walk.commands:
            rule = self.first("shell", simple.text)
            if rule is not None and rule.verdict == "allow" and not simple.literal:
                rule = None  # an allow rule holds only for a literal, harmless command
            found.append((rule, simple.text))
        found += [(self.first("edit", w), f"> {w}") for w in walk.writes]
        for path in walk.named:
            rule = self._first_write(path)
            if rule is not None and rule.verdict != "allow":
                found.append((rule, f"writes {path}"))
        verdict, why = _combine(found)
        if verdict != "deny" and walk.unknown:
            return "ask", f"the command cannot be checked part by part ({walk.unknown[0]})"
        return verdict, why

    def _first_write(self, path: str) -> Rule | None:
        """An edit rule for a path a shell command writes; absolute or ../ paths try every tail."""
        norm = os.path.normpath(path)
        tails = list(_suffixes(norm.lstrip("/")))
        for verdict in ("deny", "ask"):
            for tail in tails:
                rule = self.first("edit", tail)
                if rule is not None and rule.verdict == verdict:
                    return rule
        return None

    def tool_verdict(self, tool: str, arguments_json: str) -> tuple[Verdict | None, str]:
        """An MCP tool call: rules name the tool (`mcp__srv__*`), optionally with an argument glob."""
        if not self.rules:
            return None, ""
        try:
            compact = json.dumps(loads_json(arguments_json or "{}"), separators=(",", ":"))
        except ValueError:  # shortened for display: an argument glob cannot vouch for it
            compact = None
        rule = self.first("mcp", f"{tool}\0{compact or arguments_json}")
        if rule is None:
            return None, ""
        if compact is None and rule.verdict == "allow" and "(" in rule.pattern:
            return "ask", f"the arguments of {tool} are too long to check against {rule.text}"
        return _combine([(rule, tool)])

    def paths_verdict(self, kind: RuleKind, paths: list[str]) -> tuple[Verdict | None, str]:
        if not self.rules:
            return None, ""
        return _combine([(self.first(kind, p), p) for p in paths])


def _combine(found: list[tuple[Rule | None, str]]) -> tuple[Verdict | None, str]:
    for verdict in ("deny", "ask"):
        for rule, part in found:
            if rule is not None and rule.verdict == verdict:
                return rule.verdict, f"{part!r} matches the {verdict} rule {rule.text}{_src(rule)}"
    if found and all(rule is not None for rule, _ in found):
        rules = sorted({rule.text for rule, _ in found if rule is not None})
        return "allow", "allowed by rule " + ", ".join(rules)
    return None, ""


def _src(rule: Rule) -> str:
    return f" ({rule.source})" if rule.source else ""


# ----- shell splitting (the grammar walk lives in kcode.safety.shell_parse) ---------------------------


def split_command(command: str, depth: int = 0) -> tuple[list[str], list[str]]:
    """Simple commands (normalised words) and redirect targets of a command line."""
    walk = walk_command(command, depth)
    if walk.unknown:
        raise Unparseable(walk.unknown[0])
    return [c.text for c in walk.commands], walk.writes
