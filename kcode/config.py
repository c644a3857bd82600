"""Layered configuration (SPEC §2): defaults < user file < repo file < environment < flags.

Every effective value remembers where it came from, for `kcode config show`. A repository's own
`.kcode/config.toml` is not trusted to loosen safety: it may make approval or sandbox stricter, never
looser (a looser value is ignored and reported in `warnings`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcode.config_schema import (  # noqa: F401  (re-exported: the names callers import)
    BackendName,
    OutputFormat,
    RuleLists,
    SandboxMode,
    Settings,
    SettingsError,
)

MOONSHOT_BASE_URL = "https://api.moonshot.ai/v1"
MOONSHOT_DEFAULT_MODEL = "kimi-k2.5"
OPENAI_DEFAULT_MODEL = "gpt-5-mini"

# Strictness orders: a repo file may only move these towards the front.
APPROVAL_STRICTNESS = ("read-only", "ask", "auto-edit", "auto")
SANDBOX_STRICTNESS = ("read-only", "workspace-write", "off")
SECRET_KEYS = {"api_key"}


class ConfigError(Exception):
    """A config file or value that cannot be used. Exit code 2."""


@dataclass
class Config:
    settings: Settings
    sources: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.settings, name)

    def shown(self) -> list[tuple[str, str, str]]:
        rows = []
        for name in Settings.model_fields:
            value = getattr(self.settings, name)
            text = "" if value is None else str(value)
            if name in SECRET_KEYS and text:
                text = text[:3] + "…" + f" ({len(text)} chars)"
            rows.append((name, text, self.sources.get(name, "default")))
        return rows


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kcode" / "config.toml"


def repo_config_path(cwd: Path) -> Path:
    return cwd / ".kcode" / "config.toml"


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kcode"


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}. Fix the file or remove it.") from err
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}. "
            f"Known settings: {', '.join(Settings.model_fields)}."
        )
    return {k.replace("-", "_"): v for k, v in data.items()}


def _env_layer(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if env.get("OPENAI_API_KEY"):
        out.update(backend="openai", api_key=env["OPENAI_API_KEY"], model=OPENAI_DEFAULT_MODEL)
        if env.get("OPENAI_BASE_URL"):
            out["base_url"] = env["OPENAI_BASE_URL"]
    elif env.get("OPENAI_BASE_URL"):
        out["base_url"] = env["OPENAI_BASE_URL"]
    if env.get("MOONSHOT_API_KEY"):
        out.update(
            backend="openai",
            api_key=env["MOONSHOT_API_KEY"],
            base_url=MOONSHOT_BASE_URL,
            model=MOONSHOT_DEFAULT_MODEL,
        )
    for var, key in (
        ("KCODE_BACKEND", "backend"),
        ("KCODE_MODEL", "model"),
        ("KCODE_BASE_URL", "base_url"),
        ("KCODE_API_KEY", "api_key"),
    ):
        if env.get(var):
            out[key] = env[var]
    return out


# Settings a repository's own config may never set to the looser value.
_LOOSENING_FLAGS = ("allow_secrets", "allow_network", "auto_commit")


def _restrict_repo_layer(
    layer: dict[str, Any], path: Path, trusted: bool, warnings: list[str]
) -> None:
    """A repo config is untrusted: it may add deny/ask rules, never allow rules or loosen flags."""
    for key in ("trusted", *_LOOSENING_FLAGS):
        if layer.get(key):
            warnings.append(f"{path}: ignored {key}; a repository's config may not set it")
            del layer[key]
    rules = layer.get("rules")
    if isinstance(rules, dict) and rules.get("allow") and not trusted:
        warnings.append(
            f"{path}: ignored its allow rules; add this repository to `trusted` in the user "
            "config to honour them"
        )
        rules = {k: v for k, v in rules.items() if k != "allow"}
        layer["rules"] = rules


def _check_rules(layer: dict[str, Any], source: str) -> None:
    rules = layer.get("rules")
    if rules is None:
        return
    from kcode.rules import RuleError, RuleSet

    if not isinstance(rules, dict) or any(
        not isinstance(v, list) or not all(isinstance(r, str) for r in v) for v in rules.values()
    ):
        raise ConfigError(f"{source}: `rules` must be a table of lists: allow / ask / deny")
    unknown = sorted(set(rules) - {"allow", "ask", "deny"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown rule list(s) {', '.join(unknown)}; use allow/ask/deny"
        )
    try:
        RuleSet.parse(rules, source)
    except RuleError as err:
        raise ConfigError(f"{err}. Fix or remove the rule in {source}.") from err


def _stricter_or_equal(order: tuple[str, ...], new: str, old: str) -> bool:
    return order.index(new) <= order.index(old)


def load_config(
    cwd: Path,
    flags: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    *,
    interactive: bool = False,
) -> Config:
    env = dict(os.environ) if env is None else env
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []

    def apply(layer: dict[str, Any], source: str) -> None:
        _check_rules(layer, source)
        for key, value in layer.items():
            if value is None:
                continue
            if key == "rules":  # rule lists add up across layers; they never replace
                old = merged.get("rules", {})
                value = {k: [*old.get(k, []), *value.get(k, [])] for k in {*old, *value}}
            merged[key] = value
            sources[key] = source

    user_path = user_config_path()
    apply(_read_toml(user_path), str(user_path))

    repo_path = repo_config_path(cwd)
    repo_layer = _read_toml(repo_path)
    trusted_dirs = {os.path.realpath(p) for p in merged.get("trusted", [])}
    _restrict_repo_layer(repo_layer, repo_path, os.path.realpath(cwd) in trusted_dirs, warnings)
    defaults = {"approval": "ask" if interactive else "auto-edit", "sandbox": "off"}
    for key, order in (("approval", APPROVAL_STRICTNESS), ("sandbox", SANDBOX_STRICTNESS)):
        if key in repo_layer:
            current = merged.get(key, defaults[key])
            if repo_layer[key] not in order:
                continue  # Settings.model_validate reports the bad value below
            if not _stricter_or_equal(order, repo_layer[key], current):
                warnings.append(
                    f"{repo_path}: ignored {key} = {repo_layer[key]!r}; a repository's config may "
                    f"not loosen {key} (effective: {current!r}). Set it in {user_path} or by flag."
                )
                del repo_layer[key]
    apply(repo_layer, str(repo_path))
    apply(_env_layer(env), "environment")
    apply(flags or {}, "flag")

    if merged.get("approval") is None:
        merged["approval"] = defaults["approval"]
        sources["approval"] = (
            "default (interactive)" if interactive else "default (non-interactive)"
        )
    try:
        settings = Settings.model_validate(merged)
    except SettingsError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"])
            problems.append(f"{key} ({sources.get(key, 'default')}): {e['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from err
    return Config(settings, sources, warnings)


USER_CONFIG_TEMPLATE = """\
# kcode user configuration. Precedence: defaults < this file < .kcode/config.toml in a repo
# (which may not loosen approval or sandbox) < environment < command-line flags.

