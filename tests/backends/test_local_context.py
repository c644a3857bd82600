"""n_ctx from the GGUF: the trained context, capped by what the KV cache needs in memory."""

from __future__ import annotations

from pathlib import Path

from kcode.backends.llama.local_context import kv_bytes_per_token, plan_context
from kcode.backends.llama.models import GgufInfo

# The metadata of the two real models (read from their GGUFs).
SMOLLM2 = {
    "context_length": 8192, "block_count": 30, "embedding_length": 576,
    "attention.head_count": 9, "attention.head_count_kv": 3,
}  # fmt: skip
GEMMA3_270M = {
    "context_length": 32768, "block_count": 18, "embedding_length": 640,
    "attention.head_count": 4, "attention.head_count_kv": 1,
    "attention.key_length": 256, "attention.value_length": 256,
}  # fmt: skip


def info(numbers: dict[str, int | list[int]]) -> GgufInfo:
    return GgufInfo(Path("m.gguf"), "llama", 1, None, "m", numbers)


def test_kv_bytes_follow_layers_heads_and_head_dims() -> None:
    assert kv_bytes_per_token(info(SMOLLM2)) == 2 * 30 * 3 * (64 + 64)
    assert kv_bytes_per_token(info(GEMMA3_270M)) == 2 * 18 * 1 * (256 + 256)
    per_layer = {**SMOLLM2, "attention.head_count_kv": [3, 0] * 15}  # e.g. attention-free layers
    assert kv_bytes_per_token(info(per_layer)) == 2 * 15 * 3 * 128


def test_trained_context_when_it_fits_the_budget() -> None:
    plan = plan_context(info(GEMMA3_270M), None, budget_mb=1024)
    assert (plan.n_ctx, plan.trained, plan.configured) == (32768, 32768, False)
    assert "trained context" in plan.describe()


def test_budget_caps_the_context() -> None:
    plan = plan_context(info(GEMMA3_270M), None, budget_mb=256)
    assert plan.n_ctx == (256 << 20) // (2 * 18 * 512) // 256 * 256 < 32768
    assert "kv_cache_mb" in plan.describe()


def test_configured_context_wins_and_unknown_models_get_a_default() -> None:
    assert plan_context(info(SMOLLM2), 1024).n_ctx == 1024
    assert plan_context(info({}), None).n_ctx == 4096
