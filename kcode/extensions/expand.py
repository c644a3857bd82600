"""Body substitutions shared by custom commands and skills.

`$ARGUMENTS` (all of it), `$ARGUMENTS[N]` (0-based), `$1…$9` (1-based, commands), `${CLAUDE_SKILL_DIR}`
and friends; with no placeholder the arguments are appended as `ARGUMENTS: …` (Claude, Kimi,
opencode). Dynamic parts — ``!`cmd` `` and `@file` — run through the tools (`shell`, `read_file`), so
they get the same approval, sandbox, confinement, secret checks and hooks as the model's own calls.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Awaitable, Callable, Mapping

from kcode.messages import ToolCall, ToolResult

ARGS_INDEXED = re.compile(r"\$ARGUMENTS\[(\d+)\]")
POSITIONAL = re.compile(r"\$([1-9])(?![0-9])")
BANG = re.compile(r"!`([^`\n]+)`")
MENTION = re.compile(r"(?:(?<=\s)|^)@([\w./-][^\s`'\"]*)", re.MULTILINE)
VARIABLE = re.compile(r"\$\{([A-Z_]+)\}")

RunTool = Callable[[ToolCall], Awaitable[ToolResult]]


def split_arguments(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote: whitespace split is what the user meant
        return text.split()


def substitute(body: str, arguments: str, variables: Mapping[str, str], *, positional: bool) -> str:
    args = split_arguments(arguments)
    had_placeholder = False

    def indexed(match: re.Match[str]) -> str:
        nonlocal had_placeholder
        had_placeholder = True
        i = int(match.group(1))
        return args[i] if i < len(args) else ""

    out = ARGS_INDEXED.sub(indexed, body)
    if "$ARGUMENTS" in out:
        had_placeholder = True
        out = out.replace("$ARGUMENTS", arguments)
    if positional:

        def nth(match: re.Match[str]) -> str:
            nonlocal had_placeholder
            had_placeholder = True
            i = int(match.group(1)) - 1
            return args[i] if i < len(args) else ""

        out = POSITIONAL.sub(nth, out)
    out = VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), out)
    if arguments.strip() and not had_placeholder:
        out = out.rstrip("\n") + f"\n\nARGUMENTS: {arguments.strip()}\n"
    return out


async def expand_dynamic(body: str, run: RunTool, *, run_commands: bool = True) -> str:
    """Replace ``!`cmd` `` with the command's output and `@path` with the file's numbered lines.
    Without `run_commands` (an untrusted repository's file) the commands are left unrun."""
    out: list[str] = []
    pos = 0
    for match in BANG.finditer(body):
        out.append(body[pos : match.start()])
        command = match.group(1).strip()
        if not run_commands:
            out.append(f"[`{command}` not run: this repository is not trusted]")
            pos = match.end()
            continue
        result = await run(ToolCall(_call_id(), "shell", {"command": command}))
        out.append(result.content.rstrip("\n") if result.ok else f"[`{command}` failed: "
                   f"{result.content.strip()[:500]}]")  # fmt: skip
        pos = match.end()
    out.append(body[pos:])
    text = "".join(out)
    pieces: list[str] = []
    pos = 0
    for match in MENTION.finditer(text):
        path = match.group(1).rstrip(".,;:)")
        if "/" not in path and "." not in path:
            continue  # `@someone` in prose, not a file
        result = await run(ToolCall(_call_id(), "read_file", {"path": path}))
        pieces.append(text[pos : match.start()])
        if result.ok:
            pieces.append(f"{path}:\n```\n{result.content.rstrip()}\n```")
        else:
            pieces.append(f"@{path} [not included: {result.content.strip()[:300]}]")
        pos = match.start() + 1 + len(path)
    pieces.append(text[pos:])
    return "".join(pieces)


def _call_id() -> str:
    return f"ext_{uuid.uuid4().hex[:12]}"
