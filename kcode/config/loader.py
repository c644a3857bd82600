"""Layered configuration (SPEC §2): defaults < user file < repo file < environment < flags.

Every effective value remembers where it came from, for `kcode config show`. A repository's own
`.kcode/config.toml` is untrusted input: kcode.config.repo decides what of it may apply (only what
makes a run stricter), and each key it drops becomes a warning naming the key and the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcode.config.repo import restrict_repo_layer, user_values
from kcode.config.schema import (  # noqa: F401  (re-exported: the names callers import)
    ApprovalMode,
    BackendName,
    EffortLevel,
    OutputFormat,
    RuleLists,
    SandboxMode,
    Settings,
    SettingsError,
)
from kcode.safety.json_input import loads_toml
from kcode.safety.workspace_files import UnsafeFile, read_workspace_file

MOONSHOT_BASE_URL = "https://api.moonshot.ai/v1"
MOONSHOT_DEFAULT_MODEL = "kimi-k2.5"
OPENAI_DEFAULT_MODEL = "gpt-5-mini"

SECRET_KEYS = {"api_key", "mcp_servers"}  # mcp_servers: headers and env may hold tokens


class ConfigError(Exception):
    """A config file or value that cannot be used. Exit code 2."""


@dataclass
class Config(Settings):
    """The effective settings, each a typed attribute (from Settings), and where each came from.

    A Config is its Settings plus provenance: `sources` names the layer that set each value
    ("flag", "environment", a file path; absent: the default) and `warnings` what was ignored."""

    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    interactive: bool = False  # loaded for an interactive session (the bundled model may start)

    @classmethod
    def of(
        cls,
        settings: Settings,
        sources: dict[str, str],
        warnings: list[str],
        *,
        interactive: bool = False,
    ) -> Config:
        values = {name: getattr(settings, name) for name in Settings.FIELDS}
        return cls(**values, sources=sources, warnings=warnings, interactive=interactive)

    @property
    def settings(self) -> Settings:
        """The values alone, without where they came from."""
        return Settings(**{name: getattr(self, name) for name in Settings.FIELDS})

    def overridden(self, source: str, **changes: Any) -> Config:
        """A copy with `changes` checked like any config value (SettingsError if one is not
        valid) and remembered as set by `source`: `/model`, `kcode fix`'s approval default."""
        new = self.replace(**changes)
        new.sources = {**self.sources, **dict.fromkeys(changes, source)}
        new.warnings = list(self.warnings)
        return new

    def shown(self) -> list[tuple[str, str, str]]:
        rows = []
        for name in Settings.FIELDS:
            value = getattr(self, name)
            text = "" if value is None else str(value)
            if name in SECRET_KEYS and isinstance(value, dict):  # mcp_servers: names only
                text = f"{', '.join(map(str, value))} (details hidden)" if value else ""
            elif name in SECRET_KEYS and text:
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


REPO_CONFIG_MAX_BYTES = 256 * 1024


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        data = loads_toml(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"cannot read {path}: {err}. Fix the file or remove it.") from err
    return {k.replace("-", "_"): v for k, v in data.items()}


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}. Fix the file or remove it.") from err
    data = _parse_toml(text, path)
    unknown = sorted(set(data) - set(Settings.FIELDS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}. "
            f"Known settings: {', '.join(Settings.FIELDS)}."
        )
    return data


def _read_repo_toml(cwd: Path, warnings: list[str]) -> dict[str, Any]:
    """The repo's own config, read as untrusted input: unknown keys warn instead of failing."""
    path = repo_config_path(cwd)
    try:
        raw = read_workspace_file(cwd, ".kcode/config.toml", REPO_CONFIG_MAX_BYTES, control=True)
    except UnsafeFile as err:
        warnings.append(f"{path}: ignored the whole file; {err}")
        return {}
    if raw is None:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"cannot read {path}: {err}. Fix the file or remove it.") from err
    data = _parse_toml(text, path)
    for key in sorted(set(data) - set(Settings.FIELDS)):
        warnings.append(f"{path}: ignored {key}; it is not a kcode setting")
        del data[key]
    return data


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


def _check_rules(layer: dict[str, Any], source: str) -> None:
    rules = layer.get("rules")
    if rules is None:
        return
    from kcode.safety.rules import RuleError, RuleSet

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


