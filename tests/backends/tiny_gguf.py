"""Write small random-weight llama GGUF models for the local-backend tests and benchmarks.

The vocabulary is SentencePiece-style with byte fallback: 256 byte tokens cover any text, a few
control tokens play the ChatML roles, and one user-defined token is longer than 32 bytes (the
size where llama-cpp-python's own detokenizer gives up). The weights are random, so the output is
noise unless a grammar constrains it; that is all the tests need.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, TokenType
from gguf.quants import quantize

from .sample_templates import HERMES_CHATML

LONG_TOKEN = "<|a_deliberately_long_marker_token_of_more_than_32_bytes|>"
CONTROL_TOKENS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
USER_TOKENS = ["<tool_call>", "</tool_call>", "<think>", "</think>", LONG_TOKEN]
IM_END_ID = CONTROL_TOKENS.index("<|im_end|>")


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    for token in CONTROL_TOKENS:
        tokens.append(token)
        scores.append(0.0)
        types.append(TokenType.UNKNOWN if token == "<unk>" else TokenType.CONTROL)
    for token in USER_TOKENS:
        tokens.append(token)
        scores.append(0.0)
        types.append(TokenType.USER_DEFINED)
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        scores.append(0.0)
        types.append(TokenType.BYTE)
    # A few whole pieces so ordinary text is not all byte tokens; "▁" is SentencePiece's space.
    pieces = ["▁", *"abcdefghijklmnopqrstuvwxyz", "▁the", "▁a", "name", "arguments", '{"', '":']
    for rank, piece in enumerate(pieces):
        tokens.append(piece)
        scores.append(-float(rank))
        types.append(TokenType.NORMAL)
    return tokens, scores, types


def write_llama_gguf(
    path: Path,
    *,
    n_embd: int = 64,
    n_layers: int = 2,
    n_ff: int = 128,
    n_head: int = 4,
    context_length: int = 2048,
    chat_template: str | None = HERMES_CHATML,
    quantization: GGMLQuantizationType = GGMLQuantizationType.F32,
    architecture: str = "llama",
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    writer = GGUFWriter(str(path), architecture)
    writer.add_name("kcode-test-model")
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(int(quantization))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(IM_END_ID)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    def add(name: str, rows: int, cols: int, *, norm: bool = False) -> None:
        if norm:
            writer.add_tensor(name, np.ones(cols, dtype=np.float32))
            return
        weights = rng.normal(0.0, 0.05, size=(rows, cols)).astype(np.float32)
        if quantization == GGMLQuantizationType.F32:
            writer.add_tensor(name, weights)
        else:
            writer.add_tensor(name, quantize(weights, quantization), raw_dtype=quantization)

    n_vocab = len(tokens)
    add("token_embd.weight", n_vocab, n_embd)
    for layer in range(n_layers):
        prefix = f"blk.{layer}"
        add(f"{prefix}.attn_norm.weight", 0, n_embd, norm=True)
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            add(f"{prefix}.{part}.weight", n_embd, n_embd)
        add(f"{prefix}.ffn_norm.weight", 0, n_embd, norm=True)
        add(f"{prefix}.ffn_gate.weight", n_ff, n_embd)
        add(f"{prefix}.ffn_up.weight", n_ff, n_embd)
        add(f"{prefix}.ffn_down.weight", n_embd, n_ff)
    add("output_norm.weight", 0, n_embd, norm=True)
    add("output.weight", n_vocab, n_embd)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
