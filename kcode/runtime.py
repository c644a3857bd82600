"""The one door between the core and every front end: `build_runtime` assembles a working agent from
the config (backend, tools, context, session, system prompt) and returns a `Runtime`.

Front ends (the REPL, `-p`, `kcode fix`, tests) only talk to the Runtime: it runs turns and logs them,
writes the session's `session_started` record once, and owns every change to the main agent's history,
backend, options and stats (`clear`, `compact`, `switch_backend`, `set_thinking`, `retire_images`).
What the UI reads comes back as snapshots and immutable views. It never prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kcode.agents.loop import Agent
from kcode.backend_factory import (
    OPENAI_DEFAULT_BASE_URL,
    backend_label,
    create_backend,
    model_label,
)
from kcode.backends.base import Backend, BackendOptions
from kcode.config.loader import Config, ConfigError
from kcode.runtime_core import Cleared, Compacted, Runtime, StatsView
from kcode.safety.approval import Approver
from kcode.session import Session
from kcode.tools.base import ToolContext
from kcode.tools.registry import ROLE_TOOLS, LazyTools
from kcode.tools.spec_cache import cached_tool_specs

__all__ = [
    "OPENAI_DEFAULT_BASE_URL", "Cleared", "Compacted", "Runtime", "StatsView", "backend_label",
    "build_runtime", "cache_key", "create_backend", "model_label", "run_budget",
]  # fmt: skip


def _preflight(backend: Backend, system_prompt: str, specs: Any) -> None:
    """A backend that can check itself before the session is written (the local one: the model
    loads, its template renders kcode's prompt with the tools, and that fits the context) does so
    here, so a model kcode cannot use is a usage error that leaves no session behind."""
    check = getattr(backend, "preflight", None)
    if check is None:
        return
    import asyncio

    from kcode.messages import Message

    probe = [Message.system(system_prompt), Message.user("hello")]
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(check(probe, specs))
        return
    # Called from inside an event loop (the headless runner): run the check on a thread of its own.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, check(probe, specs)).result()


def _sandbox_mode(config: Config) -> str:
    from kcode.safety.sandbox import SandboxUnavailable, effective_mode

    try:
        return effective_mode(config.sandbox)
    except SandboxUnavailable as err:
        raise ConfigError(str(err)) from None


def _attach_rules(approver: Approver, config: Config) -> None:
    """Give the approver the configured allow/ask/deny rules unless it was built with its own."""
    from kcode.safety.rules import RuleSet

    if getattr(approver, "rules", "absent") is None:
        rules = config.rules.as_dict()
        approver.rules = RuleSet.parse(rules, "config")  # type: ignore[attr-defined]


def cache_key(session_id: str, role: str) -> str:
    """The prompt cache key of one session and role (issue #16): stable across its turns, shared by
    the sub-agents of one role, whose requests start with the same system prompt and tools."""
    return f"kcode-{session_id}-{role}"


def run_budget(config: Config, backend: Backend, model: str) -> Any:
    """The run's budget and price table; ConfigError when --max-cost cannot be counted."""
    from kcode.agents.budget import RunBudget, parse_limits
    from kcode.agents.prices import PriceTable, parse_prices

    prices = PriceTable(parse_prices(config.prices), local=backend.name == "llama-cpp")
    limits = parse_limits(config.limits)
    model = model or str(getattr(backend, "model", ""))
    if limits.max_cost is not None and prices.lookup(model) is None:
        raise ConfigError(
            f"--max-cost needs the price of model {model!r}, which kcode does not know; add "
            f'[prices."{model}"] input = ..., output = ... (USD per million tokens) to the config'
        )
    return RunBudget(limits, prices)


def build_runtime(
    config: Config,
    root: Path,
    approver: Approver,
    *,
    interactive: bool,
    resume_id: str | None = None,
    backend: Backend | None = None,
) -> Runtime:
    from kcode.agents.prompts import main_system_prompt

    backend = backend or create_backend(config)
    system_prompt = main_system_prompt(root, interactive=interactive)
    specs = cached_tool_specs(ROLE_TOOLS["main"])
    _preflight(backend, system_prompt, specs)
    from kcode.safety.secrets import secret_env_values

    redact = sorted({config.api_key, *secret_env_values()} - {""}, key=len, reverse=True)
    from kcode.safety.secrets import register_display_secrets

    register_display_secrets(redact)  # the REPL renderer redacts them too (kcode.ui.render)
    meta: dict[str, Any] = {"backend": backend_label(config), "model": model_label(config, backend)}
    if resume_id:
        session = Session.open_existing(resume_id, redact=redact)
        history = session.load_history() or None
    else:
        session = Session.create(root, meta, redact=redact)
        history = None
    ctx = ToolContext(
        root=root,
        extra_dirs=tuple(Path(d) for d in config.add_dirs),
        approver=approver,
        sandbox=_sandbox_mode(config),
        allow_secrets=config.allow_secrets,
        allow_network=config.allow_network,
    )
    _attach_rules(approver, config)
    from kcode.vcs.checkpoints import create_checkpoints

    ctx.checkpoints = create_checkpoints(
        root, session.session_id, ctx.changes, auto_commit=config.auto_commit
    )
    tools: Mapping[str, Any] = LazyTools(ROLE_TOOLS["main"])
    mcp = _mcp_manager(config, root)
    if mcp is not None:
        from kcode.mcp.tools import McpToolset

        tools = McpToolset(tools, mcp)
    from kcode.extensions.setup import attach_extensions

    ext = attach_extensions(ctx, config, root, session, interactive=interactive)
    agent = Agent(
        backend=backend,
        tools=ext.tools(tools),
        ctx=ctx,
        system_prompt=system_prompt + ext.prompt_section(),
        options=BackendOptions(
            model=config.model,
            thinking=config.thinking,
            temperature=config.temperature,
            reasoning_effort=config.effort,
            cache_key=cache_key(session.session_id, "main"),
        ),
        max_steps=config.max_steps,
        history=history,
        on_message=session.log_message,
        specs=specs + ext.specs(),
    )
    agent.meter = run_budget(config, backend, agent.options.model).meter("main")
    from kcode.agents.orchestrator import Orchestrator

    ctx.spawner = Orchestrator.for_agent(
        agent, max_parallel=config.max_parallel, run_id=session.session_id
    )
    ctx.spawner.mcp = mcp  # sub-agents get the MCP tools their role allows (kcode.agents.sub_tools)
    if history is None:
        session.log_message(agent.history[0])
    return Runtime(config, root, backend, agent, session, ctx, mcp)


def _mcp_manager(config: Config, root: Path) -> Any:
    """MCP servers (kcode.mcp), started in the background on the agent's loop: by the REPL as soon
    as the runtime exists (the user is still typing), at the first model request in -p (so they do
    not compete with it for the CPU). No request waits for them."""
    from kcode.mcp import create_manager

    return create_manager(config, root)
