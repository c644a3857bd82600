"""Allow / ask / deny rules from the config, and the shell-command splitter they need.

A rule is `kind(pattern)`: `shell(git diff*)` matches a shell command, `edit(src/**)` a file a tool
would write, `read(.env)` a file read_file/grep would read. A bare `shell` or `edit` matches all.
Deny beats ask beats allow. A compound shell command (`&&`, `||`, `;`, `|`, `&`, `$(...)`, backticks,
subshells, `bash -c '...'`) is split into its simple commands and every one is checked; a redirect's
target is checked as an edit. What cannot be parsed is never allowed by a rule: it is asked.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["allow", "ask", "deny"]
RuleKind = Literal["shell", "edit", "read"]
KIND_ALIASES: dict[str, RuleKind] = {
    "shell": "shell",
    "bash": "shell",
    "edit": "edit",
    "write": "edit",
    "read": "read",
}
_RULE = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)
# Words that run their argument as a command: checked as the command they run.
_WRAPPERS = {
    "sudo",
    "env",
    "nice",
    "nohup",
    "time",
    "timeout",
    "xargs",
    "command",
    "builtin",
    "exec",
}
_SHELLS = {"bash", "sh", "zsh", "dash"}


class RuleError(ValueError):
    pass


class Unparseable(ValueError):
    """A shell command whose parts cannot be known for sure."""


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


def parse_rule(text: str, verdict: Verdict, source: str = "") -> Rule:
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
            commands, writes = split_command(command)
        except Unparseable as err:
            return "ask", f"the command cannot be checked part by part ({err})"
        found = [(self.first("shell", c), c) for c in commands]
        found += [(self.first("edit", w), f"> {w}") for w in writes]
        return _combine(found)

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


# ----- shell splitting -----------------------------------------------------------------------

_OPERATORS = ("&&", "||", ";;", "|&", ";", "|", "&", "\n", "(", ")", "{", "}")


def split_command(command: str, depth: int = 0) -> tuple[list[str], list[str]]:
    """Simple commands (normalised words) and redirect targets of a command line."""
    if depth > 8:
        raise Unparseable("nested too deeply")
    segments, inner = _scan(command)
    commands: list[str] = []
    writes: list[str] = []
    for text in inner:
        sub_commands, sub_writes = split_command(text, depth + 1)
        commands += sub_commands
        writes += sub_writes
    for segment in segments:
        words, targets = _words(segment)
        writes += targets
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]  # leading VAR=value assignments
        if not words:
            continue
        if words[0].startswith("$"):
            raise Unparseable(f"the command name {words[0]!r} is a variable")
        if words[0] in ("eval", "source", "."):
            raise Unparseable(f"{words[0]} runs text that is not known in advance")
        commands.append(" ".join(words))
        commands += _wrapped(words, depth)
    return commands, writes


def _wrapped(words: list[str], depth: int) -> list[str]:
    """Commands run by `bash -c '...'`, `sudo cmd`, `xargs cmd`: checked as themselves too."""
    name = words[0].rsplit("/", 1)[-1]
    if name in _SHELLS and "-c" in words:
        at = words.index("-c")
        if at + 1 >= len(words):
            raise Unparseable(f"{name} -c without a command")
        return split_command(words[at + 1], depth + 1)[0]
    if name in _WRAPPERS:
        rest = list(words[1:])
        while rest and (rest[0].startswith("-") or "=" in rest[0]):
            rest = rest[1:]  # the wrapper's own options, e.g. `sudo -u x`, `env A=1`
        if name == "timeout" and rest:
            rest = rest[1:]
        return [" ".join(rest)] if rest else []
    return []


def _scan(command: str) -> tuple[list[str], list[str]]:
    """Split at operators outside quotes; pull out $(...), `...`, <(...) bodies as inner commands."""
    segments: list[str] = []
    inner: list[str] = []
    current: list[str] = []
    i, n = 0, len(command)
    quote = ""
    while i < n:
        ch = command[i]
        if quote == "'":
            current.append(ch)
            if ch == "'":
                quote = ""
            i += 1
            continue
        if ch == "\\":
            current.append(command[i : i + 2])
            i += 2
            continue
        if ch in "$<>" and command.startswith("(", i + 1) and not command.startswith("((", i + 1):
            end = _matching_paren(command, i + 1)
            inner.append(command[i + 2 : end])
            current.append(" __SUBST__ ")
            i = end + 1
            continue
        if ch == "`":
            end = command.find("`", i + 1)
            while end != -1 and command[end - 1] == "\\":
                end = command.find("`", end + 1)
            if end == -1:
                raise Unparseable("unterminated backtick")
            inner.append(command[i + 1 : end])
            current.append(" __SUBST__ ")
            i = end + 1
            continue
        if quote == '"':
            current.append(ch)
            if ch == '"':
                quote = ""
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            current.append(ch)
            i += 1
            continue
        if command.startswith("<<", i) and not command.startswith("<<<", i):
            raise Unparseable("here-documents are not checked")
        if ch == "#" and (not current or current[-1] in " \t\n"):
            while i < n and command[i] != "\n":
                i += 1
            continue
        op = next((o for o in _OPERATORS if command.startswith(o, i)), None)
        # `>&` / `&>` / `2>&1` are redirects, not the background operator.
        if op == "&" and (command[i - 1 : i] in ("<", ">") or command.startswith("&>", i)):
            op = None
        if op in ("{", "}") and not _stands_alone(command, i):
            op = None
        if op is not None:
            segments.append("".join(current))
            current = []
            i += len(op)
            continue
        current.append(ch)
        i += 1
    if quote:
        raise Unparseable(f"unterminated {quote} quote")
    segments.append("".join(current))
    return [s for s in segments if s.strip()], inner


def _stands_alone(command: str, i: int) -> bool:
    before = command[i - 1] if i > 0 else " "
    after = command[i + 1] if i + 1 < len(command) else " "
    return before in " \t\n;&|(" and after in " \t\n;&|)"


def _matching_paren(command: str, start: int) -> int:
    depth = 0
    quote = ""
    i = start
    while i < len(command):
        ch = command[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"":
            quote = ch
        elif ch == "\\":
            i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise Unparseable("unbalanced $( ... )")


def _tokens(segment: str) -> list[str]:
    lexer = shlex.shlex(segment, posix=True, punctuation_chars="<>&")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as err:
        raise Unparseable(str(err)) from None


def _words(segment: str) -> tuple[list[str], list[str]]:
    raw = _tokens(segment)
    words: list[str] = []
    writes: list[str] = []
    i = 0
    while i < len(raw):
        token = raw[i]
        if token and set(token) <= set("<>&"):
            if words and words[-1].isdigit():
                words.pop()  # the fd number of `2>`
            target = raw[i + 1] if i + 1 < len(raw) else ""
            if not target:
                raise Unparseable(f"the redirect {token!r} has no target")
            if ">" in token and not target.isdigit() and target not in ("-", "/dev/null"):
                writes.append(target)
            i += 2
            continue
        words.append(token)
        i += 1
    return words, writes
