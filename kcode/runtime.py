"""Assembling a working agent from the config: backend, tools, context, session, system prompt.

Front ends (the non-interactive runner, the REPL, `kcode fix`) call `build_runtime` and then only talk to
`Runtime.agent.run_turn`. Heavy modules (openai, llama_cpp) are imported here, lazily, on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcode.agents.loop import Agent
from kcode.approval import Approver
from kcode.backends.base import Backend, BackendOptions
from kcode.config import NO_BACKEND_HELP, Config, ConfigError
from kcode.netutil import is_loopback_url
from kcode.session import Session
from kcode.tools.base import ToolContext
from kcode.tools.registry import ROLE_TOOLS, LazyTools
from kcode.tools.spec_cache import cached_tool_specs

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def create_backend(config: Config) -> Backend:
    name = config.backend
    if name is None:
        if config.api_key or config.base_url:
            name = "openai"
        elif config.model.endswith(".gguf") or ":" in config.model or config.model == "bundled":
            name = "llama-cpp"
        else:
            from kcode.models import bundled_model, usable_default_model

            # Nothing configured: the default local model, if it was downloaded (`make run`),
            # else, in an interactive session only, the bundled SmolLM2 (-p must say what it runs).
            default = None if config.model else usable_default_model()
            if default is None and not config.model and getattr(config, "interactive", False):
                default = bundled_model()
            if default is None:
                raise ConfigError(NO_BACKEND_HELP)
            return _local_backend(config, str(default))
    if name == "scripted":
        from kcode.backends.scripted import ScriptedBackend

        script = config.script or os.environ.get("KCODE_SCRIPT", "")
        if not script:
            raise ConfigError(
                "the scripted backend needs a script: set `script = PATH` or KCODE_SCRIPT=PATH.json"
            )
        return ScriptedBackend.from_file(script)
    if name == "openai":
        from kcode.backends.openai_api import OpenAIBackend

        base_url = config.base_url or OPENAI_DEFAULT_BASE_URL
        api_key = config.api_key
        if not api_key:
            if not is_loopback_url(base_url):
                raise ConfigError(f"no API key for {base_url}. " + NO_BACKEND_HELP)
            api_key = "none"  # local servers (llama.cpp, vLLM) accept any key
        model = config.model
        if not model:  # only a base URL: ask the server (vLLM, OpenRouter reject "default")
            from kcode.backends.discovery import discover_model

            found = discover_model(base_url, api_key)
            model = found.model if found else ""
        return OpenAIBackend(
            base_url,
            api_key,
            model or "default",
            max_concurrency=config.max_parallel,
            tool_format=config.tool_format,
        )
    from kcode.models import resolve_model

    if not config.model:
        raise ConfigError("--backend llama-cpp needs --model PATH.gguf or owner/repo:file.gguf")
    return _local_backend(config, str(resolve_model(config.model)))


def _local_backend(config: Config, model_path: str) -> Backend:
    from kcode.backends.llama_cpp import LlamaCppBackend
    from kcode.backends.steering import STEER_ENV

    return LlamaCppBackend(
        model_path,
        n_ctx=config.n_ctx,
        n_threads=config.n_threads,
        n_gpu_layers=config.n_gpu_layers,
        mmproj=config.mmproj or None,
        strict_tools=config.strict_tools,
        steer=os.environ.get(STEER_ENV) or None,
        max_output_tokens=config.max_output_tokens,
        kv_cache_mb=config.kv_cache_mb,
        tool_format=config.tool_format,
    )


def backend_label(config: Config) -> str:
    return config.backend or ("openai" if config.api_key or config.base_url else "llama-cpp")


def model_label(config: Config, backend: Backend) -> str:
    """The model a session records: the configured one, else the one the backend chose (the default
    local GGUF when nothing is configured)."""
    if config.model:
        return str(config.model)
    served = getattr(backend, "model", None)  # asked from the server (kcode.backends.discovery)
    if isinstance(served, str) and served and served != "default":
        return served
    chosen = getattr(backend, "model_path", None)
    return Path(chosen).name if chosen else ""


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
    from kcode.sandbox import SandboxUnavailable, effective_mode

    try:
        return effective_mode(config.sandbox)
    except SandboxUnavailable as err:
        raise ConfigError(str(err)) from None


def _attach_rules(approver: Approver, config: Config) -> None:
    """Give the approver the configured allow/ask/deny rules unless it was built with its own."""
    from kcode.rules import RuleSet

    if getattr(approver, "rules", "absent") is None:
        rules = config.rules.model_dump()
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


@dataclass
class Runtime:
    config: Config
    root: Path
    backend: Backend
    agent: Agent
    session: Session
    ctx: ToolContext
    mcp: Any = None  # kcode.mcp.manager.McpManager when MCP servers are configured

    async def aclose(self) -> None:
        if self.ctx.extensions is not None:
            await self.ctx.extensions.session_end("exit", self.ctx)  # SessionEnd hooks
        self.session.close()
        if self.mcp is not None:
            await self.mcp.aclose()
        await self.backend.aclose()


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
    from kcode.secrets import secret_env_values

    redact = sorted({config.api_key, *secret_env_values()} - {""}, key=len, reverse=True)
    from kcode.secrets import register_display_secrets

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
    if history is None:
        session.log_message(agent.history[0])
    return Runtime(config, root, backend, agent, session, ctx, mcp)


def _mcp_manager(config: Config, root: Path) -> Any:
    """MCP servers (kcode.mcp), started in the background on the agent's loop: by the REPL as soon
    as the runtime exists (the user is still typing), at the first model request in -p (so they do
    not compete with it for the CPU). No request waits for them."""
    from kcode.mcp import create_manager

    return create_manager(config, root)
