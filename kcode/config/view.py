"""`kcode config show`'s values in the config file's own spelling, not Python reprs."""

from __future__ import annotations

from typing import Any

from kcode.config.schema import RuleLists


def setting_text(value: Any) -> str:
    """`true`, `a, b`, `allow: x; deny: y` — and `-` for unset or empty."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, RuleLists):
        value = value.as_dict()
    if isinstance(value, dict):
        parts = [f"{k}: {setting_text(v)}" for k, v in value.items() if v not in (None, [], "")]
        return "; ".join(parts) or "-"
    if isinstance(value, list | tuple | set):
        return ", ".join(setting_text(v) for v in value) or "-"
    return str(value)
