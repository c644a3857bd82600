"""Assembling a working agent from the config: backend, tools, context, session, system prompt.

Front ends (the non-interactive runner, the REPL, `kcode fix`) call `build_runtime` and then only talk to
`Runtime.agent.run_turn`. Heavy modules (openai, llama_cpp) are imported here, lazily, on first use.
"""

from __future__ import annotations

import os
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
        elif config.model.endswith(".gguf") or ":" in config.model:
            name = "llama-cpp"
        else:
            from kcode.models import usable_default_model

            # Nothing configured: the default local model, if it was downloaded (`make run`).
            default = None if config.model else usable_default_model()
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
            base_url, api_key, model or "default", max_concurrency=config.max_parallel
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


@dataclass
class Runtime:
    config: Config
    root: Path
    backend: Backend
    agent: Agent
    session: Session
    ctx: ToolContext

    async def aclose(self) -> None:
        self.session.close()
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
    from kcode.secrets import secret_env_values

    redact = sorted({config.api_key, *secret_env_values()} - {""}, key=len, reverse=True)
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
    tools = LazyTools(ROLE_TOOLS["main"])
    agent = Agent(
        backend=backend,
        tools=tools,
        ctx=ctx,
        system_prompt=main_system_prompt(root, interactive=interactive),
        options=BackendOptions(model=config.model, thinking=config.thinking),
        max_steps=config.max_steps,
        history=history,
        on_message=session.log_message,
        specs=cached_tool_specs(ROLE_TOOLS["main"]),
    )
    from kcode.agents.orchestrator import Orchestrator

    ctx.spawner = Orchestrator.for_agent(
        agent, max_parallel=config.max_parallel, run_id=session.session_id
    )
    if history is None:
        session.log_message(agent.history[0])
    return Runtime(config, root, backend, agent, session, ctx)
