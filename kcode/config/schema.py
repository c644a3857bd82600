"""The settings kcode has, their types, their choices and how a value is checked.

Each set of choices is defined here once, as a `Literal`; the config, the CLI (through
`typing.get_args`) and the UI use these names. `Settings` is a plain dataclass: `from_mapping`
checks and converts the merged layers (kcode.config.coerce keeps the messages users know),
`replace` applies checked changes, `as_dict` gives the plain values, `FIELDS` names the settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, get_args

from kcode.config.coerce import (
    FieldError,
    FieldErrors,
    as_bool,
    as_float,
    as_int,
    as_literal,
    as_str,
    as_str_list,
    as_table,
)

BackendName = Literal["openai", "llama-cpp", "scripted"]
# plan (kcode.extensions.plan, SPEC §8): read tools only, and the turn ends with a plan.
ApprovalMode = Literal["ask", "auto-edit", "auto", "read-only", "plan"]
SandboxMode = Literal["off", "workspace-write", "read-only"]
OutputFormat = Literal["text", "json", "stream-json"]
EffortLevel = Literal["low", "medium", "high"]  # reasoning_effort, for APIs that take it
# Tool-call markup a server leaves in the answer text (kcode.backends.openai.content_calls); qwen3_coder
# is the same format as qwen3-coder, spelled as some model cards spell it.
ToolFormat = Literal[
    "auto", "none", "hermes", "kimi", "qwen3-coder", "qwen3_coder", "llama3", "mistral"
]

BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
APPROVAL_MODES: tuple[ApprovalMode, ...] = get_args(ApprovalMode)
SANDBOX_MODES: tuple[SandboxMode, ...] = get_args(SandboxMode)
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
EFFORT_LEVELS: tuple[EffortLevel, ...] = get_args(EffortLevel)

# Strictest first: a repository's config may only move these towards the front (kcode.config.repo).
# tests/core/test_config_schema.py checks that each lists every choice of its Literal once.
APPROVAL_STRICTNESS: tuple[ApprovalMode, ...] = ("plan", "read-only", "ask", "auto-edit", "auto")
SANDBOX_STRICTNESS: tuple[SandboxMode, ...] = ("read-only", "workspace-write", "off")


@dataclass
class RuleLists:
    """Approval rules (kcode.safety.rules): `shell(git diff*)`, `edit(src/**)`, `read(.env)`."""

    allow: list[str] = field(default_factory=list)
    ask: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"allow": list(self.allow), "ask": list(self.ask), "deny": list(self.deny)}


@dataclass
class Settings:
    backend: BackendName | None = None
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    approval: ApprovalMode | None = None
    sandbox: SandboxMode | None = None
    max_steps: int = 100
    max_parallel: int = 8
    output_format: OutputFormat = "text"
    thinking: bool | None = None
    timeout_s: float | None = None
    context_window: int = 131_072
    script: str = ""  # scripted backend: JSON file of model turns
    # local llama.cpp backend
    n_ctx: int | None = None  # None: the model's trained context, capped by kv_cache_mb
    n_threads: int | None = None
    n_gpu_layers: int = 0
    mmproj: str = ""
    strict_tools: bool = False
    add_dirs: list[str] = field(default_factory=list)
    # safety (see kcode.safety.rules, kcode.safety.sandbox, kcode.safety.secrets, kcode.vcs.checkpoints)
    rules: RuleLists = field(default_factory=RuleLists)
    auto_commit: bool = False  # one git commit per turn
    allow_secrets: bool = False  # let read_file/grep read .env, keys and credential files
    allow_network: bool = False  # network inside the shell sandbox
    trusted: list[str] = field(default_factory=list)  # repos whose .kcode/config.toml may allow
    # issue #16: run budgets ([limits] max_tokens, max_cost; --max-tokens/--max-cost), price
    # overrides ([prices."model"] input, cached_input, output per million tokens), --effort, and a
    # sampling temperature that replaces the per-model default (Kimi K2.5: 1.0 thinking, 0.6 not).
    # The two tables are checked at load time and read by kcode.agents.budget / kcode.agents.prices.
    limits: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, Any] = field(default_factory=dict)
    effort: EffortLevel | None = None
    temperature: float | None = None
    # OpenAI-compatible servers that leave tool-call markup in `content` (issue #13): auto spots
    # the start markers, a format name parses all content as that format, none passes it verbatim.
    tool_format: ToolFormat = "auto"
    # extensions (kcode.extensions): --trust-project, and Kimi-style [[hooks]] tables (each entry
    # is checked where it is used, with a warning, so one bad hook does not stop kcode)
    trust_project: bool = False
    hooks: list[Any] = field(default_factory=list)
    # [mcp_servers.NAME] tables, the `mcpServers` shape (kcode.mcp.config checks each entry)
    mcp_servers: dict[str, Any] = field(default_factory=dict)
    # local llama.cpp backend, issue #13 (kept last so merges stay clean)
    max_output_tokens: int = 4096  # tokens one local model call may write
    kv_cache_mb: int | None = None  # KV cache budget for the automatic n_ctx; None: RAM/4, <= 4 GiB

    FIELDS: ClassVar[tuple[str, ...]]  # the setting names, in declaration order (set below)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """Checked and converted values; SettingsError listing every problem in field order."""
        values: dict[str, Any] = {}
        errors: list[FieldError] = []
        for name, spec in SPECS.items():
            if name not in data:
                continue
            try:
                values[name] = _coerce(data[name], name, spec)
            except FieldError as err:
                errors.append(err)
            except FieldErrors as many:
                errors.extend(many.errors)
        errors.extend(
            FieldError(k, "Extra inputs are not permitted") for k in data if k not in SPECS
        )
        if errors:
            raise SettingsError(errors)
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` checked like a config value; SettingsError when one is invalid."""
        checked = {name: coerce_setting(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **checked)

    def as_dict(self) -> dict[str, Any]:
        """The plain values (rule lists as a dict), for `config show` and comparisons."""
        out = {name: getattr(self, name) for name in Settings.FIELDS}
        out["rules"] = self.rules.as_dict()
        return out


class SettingsError(ValueError):
    """Every invalid value found by Settings.from_mapping; `problems` holds (loc, msg) pairs."""

    def __init__(self, problems: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in problems))
        self.problems = problems


