"""Shared helpers for REPL tests: a text console and a runtime built from real parts."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

from rich.console import Console

from kcode.agents.loop import Agent
from kcode.backends.base import Backend, BackendOptions
from kcode.config.loader import Config, load_config
from kcode.runtime import Runtime
from kcode.safety.approval import Approver
from kcode.session import Session
from kcode.tools.base import ToolContext
from kcode.tools.registry import build_tools

TOOLS = ("read_file", "write_file", "shell")


def text_console(width: int = 100) -> tuple[Console, StringIO]:
    buffer = StringIO()
    return Console(file=buffer, width=width, force_terminal=False, highlight=False), buffer


def scripted_config(root: Path, **flags: Any) -> Config:
    return load_config(root, {"backend": "scripted", "model": "scripted-model", **flags}, env={},
                       interactive=True)  # fmt: skip


def make_runtime(
    config: Config, root: Path, backend: Backend, approver: Approver, tools: tuple[str, ...] = TOOLS
) -> Runtime:
    session = Session.create(root, {"backend": "scripted", "model": config.model})
    ctx = ToolContext(root=root, approver=approver)
    agent = Agent(
        backend=backend,
        tools=build_tools(tools),
        ctx=ctx,
        system_prompt="You are a test agent.",
        options=BackendOptions(model=config.model),
        on_message=session.log_message,
    )
    session.log_message(agent.history[0])
    return Runtime(config, root, backend, agent, session, ctx)
