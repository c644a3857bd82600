"""MCP prompts as `/mcp__server__prompt ARGS` commands, resources as `@server:uri` mentions."""

from __future__ import annotations

import re
import shlex
from typing import Any

from kcode.mcp.manager import McpManager
from kcode.mcp.naming import prompt_command

RESOURCE_MENTION = re.compile(r"(?:(?<=\s)|^)@([A-Za-z0-9_-]{1,64}):(\S+)")
MAX_RESOURCE_CHARS = 50_000


def prompt_commands(manager: McpManager) -> dict[str, tuple[str, dict[str, Any]]]:
    """command name (no slash) -> (server, prompt description) for every connected server."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, conn in manager.connections.items():
        for prompt in conn.prompts:
            out[prompt_command(name, str(prompt["name"]))] = (name, prompt)
    return out


async def expand_prompt_command(
    manager: McpManager, command: str, arg: str
) -> tuple[bool, str] | None:
    """(ok, text) for `/command arg`, or None when no server has such a prompt.

    Arguments are given in the prompt's order (`/mcp__gh__review 42 main`), the last one taking
    the rest of the line, or as KEY=VALUE."""
    found = prompt_commands(manager).get(command)
    if found is None:
        return None
    server, prompt = found
    try:
        words = shlex.split(arg)
    except ValueError:
        words = arg.split()
    declared = [a for a in prompt.get("arguments", []) if isinstance(a, dict)]
    values: dict[str, str] = {}
    positional = []
    for word in words:
        key, eq, value = word.partition("=")
        if eq and any(a.get("name") == key for a in declared):
            values[key] = value
        else:
            positional.append(word)
    open_args = [str(a.get("name")) for a in declared if a.get("name") not in values]
    for i, name in enumerate(open_args):
        if not positional:
            break
        # The last argument takes the rest: `/mcp__gh__review the parser` is one topic.
        last = i == len(open_args) - 1
        values[name] = " ".join(positional) if last else positional.pop(0)
        if last:
            positional = []
    missing = [str(a["name"]) for a in declared if a.get("required") and a["name"] not in values]
    if missing:
        return False, f"/{command} needs: {', '.join(missing)}"
    outcome = await manager.get_prompt(server, str(prompt["name"]), values)
    return outcome.ok, outcome.text


async def expand_resource_mentions(manager: McpManager, text: str) -> tuple[str, list[str]]:
    """The text with the contents of every `@server:uri` appended; errors are returned, not raised.

    Only names of configured servers count, so `@user:pass` in prose is left alone."""
    errors: list[str] = []
    blocks: list[str] = []
    for match in RESOURCE_MENTION.finditer(text):
        server, uri = match.group(1), match.group(2).rstrip(".,;!?)")
        if server not in manager.connections:
            continue
        outcome = await manager.read_resource(server, uri)
        if not outcome.ok:
            errors.append(outcome.text)
            continue
        body = outcome.text[:MAX_RESOURCE_CHARS]
        blocks.append(f'<resource server="{server}" uri="{uri}">\n{body}\n</resource>')
    if not blocks:
        return text, errors
    return text + "\n\n" + "\n\n".join(blocks), errors
