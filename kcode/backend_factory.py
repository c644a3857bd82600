"""Making the backend a config asks for (OpenAI-compatible, local llama.cpp, scripted), and the
labels a session records for it. Heavy modules (openai, llama_cpp) are imported lazily, on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

from kcode.backends.base import Backend
from kcode.config.loader import NO_BACKEND_HELP, Config, ConfigError
from kcode.netutil import is_loopback_url

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def create_backend(config: Config) -> Backend:
    name = config.backend
    if name is None:
        if config.api_key or config.base_url:
            name = "openai"
        elif config.model.endswith(".gguf") or ":" in config.model or config.model == "bundled":
            name = "llama-cpp"
        else:
            from kcode.backends.llama.models import bundled_model, usable_default_model

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
        from kcode.backends.openai.api import OpenAIBackend

        base_url = config.base_url or OPENAI_DEFAULT_BASE_URL
        api_key = config.api_key
        if not api_key:
            if not is_loopback_url(base_url):
                raise ConfigError(f"no API key for {base_url}. " + NO_BACKEND_HELP)
            api_key = "none"  # local servers (llama.cpp, vLLM) accept any key
        model = config.model
        if not model:  # only a base URL: ask the server (vLLM, OpenRouter reject "default")
            from kcode.backends.openai.discovery import discover_model

            found = discover_model(base_url, api_key)
            model = found.model if found else ""
        return OpenAIBackend(
            base_url,
            api_key,
            model or "default",
            max_concurrency=config.max_parallel,
            tool_format=config.tool_format,
        )
    from kcode.backends.llama.models import resolve_model

    if not config.model:
        raise ConfigError("--backend llama-cpp needs --model PATH.gguf or owner/repo:file.gguf")
    return _local_backend(config, str(resolve_model(config.model)))


def _local_backend(config: Config, model_path: str) -> Backend:
    from kcode.backends.llama.llama_cpp import LlamaCppBackend
    from kcode.backends.llama.steering import STEER_ENV

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
    served = getattr(
        backend, "model", None
    )  # asked from the server (kcode.backends.openai.discovery)
    if isinstance(served, str) and served and served != "default":
        return served
    chosen = getattr(backend, "model_path", None)
    return Path(chosen).name if chosen else ""
