"""Walk a bash command line with a real grammar (bashlex) into the simple commands it runs.

Used by kcode.safety.rules. Every simple command in lists, pipelines, compound commands, functions,
command and process substitutions is reported; wrappers (`env`, `nice`, `sudo`, `sh -c`, ...)
are unwrapped; anything whose command cannot be known statically is reported as `unknown`, which
the rules turn into "ask". This is best effort: the sandbox, not this parser, is the boundary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


class Unparseable(ValueError):
    """A shell command whose parts cannot be known for sure."""


@dataclass
class Simple:
    """One simple command: its words (quotes removed) and whether an allow rule may match it."""

    words: list[str]
    literal: bool = True  # no expansion, assignment prefix or dangerous option anywhere
    why: str = ""  # why it is not literal

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass
class Walk:
    commands: list[Simple] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)  # redirect targets: checked as edits
    named: list[str] = field(default_factory=list)  # paths write commands name: deny/ask only
    unknown: list[str] = field(default_factory=list)  # reasons a part cannot be checked


_SHELLS = {"bash", "sh", "zsh", "dash", "ksh", "fish"}
_UNKNOWABLE = {"eval", "source", ".", "alias", "shopt", "enable", "trap"}
_INTERPRETERS = _SHELLS | {"python", "python3", "perl", "ruby", "node", "php", "lua", "awk"}
_WRITERS = {"rm", "mv", "cp", "tee", "truncate", "touch", "chmod", "chown", "ln", "mkdir",
            "rmdir", "install", "shred", "unlink", "rsync", "dd", "sed", "patch"}  # fmt: skip
_MAX_DEPTH = 8


def _parse(command: str) -> Any:
    # Imported on first use: bashlex builds its parser tables at import (~0.1 s), which every
    # `kcode -p` would otherwise pay before its first request, shell command or not.
    import bashlex  # type: ignore[import-untyped]

    return bashlex.parse(command)


def walk_command(command: str, depth: int = 0) -> Walk:
    if depth > _MAX_DEPTH:
        raise Unparseable("nested too deeply")
    _reject_ansi_c(command)
    try:
        trees = _parse(command)
    except Exception as err:  # bashlex raises ParsingError, NotImplementedError, ...
        trees = _parse_rewritten(command, err)
    out = Walk()
    for tree in trees:
        _node(tree, out, depth)
    return out


def _parse_rewritten(command: str, err: Exception) -> Any:
    """bashlex lacks `[[ ]]`, `case` and `time`: parse a rewrite that keeps every command
    (kcode/safety/shell_rewrite.py), or give up (Unparseable: the rules ask)."""
    from kcode.safety.shell_rewrite import rewrite_unsupported

    rewritten = rewrite_unsupported(command)
    if rewritten is None or rewritten == command:
        raise Unparseable(f"bash grammar: {err}")
    try:
        return _parse(rewritten)
    except Exception:
        raise Unparseable(f"bash grammar: {err}") from None


def _reject_ansi_c(command: str) -> None:
    """bashlex does not understand $'...' / $"..." quoting, so it could mis-split around them."""
    quote = ""
    i = 0
    while i < len(command):
        ch = command[i]
        if quote == "'":
            quote = "" if ch == "'" else quote
        elif ch == "\\":
            i += 1
        elif quote == '"':
            quote = "" if ch == '"' else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "$" and command[i + 1 : i + 2] in ("'", '"'):
            raise Unparseable("$'...' quoting is not checked")
        i += 1


def _node(node: Any, out: Walk, depth: int) -> None:
    kind = node.kind
    if kind == "command":
        _simple(node, out, depth)
        return
    if kind == "redirect":
        _redirect(node, out, depth)
        return
    if kind in ("commandsubstitution", "processsubstitution"):
        _node(node.command, out, depth)
        return
    if kind == "heredoc":
        return
    for attr in ("parts", "list", "redirects"):
        for child in getattr(node, attr, None) or []:
            _node(child, out, depth)
    if kind == "pipeline":
        _pipeline_into_interpreter(node, out)


def _pipeline_into_interpreter(node: Any, out: Walk) -> None:
    commands = [p for p in node.parts if p.kind == "command"]
    for cmd in commands[1:]:
        words = [p.word for p in cmd.parts if p.kind == "word"]
        for _ in range(_MAX_DEPTH):
            if not words:
                break
            words = [os.path.basename(words[0]), *words[1:]]
            if words[0] in _INTERPRETERS:
                out.unknown.append(f"text piped into {words[0]} runs as a program")
                break
            inner = _unwrap(words)
            if not isinstance(inner, list):
                break
            words = inner


def _has_expansion(word: Any) -> bool:
    return any(p.kind in ("parameter", "commandsubstitution", "processsubstitution", "tilde")
               for p in getattr(word, "parts", None) or [])  # fmt: skip


def _children(node: Any, out: Walk, depth: int) -> None:
    for part in getattr(node, "parts", None) or []:
        if part.kind in ("commandsubstitution", "processsubstitution"):
            _node(part.command, out, depth)
        else:
            _children(part, out, depth)


def _redirect(node: Any, out: Walk, depth: int) -> None:
    target = node.output
    if node.type == "<<" or node.type == "<<-":
        return
    if isinstance(target, int) or target is None:
        return
    _children(target, out, depth)
    if ">" in node.type and target.word not in ("/dev/null", "-"):
        if _has_expansion(target):
            out.unknown.append(f"the redirect target {target.word!r} is not literal")
        out.writes.append(target.word)


def _simple(node: Any, out: Walk, depth: int) -> None:
    words: list[Any] = []
    assigned = stdin = False
    for part in node.parts:
        if part.kind == "assignment":
            assigned = True
            _children(part, out, depth)
        elif part.kind == "word":
            words.append(part)
            _children(part, out, depth)
        elif part.kind == "redirect":
            _redirect(part, out, depth)
            stdin = stdin or part.type in ("<<", "<<-", "<<<", "<")
    if not words:
        return
    head = words[0].word
    if stdin and os.path.basename(head) in _INTERPRETERS:
        out.unknown.append(f"input fed to {head} runs as a program")
    if _has_expansion(words[0]) or any(c in head for c in "{}*?[]$`") or "\n" in head:
        out.unknown.append(f"the command name {head!r} is not known before it runs")
        return
    texts = [w.word for w in words]
    literal = not assigned and not any(_has_expansion(w) for w in words)
    why = "" if literal else "an argument or environment prefix is expanded at run time"
    _add(texts, literal, why, out, depth)


def _add(texts: list[str], literal: bool, why: str, out: Walk, depth: int) -> None:
    texts = [os.path.basename(texts[0]) or texts[0], *texts[1:]]
    danger = dangerous_option(texts)
    if danger:
        literal, why = False, danger
    out.commands.append(Simple(texts, literal, why))
    _writes_of(texts, out)
    name = texts[0]
    if name in _UNKNOWABLE:
        out.unknown.append(f"{name} runs text that is not known in advance")
        return
    inner = _unwrap(texts)
    if inner is None:
        return
    if inner == "__opaque__":
        out.unknown.append(f"{name} runs a command that is not checked")
        return
    if isinstance(inner, str):
        try:
            sub = walk_command(inner, depth + 1)
        except Unparseable as err:
            out.unknown.append(f"{name} -c: {err}")
            return
        out.commands += sub.commands
        out.writes += sub.writes
        out.named += sub.named
        out.unknown += sub.unknown
        return
    if inner:
        if any(c in inner[0] for c in "{}*?[]$`"):
            out.unknown.append(f"{name} runs {inner[0]!r}, not known before it runs")
            return
        _add(inner, literal, why, out, depth)


_OPTS_WITH_VALUE = {
    "env": {"-u", "--unset", "-C", "--chdir", "-S", "--split-string"},
    "nice": {"-n", "--adjustment"},
    "timeout": {"-s", "--signal", "-k", "--kill-after"},
    "stdbuf": {"-i", "-o", "-e"},
    "sudo": {"-u", "-g", "-C", "-h", "-p", "-U", "-r", "-t", "-D"},
    "xargs": {"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter"},
    "ionice": {"-c", "-n", "-p"},
    "chrt": {"-p"},
    "taskset": set(),
}
_WRAPPERS = {"env", "nice", "nohup", "setsid", "timeout", "stdbuf", "xargs", "command", "builtin",
             "sudo", "doas", "time", "busybox", "ionice", "chrt", "taskset", "unbuffer", "flock",
             "watch", "strace", "ltrace", "firejail", "chroot", "su", "script",
             "nsenter", "unshare", "exec"}  # fmt: skip


def _unwrap(words: list[str]) -> list[str] | str | None:
    """The command a wrapper runs: words, a string to parse (`sh -c`), or None (not a wrapper)."""
    name = words[0]
    if name in _SHELLS:
        for i, w in enumerate(words[1:], 1):
            if w.startswith("-") and not w.startswith("--") and "c" in w:
                if i + 1 >= len(words):
                    raise Unparseable(f"{name} -c without a command")
                return words[i + 1]
        if len(words) == 1 or all(w.startswith("-") for w in words[1:]):
            return None  # reads stdin: caught as "piped into a shell" or harmless
        return None  # `sh script.sh`: runs a file, checked as `sh script.sh`
    if name not in _WRAPPERS:
        return None
    if name in ("su", "script", "watch", "flock", "chroot", "nsenter", "unshare", "firejail"):
        return "__opaque__" if len(words) > 1 else None
    rest = words[1:]
    with_value = _OPTS_WITH_VALUE.get(name, set())
    while rest:
        w = rest[0]
        if w == "--":
            rest = rest[1:]
            break
        if name == "env" and w in ("-S", "--split-string"):
            return " ".join(rest[1:])
        if w.startswith("-") and w != "-":
            rest = rest[2:] if w in with_value else rest[1:]
        elif name == "env" and "=" in w:
            rest = rest[1:]
        else:
            break
    if name == "timeout" and rest:
        rest = rest[1:]
    if name == "taskset" and rest:
        rest = rest[1:]
    return rest


_GIT_DANGER = ("-c", "-x", "-O", "--output", "--exec", "--upload-pack", "--receive-pack",
               "--extcmd", "--open-files-in-pager", "--config-env", "--ext-diff", "--tool",
               "--ext", "--paginate")  # fmt: skip


def dangerous_option(words: list[str]) -> str:
    """Options that turn an otherwise read-only command into one that runs or writes things."""
    name, args = words[0], words[1:]
    if name == "git":
        for a in args:
            if a.startswith(_GIT_DANGER):
                return f"git option {a} runs or writes things"
        if "difftool" in args or "mergetool" in args:
            return "git difftool/mergetool runs a tool"
    if name == "find":
        for a in args:
            if a in ("-exec", "-execdir", "-ok", "-okdir", "-delete") or a.startswith("-fprint"):
                return f"find {a} runs or writes things"
            if a == "-fls":
                return "find -fls writes a file"
    return ""


def _writes_of(words: list[str], out: Walk) -> None:
    """Paths an obvious write command names (best effort, for edit deny rules)."""
    name = words[0]
    if name not in _WRITERS:
        return
    if name == "sed" and not any(w.startswith("-i") or w == "--in-place" for w in words[1:]):
        return
    for w in words[1:]:
        if name == "dd" and w.startswith("of="):
            out.named.append(w[3:])
        elif not w.startswith("-") and w:
            out.named.append(w)
