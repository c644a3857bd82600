"""How one setting's value is checked and converted, in pydantic's lax mode and with its messages.

kcode.config.schema used to be a pydantic model; importing pydantic cost more than drawing the REPL
prompt, so the conversions are spelled out here. They accept what pydantic accepted from a TOML
file, the environment or a flag, and fail with the message it gave (tests/core/test_config_schema.py
compares both), so `invalid configuration: ...` errors read as they always did.
"""

from __future__ import annotations

import math
import re
from typing import Any

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


def as_str(value: Any, loc: str) -> str:
    if isinstance(value, str):
        return value
    raise FieldError(loc, "Input should be a valid string")


def as_int(value: Any, loc: str) -> int:
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


def as_float(value: Any, loc: str) -> float:
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


def as_bool(value: Any, loc: str) -> bool:
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


def as_str_list(value: Any, loc: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise FieldError(loc, "Input should be a valid list")
    errors = [FieldError(f"{loc}.{i}", "Input should be a valid string")
              for i, item in enumerate(value) if not isinstance(item, str)]  # fmt: skip
    if errors:
        raise FieldErrors(errors)
    return list(value)


def as_literal(value: Any, loc: str, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    quoted = [repr(c) for c in choices]
    raise FieldError(loc, f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}")


class FieldErrors(Exception):
    """Several invalid values at once: a list's items, a table's keys."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def as_table(value: Any, loc: str) -> dict[str, Any]:
    """A table of tables (`[mcp_servers.NAME]`); the entries are checked by their own module."""
    if not isinstance(value, dict):
        raise FieldError(loc, "Input should be a valid dictionary")
    bad = [FieldError(f"{loc}.{k}", "Input should be a valid dictionary")
           for k, v in value.items() if not isinstance(v, dict)]  # fmt: skip
    if bad:
        raise FieldErrors(bad)
    return dict(value)
