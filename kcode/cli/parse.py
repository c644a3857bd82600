"""Reads argv with the one flag table (kcode.cli.flags) and writes each command's `--help`.

One pass, no typer/click: the same parse serves the fast REPL start, `-p`, and every subcommand.
Bad input is one line naming what is wrong and the right form (UsageError, exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcode.cli.flags import (
    BY_PATH,
    CHAT,
    COMMANDS,
    GLOBAL,
    GLOBAL_FLAGS,
    GROUPS,
    Arg,
    Command,
    Flag,
)
from kcode.session_ids import SESSION_ID

PICK = "__pick__"  # `-r` without an id: kcode shows a session picker
HELP = ("-h", "--help")
INT = re.compile(r"-?[0-9]+")
FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class UsageError(Exception):
    """Bad command line: the message says what is wrong and the right form (exit 2)."""

    def __init__(self, message: str, command: Command | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.command = command


@dataclass
class Invocation:
    command: Command
    values: dict[str, Any]  # every dest of the command: given, or its default
    given: set[str] = field(default_factory=set)
    help: bool = False
    group: str | None = None  # `kcode mcp` with no subcommand: its help

    def __getitem__(self, dest: str) -> Any:
        return self.values[dest]


def usage(command: Command) -> str:
    words = [command.title, "[OPTIONS]"]
    for arg in command.args:
        name = f"{arg.name}..." if arg.many else arg.name
        words.append(name if arg.required else f"[{name}]")
    return " ".join(words)


def _known(command: Command | None) -> dict[str, Flag]:
    """Flag names valid at this point: the command's own (they shadow a global of the same name:
    `visual compare --image`), then the globals."""
    table: dict[str, Flag] = {}
    for flag in GLOBAL_FLAGS:
        for name in (*flag.names, *([flag.negation] if flag.negation else [])):
            table[name] = flag
    for flag in command.flags if command else ():
        for name in (*flag.names, *([flag.negation] if flag.negation else [])):
            table[name] = flag
    return table


def _owners(name: str) -> list[Command]:
    return [c for c in COMMANDS for f in c.flags if name in (*f.names, f.negation)]


def _convert(flag: Flag | Arg, value: str, spelled: str) -> Any:
    if flag.kind == "int":
        if not INT.fullmatch(value):
            raise UsageError(f"{spelled} {value!r}: give a whole number, e.g. {spelled} 5")
        return int(value)
    if flag.kind == "float":
        if not FLOAT.fullmatch(value):
            raise UsageError(f"{spelled} {value!r}: give a number, e.g. {spelled} 30")
        return float(value)
    if flag.kind == "path":
        return Path(value)
    choices = flag.choices if isinstance(flag, Flag) else ()
    if choices and value not in choices:
        raise UsageError(f"{spelled} {value!r}: use one of {', '.join(choices)}")
    return value


class _Parser:
    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.command: Command = CHAT
        self.group: str | None = None
        self.values: dict[str, Any] = {}
        self.given: dict[str, str] = {}  # dest -> the spelling used first
        self.before: list[tuple[Flag, str]] = []  # globals given before the command name
        self.words: list[str] = []
        self.chose = False  # the first word was read: the command is fixed
        self.help = False

    def run(self) -> Invocation:
        i, args, rest_only = 0, self.args, False
        while i < len(args):
            token = args[i]
            i += 1
            if rest_only or token == "-" or not token.startswith("-"):
                self._word(token, after_dashes=rest_only)
            elif token == "--":
                rest_only = True
            elif token in HELP:
                self.help = True
            else:
                i = self._flag(token, i)
        return self._finish()

    def _word(self, word: str, *, after_dashes: bool) -> None:
        if self.group is not None and not self.chose:
            command = BY_PATH.get((self.group, word))
            if command is None:
                subs = [c.path[1] for c in COMMANDS if c.path[:1] == (self.group,)]
                raise UsageError(
                    f"kcode {self.group} has no command {word!r}; use one of {', '.join(subs)}"
                )
            self._choose(command)
            return
        if not self.chose and not self.words and not after_dashes:
            if word in GROUPS:
                self.group = word
                return
            if (word,) in BY_PATH:
                self._choose(BY_PATH[(word,)])
                return
        self.chose = True
        self.words.append(word)

    def _choose(self, command: Command) -> None:
        self.command, self.chose = command, True
        for flag, spelled in self.before:  # globals typed before the name must apply to it
            self._applies(flag, spelled)

    def _applies(self, flag: Flag, spelled: str) -> None:
        if flag not in self.command.flags and flag.dest not in self.command.uses:
            raise UsageError(
                f"{spelled} does not apply to {self.command.title} "
                f"(`{self.command.title} --help` lists its flags)",
                self.command,
            )

    def _flag(self, token: str, i: int) -> int:
        name, eq, inline = token.partition("=")
        fixed = self.chose or self.group is not None
        flag = _known(self.command if self.chose else None).get(name)
        if flag is None:
            raise UsageError(self._unknown(name), self.command if fixed else None)
        if self.chose:
            self._applies(flag, name)
        else:
            self.before.append((flag, name))
        if flag.kind == "switch":
            if eq:
                raise UsageError(f"{name} takes no value; write just {name}")
            value: Any = name != flag.negation
        elif flag.dest == "resume" and not eq:
            nxt = self.args[i] if i < len(self.args) else ""
            value = nxt if SESSION_ID.fullmatch(nxt) else PICK
            i += value != PICK
        else:
            if eq:
                raw = inline
            elif i < len(self.args) and not self.args[i].startswith("-"):
                raw, i = self.args[i], i + 1
            else:
                raw = ""
            if not raw:
                raise UsageError(f"{name} needs a value: {flag.name} {flag.metavar}")
            value = _convert(flag, raw, flag.name)
        if flag.multiple:
            self.values.setdefault(flag.dest, []).append(value)
        elif flag.dest in self.given:
            first = self.given[flag.dest]
            what = f"{name} given twice" if first == name else f"{first} and {name} both given"
            raise UsageError(f"{what}; give it once: {flag.spelled()}", self._where())
        else:
            self.values[flag.dest] = value
        self.given.setdefault(flag.dest, name)
        return i

    def _unknown(self, name: str) -> str:
        owners = _owners(name)
        if owners and not self.chose:
            later = [c for c in owners if c.path[0] in self.args or not c.path]
            owner = (later or owners)[0]
            flag = _known(owner)[name]
            return (
                f"{name} is a flag of {owner.title}; put it after the command: "
                f"{usage(owner).replace(' [OPTIONS]', '')} {flag.spelled()}"
            )
        where = self.command.title if self.chose else "kcode"
        short = _known(self.command if self.chose else None).get(name[:2])
        if short is not None and short.kind != "switch" and not name.startswith("--"):
            return f"{name}: write the value apart: {name[:2]} {name[2:]}"  # -Cdir, as click took
        import difflib

        names = list(_known(self.command if self.chose else None))
        if not self.chose:
            names += [n for c in COMMANDS for f in c.flags for n in f.names]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown flag {name} for {where}{hint} (`{where} --help` lists its flags)"

    def _where(self) -> Command | None:
        return self.command if self.chose else None

    def _finish(self) -> Invocation:
        command = self.command
        if self.group is not None and not self.chose:
            return Invocation(command, {}, help=True, group=self.group)
        values: dict[str, Any] = {}
        for dest in command.uses:
            flag = GLOBAL[dest]
            values[dest] = [] if flag.multiple else flag.default
        for flag in command.flags:
            values[flag.dest] = [] if flag.multiple else flag.default
        values.update(self.values)
        if self.help:
            return Invocation(command, values, set(self.given), help=True)
        words = list(self.words)
        for arg in command.args:
            if arg.many:
                values[arg.dest], words = [_convert(arg, w, arg.name) for w in words], []
            elif words:
                values[arg.dest] = _convert(arg, words.pop(0), arg.name)
            elif arg.required:
                hint = ""
                if command.path and "-p" in self.args[: self.args.index(command.path[0])]:
                    hint = f" (a one-word prompt: kcode -p -- {command.path[0]})"
                raise UsageError(
                    f"{command.title} needs {arg.name}: {usage(command)}{hint}", command
                )
            else:
                values[arg.dest] = arg.default
        if words:
            if command is CHAT:
                raise UsageError(
                    f"unexpected second word {words[0]!r}: one PROMPT only; quote it: "
                    f'kcode "... {words[0]} ..."'
                )
            raise UsageError(f"unexpected argument {words[0]!r}: {usage(command)}", command)
        return Invocation(command, values, set(self.given))


def parse(args: list[str]) -> Invocation:
    """The invocation argv spells; UsageError when it is not a valid one. `--help` anywhere
    before `--` asks for the help of the command named so far, whatever else is wrong."""
    parser = _Parser(args)
    try:
        return parser.run()
    except UsageError:
        if not parser.help and not _asks_help(args):
            raise
        if parser.group is not None and not parser.chose:
            return Invocation(parser.command, {}, help=True, group=parser.group)
        return Invocation(parser.command, {}, help=True)


def _asks_help(args: list[str]) -> bool:
    head = args[: args.index("--")] if "--" in args else args
    return any(a in HELP for a in head)


def _rows(rows: list[tuple[str, str]]) -> list[str]:
    width = min(max((len(left) for left, _ in rows), default=0) + 2, 30)
    return [f"  {left:<{width}}{text}" if len(left) < width else f"  {left}\n  {'':<{width}}{text}"
            for left, text in rows]  # fmt: skip


def _flag_row(flag: Flag) -> tuple[str, str]:
    names = ", ".join((*flag.names[:-1], flag.spelled()))
    shown = flag.default is not None and flag.kind != "switch"
    return names, f"{flag.help} (default {flag.default})" if shown else flag.help


def help_text(invocation: Invocation) -> str:
    """`kcode COMMAND --help` (the top-level text is kcode.cli.help.TOP_HELP)."""
    if invocation.group is not None:
        subs = [c for c in COMMANDS if c.path[:1] == (invocation.group,)]
        lines = [f"Usage: kcode {invocation.group} COMMAND [ARGS]...", "",
                 GROUPS[invocation.group], "", "Commands:"]  # fmt: skip
        lines += _rows([(c.path[1], c.help) for c in subs])
        lines += ["", f"`kcode {invocation.group} COMMAND --help` shows a command's flags."]
        return "\n".join(lines) + "\n"
    import textwrap

    command = invocation.command
    lines = [f"Usage: {usage(command)}", "", *textwrap.wrap(command.help, 98)]
    if command.epilog:
        lines += ["", *textwrap.wrap(command.epilog, 98)]
    if command.args:
        lines += ["", "Arguments:"]
        lines += _rows([(a.name if a.required else f"[{a.name}]", a.help) for a in command.args])
    own = [_flag_row(f) for f in command.flags] + [("-h, --help", "show this message and exit")]
    lines += ["", "Options:", *_rows(own)]
    shared = [_flag_row(GLOBAL[d]) for d in command.uses]
    if shared:
        lines += ["", "Global options (before or after the command name):", *_rows(shared)]
    return "\n".join(lines) + "\n"


def config_flags(invocation: Invocation) -> dict[str, Any]:
    """The load_config flags the invocation gives: the table's `config` names, the budgets read
    by kcode.agents.budget (a bad one is a UsageError), --add-dir made absolute."""
    out: dict[str, Any] = {}
    for dest in invocation.given:
        flag = GLOBAL.get(dest)
        value = invocation.values.get(dest)
        if flag is None or flag.config is None or value is None or value == []:
            continue
        if flag.kind == "switch" and flag.negation is None and not value:
            continue
        out[flag.config] = value
    if "add_dirs" in out:
        out["add_dirs"] = [str(Path(d).resolve()) for d in out["add_dirs"]]
    limits: dict[str, Any] = {}
    budgets = [(d, invocation.values.get(d)) for d in ("max_tokens", "max_cost")]
    if any(value is not None for _, value in budgets):
        from kcode.agents.budget import BudgetError, parse_max_cost, parse_max_tokens

        try:
            for dest, value in budgets:
                if value is not None:
                    parse = parse_max_tokens if dest == "max_tokens" else parse_max_cost
                    limits[dest] = parse(value)
        except BudgetError as err:
            raise UsageError(str(err)) from None
    if limits:
        out["limits"] = limits
    return out


def root_of(invocation: Invocation) -> Path:
    """The workspace: -C/--cwd or the current directory; a UsageError if it is not a directory."""
    cwd = invocation.values.get("cwd")
    root = (cwd or Path.cwd()).resolve()
    if not root.is_dir():
        raise UsageError(f"--cwd {cwd}: not a directory. Pass an existing directory.")
    return root
