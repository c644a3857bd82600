"""How many tokens of context a local model gets: what it was trained for, if memory allows.

`n_ctx` unset: the model's trained context (`<arch>.context_length` in the GGUF), capped so the
KV cache fits a memory budget. The KV cache holds, per token and per layer, one key and one value
vector per KV head, in f16 (llama.cpp's default cache type):

    bytes/token = 2 * sum over layers of head_count_kv * (key_length + value_length)

with key/value length defaulting to embedding_length / head_count. This is an upper bound:
sliding-window layers (Gemma 3) keep fewer cells. The budget (`kv_cache_mb`) defaults to a quarter
of the machine's memory, at most 4 GiB. `n_ctx` set: exactly that (llama.cpp warns when it exceeds
the trained context).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kcode.backends.llama.models import GgufInfo

DEFAULT_BUDGET_CAP = 4 << 30
UNKNOWN_TRAINED_CONTEXT = 4096  # a GGUF that does not say
MIN_AUTO_CONTEXT = 2048  # below this kcode's own system prompt does not fit; better a memory risk
F16_BYTES = 2


@dataclass(frozen=True)
class ContextPlan:
    n_ctx: int
    trained: int  # 0 when the GGUF does not say
    kv_bytes_per_token: int
    budget_bytes: int
    configured: bool  # n_ctx was set by the user

    def describe(self) -> str:
        """For messages: where the context size came from."""
        if self.configured:
            return f"n_ctx = {self.n_ctx} from the config"
        if self.trained and self.n_ctx < self.trained:
            return (
                f"n_ctx = {self.n_ctx}, the trained {self.trained} capped by the KV cache "
                f"budget of {self.budget_bytes >> 20} MB (kv_cache_mb)"
            )
        return f"n_ctx = {self.n_ctx}, the model's trained context"


def _number(info: GgufInfo, key: str, default: int = 0) -> int:
    value = info.numbers.get(key)
    if isinstance(value, list):
        return max(value) if value else default
    return int(value) if value is not None else default


def kv_bytes_per_token(info: GgufInfo) -> int:
    layers = _number(info, "block_count")
    heads = _number(info, "attention.head_count")
    embedding = _number(info, "embedding_length")
    head_dim = embedding // heads if heads else 0
    key_length = _number(info, "attention.key_length", head_dim)
    value_length = _number(info, "attention.value_length", head_dim)
    kv_heads = info.numbers.get("attention.head_count_kv", heads)
    per_layer = kv_heads if isinstance(kv_heads, list) else [int(kv_heads)] * layers
    return F16_BYTES * sum(n * (key_length + value_length) for n in per_layer[:layers])


def default_budget_bytes() -> int:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_BUDGET_CAP
    return min(DEFAULT_BUDGET_CAP, memory // 4)


def plan_context(
    info: GgufInfo, configured: int | None = None, budget_mb: int | None = None
) -> ContextPlan:
    trained = _number(info, "context_length")
    per_token = kv_bytes_per_token(info)
    budget = (budget_mb << 20) if budget_mb else default_budget_bytes()
    if configured:
        return ContextPlan(configured, trained, per_token, budget, True)
    wanted = trained or UNKNOWN_TRAINED_CONTEXT
    fits = budget // per_token if per_token else wanted
    n_ctx = min(wanted, max(fits // 256 * 256, MIN_AUTO_CONTEXT))
    return ContextPlan(n_ctx, trained, per_token, budget, False)