def _str_list(layer: dict[str, Any], key: str) -> list[str]:
    value = layer.get(key, [])
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


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
            elif key in ("limits", "prices") and isinstance(value, dict):
                # Tables merge key by key across layers: --max-cost keeps [limits] max_tokens.
                old_table = merged.get(key)
                value = {**(old_table if isinstance(old_table, dict) else {}), **value}
            merged[key] = value
            sources[key] = source

    user_path = user_config_path()
    apply(_read_toml(user_path), str(user_path))

    repo_path = repo_config_path(cwd)
    repo_layer = _read_repo_toml(cwd, warnings)
    trusted_dirs = {os.path.realpath(os.path.expanduser(p)) for p in _str_list(merged, "trusted")}
    defaults = Settings().as_dict()
    defaults["approval"] = "ask" if interactive else "auto-edit"
    restrict_repo_layer(
        repo_layer,
        repo_path,
        user_values(merged, defaults),
        os.path.realpath(cwd) in trusted_dirs,
        warnings,
    )
    apply(repo_layer, str(repo_path))
    apply(_env_layer(env), "environment")
    apply(flags or {}, "flag")

    if merged.get("approval") is None:
        merged["approval"] = defaults["approval"]
        sources["approval"] = (
            "default (interactive)" if interactive else "default (non-interactive)"
        )
    try:
        settings = Settings.from_mapping(merged)
    except SettingsError as err:
        problems = []
        for e in err.problems:  # `rules.allow.0`: the source is the layer that set `rules`
            source = sources.get(e.loc.split(".")[0], "default")
            problems.append(f"{e.loc} ({source}): {e.msg}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from err
    from kcode.agents.prompts import memory_warnings  # unsafe AGENTS.md & co. (#11)

    warnings += memory_warnings(cwd)
    return Config.of(settings, sources, warnings, interactive=interactive)


USER_CONFIG_TEMPLATE = """\
# kcode user configuration. Precedence: defaults < this file < .kcode/config.toml in a repo
# (which may not loosen approval or sandbox) < environment < command-line flags.

# backend = "openai"          # openai | llama-cpp | scripted
# model = "kimi-k2.5"         # model name, or a path / hf-repo:file.gguf for llama-cpp
# base_url = "https://api.moonshot.ai/v1"
# api_key = ""                # prefer KCODE_API_KEY / MOONSHOT_API_KEY / OPENAI_API_KEY
# approval = "ask"            # plan | read-only | ask | auto-edit | auto
# sandbox = "workspace-write" # off | workspace-write | read-only; default: workspace-write when
#                             # bubblewrap can start here, else off (`kcode doctor` says which)
# allow_network = false       # network for sandboxed shell/run_tests commands
# allow_secrets = false       # let read_file/grep read .env, private keys, credential files
# auto_commit = false         # one git commit per turn (undo works either way: `kcode undo [N]`)
# trusted = []                # repositories whose .kcode/config.toml may add allow rules
#                             # and whose hooks, commands, agents and MCP servers may run
# [[hooks]]                   # Kimi-style hook (or ~/.config/kcode/hooks.json, Claude shape)
# event = "PreToolUse"
# matcher = "shell"
# command = "~/bin/guard.sh"
# timeout = 30
# [rules]                     # deny beats ask beats allow; a repo config may only add ask/deny
# allow = ["shell(git diff*)", "edit(src/**)"]
# ask = ["shell(git push*)"]
# deny = ["read(.env)", "shell(rm -rf*)"]
# max_steps = 100
# max_parallel = 8
# thinking = true
# effort = "medium"           # low | medium | high: reasoning_effort, for APIs that take it
# temperature = 0.6           # default: the model's recommended one (Kimi K2.5: 1.0 / 0.6)
# tool_format = "auto"        # tool-call markup a server leaves in the answer text: auto |
#                             # none | hermes | kimi | qwen3-coder | llama3
# [limits]                    # run budgets, like --max-tokens / --max-cost (exit 5 when hit);
#                             # a repo's config may only lower them, and never sets [prices]
# max_tokens = 2000000
# max_cost = 5.00             # USD
# [prices."my-model"]         # USD per million tokens; overrides kcode's built-in table
# input = 0.60
# cached_input = 0.10
# output = 3.00
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
    if config.model.endswith(".gguf") or ":" in config.model or config.model == "bundled":
        return
    if not config.model:
        from kcode.backends.llama.models import usable_default_model

        if usable_default_model() is not None:
            return
        if _runs_bundled_model(config):
            from kcode.backends.llama.models import bundled_notice

            # The one line said at start: the REPL launcher prints the warnings after this check.
            config.warnings.append(bundled_notice())
            return
    raise ConfigError(NO_BACKEND_HELP)


def _runs_bundled_model(config: Config) -> bool:
    """Nothing configured in an interactive session, no downloaded default model, and the bundled
    SmolLM2 installed: kcode starts on it (kcode.runtime.create_backend). Never for -p."""
    if not config.interactive or config.backend or config.api_key or config.base_url:
        return False
    if config.model:
        return False
    import importlib.util

    from kcode.backends.llama.models import bundled_model, usable_default_model

    if importlib.util.find_spec("llama_cpp") is None or usable_default_model() is not None:
        return False
    return bundled_model() is not None