# backend = "openai"          # openai | llama-cpp | scripted
# model = "kimi-k2.5"         # model name, or a path / hf-repo:file.gguf for llama-cpp
# base_url = "https://api.moonshot.ai/v1"
# api_key = ""                # prefer KCODE_API_KEY / MOONSHOT_API_KEY / OPENAI_API_KEY
# approval = "ask"            # read-only | ask | auto-edit | auto
# sandbox = "workspace-write" # off | workspace-write | read-only; default: workspace-write when
#                             # bubblewrap can start here, else off (`kcode doctor` says which)
# allow_network = false       # network for sandboxed shell/run_tests commands
# allow_secrets = false       # let read_file/grep read .env, private keys, credential files
# auto_commit = false         # one git commit per turn (undo works either way: `kcode undo [N]`)
# trusted = []                # repositories whose .kcode/config.toml may add allow rules
# [rules]                     # deny beats ask beats allow; a repo config may only add ask/deny
# allow = ["shell(git diff*)", "edit(src/**)"]
# ask = ["shell(git push*)"]
# deny = ["read(.env)", "shell(rm -rf*)"]
# max_steps = 100
# max_parallel = 8
# thinking = true
"""


NO_BACKEND_HELP = (
    "no model is configured. Set one of: MOONSHOT_API_KEY=... (Kimi K2.5 on the Moonshot API), "
    "OPENAI_API_KEY=... (with OPENAI_BASE_URL for any OpenAI-compatible server), "
    "KCODE_BASE_URL=http://127.0.0.1:8080/v1 for a local server, or "
    "--backend llama-cpp --model PATH.gguf for a local GGUF model (`kcode models pull` downloads one). "
    "`kcode config init` writes a config file to edit."
)


def ensure_backend_configured(config: Config) -> None:
    """Fail fast (ConfigError, exit 2) when no backend could be built, before a REPL is drawn.

    The same rule as kcode.runtime.create_backend, without importing any backend."""
    if config.backend or config.api_key or config.base_url:
        return
    if config.model.endswith(".gguf") or ":" in config.model:
        return
    if not config.model:
        from kcode.models import usable_default_model

        if usable_default_model() is not None:
            return
    raise ConfigError(NO_BACKEND_HELP)