@dataclass(frozen=True)
class _Spec:
    kind: str  # str int float bool list literal rules limits prices tables table
    optional: bool = False
    choices: tuple[str, ...] = ()
    ge: float | None = None
    le: float | None = None
    gt: float | None = None


SPECS: dict[str, _Spec] = {
    "backend": _Spec("literal", optional=True, choices=BACKENDS),
    "model": _Spec("str"),
    "base_url": _Spec("str"),
    "api_key": _Spec("str"),
    "approval": _Spec("literal", optional=True, choices=APPROVAL_MODES),
    "sandbox": _Spec("literal", optional=True, choices=SANDBOX_MODES),
    "max_steps": _Spec("int", ge=1),
    "max_parallel": _Spec("int", ge=1, le=128),
    "output_format": _Spec("literal", choices=OUTPUT_FORMATS),
    "thinking": _Spec("bool", optional=True),
    "timeout_s": _Spec("float", optional=True, gt=0),
    "context_window": _Spec("int", ge=1024),
    "script": _Spec("str"),
    "n_ctx": _Spec("int", optional=True, ge=256),
    "n_threads": _Spec("int", optional=True),
    "n_gpu_layers": _Spec("int"),
    "mmproj": _Spec("str"),
    "strict_tools": _Spec("bool"),
    "add_dirs": _Spec("list"),
    "rules": _Spec("rules"),
    "auto_commit": _Spec("bool"),
    "allow_secrets": _Spec("bool"),
    "allow_network": _Spec("bool"),
    "trusted": _Spec("list"),
    "limits": _Spec("limits"),
    "prices": _Spec("prices"),
    "effort": _Spec("literal", optional=True, choices=EFFORT_LEVELS),
    "temperature": _Spec("float", optional=True, ge=0, le=2),
    "tool_format": _Spec("literal", choices=get_args(ToolFormat)),
    "trust_project": _Spec("bool"),
    "hooks": _Spec("tables"),
    "mcp_servers": _Spec("table"),
    "max_output_tokens": _Spec("int", ge=16),
    "kv_cache_mb": _Spec("int", optional=True, ge=16),
}
Settings.FIELDS = tuple(f.name for f in dataclasses.fields(Settings))

