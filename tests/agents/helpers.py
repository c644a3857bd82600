"""Shared helpers for the sub-agent tests: real git repos, a main agent wired to an orchestrator."""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path
from typing import Any

from kcode.agents.loop import Agent
from kcode.agents.orchestrator import Orchestrator
from kcode.backends.base import Backend, BackendOptions
from kcode.events import Event, TurnFinished
from kcode.messages import Message
from kcode.safety.approval import AllowAll, Approver
from kcode.tools.base import Tool, ToolContext
from kcode.tools.registry import ROLE_TOOLS, TOOL_CLASSES, build_tools


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    out = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout


def make_repo(path: Path, files: dict[str, str], *, commit: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    if commit:
        git(path, "add", "-A")
        git(path, "commit", "-qm", "initial")
    return path


def worktree_paths(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def _importable(name: str) -> bool:
    try:
        importlib.import_module(TOOL_CLASSES[name][0])
    except ImportError:
        return False
    return True


def available_tools(role: str) -> dict[str, Tool[Any]]:
    """The role's real tool set, minus tools whose module another engineer has not written yet."""
    names = [n for n in ROLE_TOOLS[role] if _importable(n)]
    if role != "main":
        names = [n for n in names if n != "spawn_agents"]
    return build_tools(names)


def main_agent(
    backend: Backend,
    root: Path,
    *,
    max_parallel: int = 8,
    approver: Approver | None = None,
    timeout_s: float | None = None,
) -> Agent:
    ctx = ToolContext(root=root, approver=approver or AllowAll())
    agent = Agent(
        backend=backend,
        tools=available_tools("main"),
        ctx=ctx,
        system_prompt="You are the main agent.",
        options=BackendOptions(model="fake-model"),
        max_steps=20,
    )
    ctx.spawner = Orchestrator.for_agent(
        agent,
        max_parallel=max_parallel,
        run_id="test-run",
        tool_factory=available_tools,
        timeout_s=timeout_s,
    )
    return agent


async def run(agent: Agent, prompt: str) -> list[Event]:
    return [event async for event in agent.run_turn(Message.user(prompt))]


def finished(events: list[Event]) -> TurnFinished:
    last = [e for e in events if isinstance(e, TurnFinished) and e.agent == "main"]
    assert last, "the main agent never finished"
    return last[-1]
