"""The `Settings` record and its validation, in plain Python.

This used to be a pydantic model; importing pydantic (and its plugin scan) cost more than drawing the
REPL prompt, so validation is spelled out here. It keeps pydantic's lax-mode rules and messages for
every input a TOML file, the environment or a flag can produce (tests/core/test_config_schema.py
checks that against pydantic itself), so `invalid configuration: ...` errors read as before.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

BackendName = Literal["openai", "llama-cpp", "scripted"]
ApprovalMode = Literal["ask", "auto-edit", "auto", "read-only"]
SandboxMode = Literal["off", "workspace-write", "read-only"]
OutputFormat = Literal["text", "json", "stream-json"]

_INT_TEXT = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?")
_FLOAT_TEXT = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:_[0-9]+)*)?\.?[0-9]*(?:_[0-9]+)*(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE,
)
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


class FieldError(Exception):
    """One invalid value: `loc` is the dotted path pydantic would report, `msg` its message."""

    def __init__(self, loc: str, msg: str) -> None:
        super().__init__(f"{loc}: {msg}")
        self.loc = loc
        self.msg = msg


@dataclass(frozen=True)
class _Spec:
    kind: str  # str | int | float | bool | list | literal | rules
    optional: bool = False
    choices: tuple[str, ...] = ()
    ge: float | None = None
    le: float | None = None
    gt: float | None = None


def _as_str(value: Any, loc: str) -> str:
    if isinstance(value, str):
        return value
    raise FieldError(loc, "Input should be a valid string")


def _as_int(value: Any, loc: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(loc, "Input should be a finite number")
        if not value.is_integer():
            raise FieldError(
                loc, "Input should be a valid integer, got a number with a fractional part"
            )
        if not -(2**63) <= value < 2**63:  # pydantic converts floats through a 64-bit integer
            raise FieldError(
                loc, "Unable to parse input string as an integer, exceeded maximum size"
            )
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            return int(text.split(".", 1)[0])
        raise FieldError(
            loc, "Input should be a valid integer, unable to parse string as an integer"
        )
    raise FieldError(loc, "Input should be a valid integer")


def _as_float(value: Any, loc: str) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _FLOAT_TEXT.fullmatch(text):
            try:
                return float(text)
            except ValueError:
                pass
        raise FieldError(loc, "Input should be a valid number, unable to parse string as a number")
    raise FieldError(loc, "Input should be a valid number")


def _in_i64(value: Any) -> bool:
    """An integral number pydantic can hold as a 64-bit integer (its messages differ outside)."""
    if isinstance(value, float) and not value.is_integer():
        return False
    return isinstance(value, int | float) and -(2**63) <= value < 2**63


def _as_bool(value: Any, loc: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, float) and value in (0.0, 1.0):
        return bool(value)
    if isinstance(value, str):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
    if isinstance(value, str) or _in_i64(value):
        raise FieldError(loc, "Input should be a valid boolean, unable to interpret input")
    raise FieldError(loc, "Input should be a valid boolean")


def _as_str_list(value: Any, loc: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise FieldError(loc, "Input should be a valid list")
    errors = [FieldError(f"{loc}.{i}", "Input should be a valid string")
              for i, item in enumerate(value) if not isinstance(item, str)]  # fmt: skip
    if errors:
        raise _Many(errors)
    return list(value)


def _as_literal(value: Any, loc: str, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    quoted = [repr(c) for c in choices]
    raise FieldError(loc, f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}")


class _Many(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass
class RuleLists:
    """Approval rules (kcode.rules): `shell(git diff*)`, `edit(src/**)`, `read(.env)`."""

    allow: list[str] = field(default_factory=list)
    ask: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)

    def model_dump(self) -> dict[str, list[str]]:
        return {"allow": list(self.allow), "ask": list(self.ask), "deny": list(self.deny)}


def _as_rules(value: Any, loc: str) -> RuleLists:
    if isinstance(value, RuleLists):
        return value
    if not isinstance(value, dict):
        raise FieldError(loc, "Input should be a valid dictionary or instance of RuleLists")
    errors: list[FieldError] = []
    lists: dict[str, list[str]] = {}
    for key in ("allow", "ask", "deny"):  # field order first, like pydantic
        if key not in value:
            continue
        try:
            lists[key] = _as_str_list(value[key], f"{loc}.{key}")
        except FieldError as err:
            errors.append(err)
        except _Many as many:
            errors.extend(many.errors)
    extra = [k for k in value if k not in ("allow", "ask", "deny")]
    errors.extend(FieldError(f"{loc}.{k}", "Extra inputs are not permitted") for k in extra)
    if errors:
        raise _Many(errors)
    return RuleLists(**lists)


def _as_table(value: Any, loc: str) -> dict[str, Any]:
    """A table of tables (`[mcp_servers.NAME]`); the entries are checked by their own module."""
    if not isinstance(value, dict):
        raise FieldError(loc, "Input should be a valid dictionary")
    bad = [FieldError(f"{loc}.{k}", "Input should be a valid dictionary")
           for k, v in value.items() if not isinstance(v, dict)]  # fmt: skip
    if bad:
        raise _Many(bad)
    return dict(value)


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
    # safety (see kcode.rules, kcode.sandbox, kcode.secrets, kcode.vcs.checkpoints)
    rules: RuleLists = field(default_factory=RuleLists)
    auto_commit: bool = False  # one git commit per turn
    allow_secrets: bool = False  # let read_file/grep read .env, keys and credential files
    allow_network: bool = False  # network inside the shell sandbox
    trusted: list[str] = field(default_factory=list)  # repos whose .kcode/config.toml may allow
    # issue #16: run budgets ([limits] max_tokens, max_cost; --max-tokens/--max-cost), price
    # overrides ([prices."model"] input, cached_input, output per million tokens), --effort, and a
    # sampling temperature that replaces the per-model default (Kimi K2.5: 1.0 thinking, 0.6 not).
    limits: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, Any] = field(default_factory=dict)
    effort: str | None = None
    temperature: float | None = None
    # OpenAI-compatible servers that leave tool-call markup in `content` (issue #13): auto spots
    # the start markers, a format name parses all content as that format, none passes it verbatim.
    tool_format: str = "auto"
    # extensions (kcode.extensions): --trust-project, and Kimi-style [[hooks]] tables
    trust_project: bool = False
    hooks: list[dict[str, Any]] = field(default_factory=list)
    # [mcp_servers.NAME] tables, the `mcpServers` shape (kcode.mcp.config checks each entry)
    mcp_servers: dict[str, Any] = field(default_factory=dict)
    # local llama.cpp backend, issue #13 (kept last so merges stay clean)
    max_output_tokens: int = 4096  # tokens one local model call may write
    kv_cache_mb: int | None = None  # KV cache budget for the automatic n_ctx; None: RAM/4, <= 4 GiB

    # The field names, under the name pydantic gave them, so callers need not change.
    model_fields: ClassVar[dict[str, _Spec]]

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> Settings:
        """Checked and coerced values; raises SettingsError listing every problem in field order."""
        values: dict[str, Any] = {}
        errors: list[FieldError] = []
        for name, spec in SPECS.items():
            if name not in data:
                continue
            try:
                values[name] = _coerce(data[name], name, spec)
            except FieldError as err:
                errors.append(err)
            except _Many as many:
                errors.extend(many.errors)
        errors.extend(
            FieldError(k, "Extra inputs are not permitted") for k in data if k not in SPECS
        )
        if errors:
            raise SettingsError(errors)
        return cls(**values)

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Settings:
        """A copy with `update` applied as given (no validation, like pydantic's model_copy)."""
        return dataclasses.replace(self, **(update or {}))

    def model_dump(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in SPECS}
        out["rules"] = self.rules.model_dump()
        return out


class SettingsError(ValueError):
    """Every invalid value found by Settings.model_validate, as (loc, msg) pairs."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.field_errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return [{"loc": tuple(e.loc.split(".")), "msg": e.msg} for e in self.field_errors]


def _coerce(value: Any, loc: str, spec: _Spec) -> Any:
    if value is None:
        if spec.optional:
            return None
        none_messages = {"str": "a valid string", "int": "a valid integer", "float": "a valid number",
                         "bool": "a valid boolean", "list": "a valid list"}  # fmt: skip
        if spec.kind in none_messages:
            raise FieldError(loc, f"Input should be {none_messages[spec.kind]}")
    converted: Any
    if spec.kind == "str":
        converted = _as_str(value, loc)
    elif spec.kind == "int":
        converted = _as_int(value, loc)
    elif spec.kind == "float":
        converted = _as_float(value, loc)
    elif spec.kind == "bool":
        converted = _as_bool(value, loc)
    elif spec.kind == "list":
        converted = _as_str_list(value, loc)
    elif spec.kind == "literal":
        converted = _as_literal(value, loc, spec.choices)
    elif spec.kind in ("limits", "prices"):
        converted = _as_budget_table(value, loc, spec.kind)
    elif spec.kind == "tables":  # entries are checked where used (kcode.extensions), with warnings
        if not isinstance(value, list):
            raise FieldError(loc, "Input should be a valid list")
        converted = list(value)
    elif spec.kind == "table":
        converted = _as_table(value, loc)
    else:
        converted = _as_rules(value, loc)
    if spec.ge is not None and not converted >= spec.ge:
        raise FieldError(loc, f"Input should be greater than or equal to {spec.ge:g}")
    if spec.le is not None and not converted <= spec.le:
        raise FieldError(loc, f"Input should be less than or equal to {spec.le:g}")
    if spec.gt is not None and not converted > spec.gt:
        raise FieldError(loc, f"Input should be greater than {spec.gt:g}")
    return converted


SPECS: dict[str, _Spec] = {
    "backend": _Spec("literal", optional=True, choices=("openai", "llama-cpp", "scripted")),
    "model": _Spec("str"),
    "base_url": _Spec("str"),
    "api_key": _Spec("str"),
    "approval": _Spec(
        "literal", optional=True, choices=("ask", "auto-edit", "auto", "read-only", "plan")
    ),
    "sandbox": _Spec("literal", optional=True, choices=("off", "workspace-write", "read-only")),
    "max_steps": _Spec("int", ge=1),
    "max_parallel": _Spec("int", ge=1, le=128),
    "output_format": _Spec("literal", choices=("text", "json", "stream-json")),
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
    "effort": _Spec("literal", optional=True, choices=("low", "medium", "high")),
    "temperature": _Spec("float", optional=True, ge=0, le=2),
    "tool_format": _Spec(
        "literal",
        choices=(
            "auto",
            "none",
            "hermes",
            "kimi",
            "qwen3-coder",
            "qwen3_coder",
            "llama3",
            "mistral",
        ),
    ),
    "trust_project": _Spec("bool"),
    "hooks": _Spec("tables"),
    "mcp_servers": _Spec("table"),
    "max_output_tokens": _Spec("int", ge=16),
    "kv_cache_mb": _Spec("int", optional=True, ge=16),
}


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


Settings.model_fields = SPECS


def coerce_setting(name: str, value: Any) -> Any:
    """One setting's value checked and coerced as Settings.model_validate would; SettingsError if not.

    For comparing a value before the layers are merged (a repo config may only tighten a run)."""
    spec = SPECS.get(name)
    if spec is None:
        raise SettingsError([FieldError(name, "Extra inputs are not permitted")])
    try:
        return _coerce(value, name, spec)
    except FieldError as err:
        raise SettingsError([err]) from err
    except _Many as many:
        raise SettingsError(many.errors) from many
