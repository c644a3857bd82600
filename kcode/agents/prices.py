"""What a model's tokens cost: a small built-in table, overridable per model in the config.

Prices are US dollars per million tokens, split as the providers bill them: uncached prompt
tokens (`input`), prompt tokens served from the provider's prompt cache (`cached_input`) and
completion tokens (`output`, reasoning tokens included: they are billed as output). The built-in
figures are the providers' list prices when this table was written; a user whose contract differs
overrides them in config.toml:

    [prices."kimi-k2.5"]
    input = 0.60
    cached_input = 0.10
    output = 3.00

A model found neither in the config nor in the table has no price: kcode then shows its tokens
only (cost null), and refuses `--max-cost`, which it could not enforce. The local llama.cpp
backend costs nothing (price 0 for every model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PER_TOKENS = 1_000_000


@dataclass(frozen=True)
class Price:
    input: float
    cached_input: float
    output: float

    def cost(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        cached = min(max(cached_tokens, 0), max(prompt_tokens, 0))
        uncached = max(prompt_tokens, 0) - cached
        return (
            uncached * self.input + cached * self.cached_input + completion_tokens * self.output
        ) / PER_TOKENS


FREE = Price(0.0, 0.0, 0.0)

# Keys are lower-case model names; a served name that starts with a key matches it (the longest
# key wins: "gpt-4o-mini-2024-07-18" is gpt-4o-mini, not gpt-4o).
BUILTIN_PRICES: dict[str, Price] = {
    # Moonshot (api.moonshot.ai), automatic context caching
    "kimi-k2.5": Price(0.60, 0.10, 3.00),
    "kimi-k2-thinking": Price(0.60, 0.15, 2.50),
    "kimi-k2-turbo-preview": Price(1.15, 0.15, 8.00),
    "kimi-k2-0905-preview": Price(0.60, 0.15, 2.50),
    # OpenAI
    "gpt-5": Price(1.25, 0.125, 10.00),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "o4-mini": Price(1.10, 0.275, 4.40),
}
PRICE_FIELDS = ("input", "cached_input", "output")


class PriceError(ValueError):
    """A `[prices."model"]` entry that cannot be used; the message names the model and field."""


def parse_price(model: str, raw: Any) -> Price:
    """One config entry. `cached_input` defaults to `input` (a provider without a cache discount)."""
    where = f'[prices."{model}"]'
    if not isinstance(raw, Mapping):
        raise PriceError(f"{where} must be a table: input = 0.6, cached_input = 0.1, output = 3")
    unknown = sorted(set(raw) - set(PRICE_FIELDS))
    if unknown:
        raise PriceError(
            f"{where}: unknown field(s) {', '.join(unknown)}; use {', '.join(PRICE_FIELDS)} "
            "(USD per million tokens)"
        )
    values: dict[str, float] = {}
    for name in PRICE_FIELDS:
        if name not in raw:
            continue
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PriceError(f"{where} {name} = {value!r}: not a number (USD per million tokens)")
        if not math.isfinite(value) or value < 0:
            raise PriceError(f"{where} {name} = {value!r}: must be a finite number >= 0")
        values[name] = float(value)
    for name in ("input", "output"):
        if name not in values:
            raise PriceError(f"{where}: `{name}` is missing (USD per million tokens)")
    return Price(values["input"], values.get("cached_input", values["input"]), values["output"])


def parse_prices(raw: Any) -> dict[str, Price]:
    """The whole `[prices]` table from the config; PriceError on the first bad entry."""
    if not isinstance(raw, Mapping):
        raise PriceError('`prices` must be a table of tables: [prices."model-name"] ...')
    return {str(model).lower(): parse_price(str(model), entry) for model, entry in raw.items()}


class PriceTable:
    """Looks prices up by model name: config overrides first, then the built-in table."""

    def __init__(self, overrides: Mapping[str, Price] | None = None, *, local: bool = False):
        self.overrides = {k.lower(): v for k, v in (overrides or {}).items()}
        self.local = local
        self._cache: dict[str, Price | None] = {}

    def lookup(self, model: str) -> Price | None:
        if self.local:
            return FREE
        if model not in self._cache:
            self._cache[model] = self._find(model)
        return self._cache[model]

    def _find(self, model: str) -> Price | None:
        name = model.lower().rsplit("/", 1)[-1]  # "moonshotai/kimi-k2.5" is kimi-k2.5
        for table in (self.overrides, BUILTIN_PRICES):
            for candidate in (model.lower(), name):
                if candidate in table:
                    return table[candidate]
        for table in (self.overrides, BUILTIN_PRICES):
            keys = [k for k in table if name.startswith(k)]
            if keys:
                return table[max(keys, key=len)]
        return None
