"""The plain-Python Settings validates exactly like the pydantic model it replaced.

The reference model below is the old definition, verbatim; pydantic stays a dependency of the tests
only. Values are drawn from what TOML, the environment and flags can produce.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kcode.config_schema import SPECS, Settings, SettingsError


class RuleLists(BaseModel):  # the old name: it appears in one message
    model_config = ConfigDict(extra="forbid")
    allow: list[str] = Field(default_factory=list)
    ask: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


class RefSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["openai", "llama-cpp", "scripted"] | None = None
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    approval: Literal["ask", "auto-edit", "auto", "read-only", "plan"] | None = None
    sandbox: Literal["off", "workspace-write", "read-only"] | None = None
    max_steps: int = Field(default=100, ge=1)
    max_parallel: int = Field(default=8, ge=1, le=128)
    output_format: Literal["text", "json", "stream-json"] = "text"
    thinking: bool | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    context_window: int = Field(default=131_072, ge=1024)
    script: str = ""
    n_ctx: int | None = Field(default=None, ge=256)
    n_threads: int | None = None
    n_gpu_layers: int = 0
    mmproj: str = ""
    strict_tools: bool = False
    add_dirs: list[str] = Field(default_factory=list)
    rules: RuleLists = Field(default_factory=RuleLists)
    auto_commit: bool = False
    allow_secrets: bool = False
    allow_network: bool = False
    trusted: list[str] = Field(default_factory=list)
    # issue #16. `limits` and `prices` are checked by kcode.agents.budget/prices (their own
    # messages; tests/agents/test_budget.py), so the comparison below leaves them out.
    limits: dict[str, Any] = Field(default_factory=dict)
    prices: dict[str, Any] = Field(default_factory=dict)
    effort: Literal["low", "medium", "high"] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_format: Literal[
        "auto", "none", "hermes", "kimi", "qwen3-coder", "qwen3_coder", "llama3", "mistral"
    ] = "auto"

    trust_project: bool = False
    hooks: list[Any] = Field(default_factory=list)

    mcp_servers: dict[str, dict[str, Any]] = Field(default_factory=dict)

    max_output_tokens: int = Field(default=4096, ge=16)
    kv_cache_mb: int | None = Field(default=None, ge=16)


COMPARED = [name for name in SPECS if name not in ("limits", "prices")]


def outcome_ours(data: dict[str, Any]) -> Any:
    try:
        return ("ok", Settings.model_validate(data).model_dump())
    except SettingsError as err:
        return ("error", [(".".join(e["loc"]), e["msg"]) for e in err.errors()])


def outcome_reference(data: dict[str, Any]) -> Any:
    try:
        return ("ok", RefSettings.model_validate(data).model_dump())
    except ValidationError as err:
        return ("error", [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in err.errors()])


NUMBER_TEXT = st.sampled_from(
    ["5", " 7 ", "+5", "-0", "1_000", "5.0", "5.5", "1e3", "0x10", "", " ", "inf", "nan", "-1",
     "0", "1", "128", "129", "1023", "1024", "2.5", ".5", "5.", "1__0", "_1", "yes", "no", "TRUE",
     "off", "On", "y", "t", "maybe", "٣", "1_0.5"]
)  # fmt: skip
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-5, 300),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 0.5, 2.0, 5.0, 128.0, 1024.0]),
    NUMBER_TEXT,
    st.text(max_size=6),
    st.sampled_from(
        [
            "ask",
            "auto",
            "auto-edit",
            "read-only",
            "openai",
            "scripted",
            "llama-cpp",
            "off",
            "workspace-write",
            "text",
            "json",
            "stream-json",
            "Ask",
        ]
    ),
    st.just(datetime.date(2024, 1, 2)),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(st.one_of(st.text(max_size=4), st.integers(0, 3)), max_size=3),
    st.dictionaries(
        st.sampled_from(["allow", "ask", "deny", "other"]),
        st.one_of(
            st.lists(st.one_of(st.text(max_size=4), st.integers(0, 3)), max_size=2),
            st.text(max_size=3),
        ),
        max_size=3,
    ),
)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from([*COMPARED, "unknown_key"]), VALUES, max_size=4))
def test_validation_matches_the_pydantic_model(data: dict[str, Any]) -> None:
    assert outcome_ours(data) == outcome_reference(data)


def test_every_field_and_default_matches() -> None:
    assert list(SPECS) == list(RefSettings.model_fields)
    assert Settings().model_dump() == RefSettings().model_dump()
    assert outcome_ours({}) == outcome_reference({})


def test_copy_with_update_and_attribute_access() -> None:
    base = Settings.model_validate({"model": "m", "rules": {"deny": ["shell(rm*)"]}})
    copy = base.model_copy(update={"model": "other"})
    assert (copy.model, base.model, copy.rules.deny) == ("other", "m", ["shell(rm*)"])