_NONE_MESSAGES = {"str": "a valid string", "int": "a valid integer", "float": "a valid number",
                  "bool": "a valid boolean", "list": "a valid list"}  # fmt: skip


def _coerce(value: Any, loc: str, spec: _Spec) -> Any:
    if value is None:
        if spec.optional:
            return None
        if spec.kind in _NONE_MESSAGES:
            raise FieldError(loc, f"Input should be {_NONE_MESSAGES[spec.kind]}")
    converted: Any
    if spec.kind == "str":
        converted = as_str(value, loc)
    elif spec.kind == "int":
        converted = as_int(value, loc)
    elif spec.kind == "float":
        converted = as_float(value, loc)
    elif spec.kind == "bool":
        converted = as_bool(value, loc)
    elif spec.kind == "list":
        converted = as_str_list(value, loc)
    elif spec.kind == "literal":
        converted = as_literal(value, loc, spec.choices)
    elif spec.kind in ("limits", "prices"):
        converted = _as_budget_table(value, loc, spec.kind)
    elif spec.kind == "tables":  # entries are checked where used (kcode.extensions), with warnings
        if not isinstance(value, list):
            raise FieldError(loc, "Input should be a valid list")
        converted = list(value)
    elif spec.kind == "table":
        converted = as_table(value, loc)
    else:
        converted = _as_rules(value, loc)
    # pydantic checks `le` before `ge`: only a NaN fails both, and it gets the `le` message.
    if spec.le is not None and not converted <= spec.le:
        raise FieldError(loc, f"Input should be less than or equal to {spec.le:g}")
    if spec.ge is not None and not converted >= spec.ge:
        raise FieldError(loc, f"Input should be greater than or equal to {spec.ge:g}")
    if spec.gt is not None and not converted > spec.gt:
        raise FieldError(loc, f"Input should be greater than {spec.gt:g}")
    return converted


def _as_rules(value: Any, loc: str) -> RuleLists:
    if isinstance(value, RuleLists):
        return value
    if not isinstance(value, dict):
        raise FieldError(loc, "Input should be a valid dictionary or instance of RuleLists")
    errors: list[FieldError] = []
    lists: dict[str, list[str]] = {}
    for key in ("allow", "ask", "deny"):  # field order first, as the messages always came
        if key not in value:
            continue
        try:
            lists[key] = as_str_list(value[key], f"{loc}.{key}")
        except FieldError as err:
            errors.append(err)
        except FieldErrors as many:
            errors.extend(many.errors)
    extra = [k for k in value if k not in ("allow", "ask", "deny")]
    errors.extend(FieldError(f"{loc}.{k}", "Extra inputs are not permitted") for k in extra)
    if errors:
        raise FieldErrors(errors)
    return RuleLists(**lists)


def _as_budget_table(value: Any, loc: str, kind: str) -> dict[str, Any]:
    """`[limits]` and `[prices."model"]`: checked here so a bad entry fails at load time with a
    message naming it (the values stay plain dicts; kcode.agents.budget/prices read them)."""
    from kcode.agents.budget import BudgetError, parse_limits
    from kcode.agents.prices import PriceError, parse_prices

    try:
        if kind == "limits":
            parse_limits(value)
        else:
            parse_prices(value)
    except (BudgetError, PriceError) as err:
        raise FieldError(loc, str(err)) from None
    return dict(value)


def coerce_setting(name: str, value: Any) -> Any:
    """One setting's value checked and converted as Settings.from_mapping would; SettingsError if
    not. For `replace`, and for comparing a value before the layers are merged (kcode.config.repo)."""
    spec = SPECS.get(name)
    if spec is None:
        raise SettingsError([FieldError(name, "Extra inputs are not permitted")])
    try:
        return _coerce(value, name, spec)
    except FieldError as err:
        raise SettingsError([err]) from err
    except FieldErrors as many:
        raise SettingsError(many.errors) from many
