"""What a repository's own `.kcode/config.toml` may set (issues #11 and #16).

Whoever wrote the repository wrote that file, so it may only make a run stricter: an explicit
allowlist of keys (REPO_MAY_SET), and for ordered settings only the stricter value. Every other key
or value is dropped and reported in the config's warnings, naming the key and the file, unless the
user lists the repository in `trusted` in their own config. Some keys are the user's alone, trusted
repository or not (REPO_NEVER_SETS), and budgets only ever tighten (`[limits]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcode.config.schema import (
    APPROVAL_STRICTNESS,
    SANDBOX_STRICTNESS,
    SettingsError,
    coerce_setting,
)

# An allowlist, so a setting added later is refused from a repo until someone decides it can only
# tighten a run.
REPO_ORDERED: dict[str, tuple[str, ...]] = {
    "approval": APPROVAL_STRICTNESS,
    "sandbox": SANDBOX_STRICTNESS,
}
REPO_LOWER_ONLY = ("max_steps", "max_parallel", "timeout_s")  # lower = stricter
REPO_OFF_ONLY = ("allow_secrets", "allow_network", "auto_commit")  # false = stricter
REPO_MAY_SET = frozenset({*REPO_ORDERED, *REPO_LOWER_ONLY, *REPO_OFF_ONLY, "rules", "limits"})
# Not even a trusted repo: trust is the user's to give.
# [[hooks]] too: a project's hooks live in .kcode/hooks.json (trust-gated, added to the user's);
# a repo's MCP servers go in .mcp.json (trust-gated) and never replace the user's.
# prices: a repo that prices its model at 0 would turn --max-cost / [limits] max_cost off.
REPO_NEVER_SETS = frozenset({"trusted", "trust_project", "hooks", "mcp_servers", "prices"})
_NEVER_WHY = {
    "prices": "what a model costs is for your user config to say (a price of 0 would lift "
    "--max-cost)",
}
_HINT = "add this repository to `trusted` in your user config to honour it"


def restrict_repo_layer(
    layer: dict[str, Any],
    path: Path,
    current: dict[str, Any],
    trusted: bool,
    warnings: list[str],
) -> None:
    """Drop from `layer` (in place) whatever would loosen the run; `current` is the user's layer
    over the defaults (see `user_values`). Each drop adds one warning naming the key, the file and
    why."""
    for key in list(layer):
        value = layer[key]
        if key in REPO_NEVER_SETS:
            why = _NEVER_WHY.get(key, "only your user config may set it")
            warnings.append(f"{path}: ignored {key}; {why}")
            del layer[key]
        elif key == "limits":  # a budget protects the user's money: tighten only, trusted or not
            kept = _tighter_limits(value, path, current.get("limits") or {}, warnings)
            if kept:
                layer[key] = kept
            else:
                del layer[key]
        elif trusted:
            continue
        elif key not in REPO_MAY_SET:
            warnings.append(
                f"{path}: ignored {key}; a repository's config may only make a run stricter "
                f"({_HINT})"
            )
            del layer[key]
        elif key == "rules":
            if isinstance(value, dict) and value.get("allow"):
                warnings.append(f"{path}: ignored its allow rules; only ask/deny apply ({_HINT})")
                layer["rules"] = {k: v for k, v in value.items() if k != "allow"}
        else:
            why = _loosens(key, value, current.get(key))
            if why:
                warnings.append(f"{path}: ignored {key} = {value!r}; {why} ({_HINT})")
                del layer[key]


def user_values(merged: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The user's value (converted) over the default, for every key a repo may set; an invalid
    one falls back to the default here and fails the run later anyway."""
    out: dict[str, Any] = {}
    for key in REPO_MAY_SET:
        out[key] = defaults.get(key)
        if merged.get(key) is not None:
            try:
                out[key] = coerce_setting(key, merged[key])
            except SettingsError:
                pass
    return out


def _loosens(key: str, value: Any, current: Any) -> str:
    """Why setting `key` to `value` over `current` would loosen the run, or "" when it does not.

    A value that does not validate is let through: Settings.from_mapping then fails the run with
    a message naming the file, which is stricter than running."""
    try:
        new = coerce_setting(key, value)
    except SettingsError:
        return ""
    if new is None:
        return f"a repository's config may not unset {key}"
    if key in REPO_ORDERED:
        order = REPO_ORDERED[key]
        if current is None:  # sandbox: the automatic default, a sandbox wherever one can start
            if new == "off":
                return f"a repository's config may not turn {key} off"
        elif order.index(new) > order.index(current):
            return f"a repository's config may not loosen {key} (effective: {current!r})"
    elif key in REPO_LOWER_ONLY:
        if current is not None and new > current:
            return f"a repository's config may only lower {key} (effective: {current!r})"
    elif key in REPO_OFF_ONLY and new:
        return f"a repository's config may only turn {key} off"
    return ""


def _tighter_limits(value: Any, path: Path, current: dict[str, Any], warnings: list[str]) -> Any:
    """The caps of a repo's `[limits]` that add a cap or lower the user's; a raised one is dropped
    with a warning. Flags (--max-tokens, --max-cost) come later and still override: they are the
    user's own choice for this run. An entry that does not parse is kept: validation then fails
    the run naming it, which is stricter than running."""
    if not isinstance(value, dict):
        return value
    from kcode.agents.budget import BudgetError, parse_max_cost, parse_max_tokens

    parsers = {"max_tokens": parse_max_tokens, "max_cost": parse_max_cost}
    kept: dict[str, Any] = {}
    for key, cap in value.items():
        parse = parsers.get(key)
        mine = current.get(key)
        if parse is None or mine is None:
            kept[key] = cap
            continue
        try:
            raises = parse(cap) > parse(mine)
        except BudgetError:
            kept[key] = cap
            continue
        if raises:
            warnings.append(
                f"{path}: ignored [limits] {key} = {cap!r}; a repository's config may only lower "
                f"a budget (effective: {mine!r})"
            )
        else:
            kept[key] = cap
    return kept
