"""Tool names as the model, rules and hooks see them: `mcp__<server>__<tool>`.

Providers accept `^[a-zA-Z0-9_-]{1,64}$` for function names (OpenAI, Kimi). A server's tool name may
hold dots, slashes or spaces and may be long, so it is sanitised, and cut to 64 characters with a
short hash of the original so two long names that share a prefix stay apart.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "mcp__"
SEP = "__"
MAX_NAME = 64
_BAD = re.compile(r"[^A-Za-z0-9_-]")


def sanitize(part: str) -> str:
    return _BAD.sub("_", part) or "_"


def tool_name(server: str, tool: str) -> str:
    name = f"{PREFIX}{sanitize(server)}{SEP}{sanitize(tool)}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(f"{server}\x00{tool}".encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def prompt_command(server: str, prompt: str) -> str:
    """The slash command of an MCP prompt (Claude's spelling), without the slash."""
    return f"{PREFIX}{sanitize(server)}{SEP}{sanitize(prompt)}"


def is_mcp_name(name: str) -> bool:
    return name.startswith(PREFIX)


def server_of(name: str) -> str:
    """The (sanitised) server part of `mcp__server__tool`, or "" if it is not one."""
    if not is_mcp_name(name):
        return ""
    return name[len(PREFIX) :].split(SEP, 1)[0]
