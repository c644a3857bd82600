"""Write a tiny random-weight vision projector (mmproj) GGUF for the local vision tests.

A LLaVA-style CLIP encoder (projector type "mlp") small enough to write in milliseconds: 28x28
images in 14x14 patches (4 image tokens), 2 layers 32 wide, projected to the text model's width.
Its embeddings are noise; the tests only need llama.cpp's mtmd to load it and read images with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter


def write_mmproj_gguf(
    path: Path,
    *,
    text_width: int = 64,
    width: int = 32,
    feed_forward: int = 64,
    layers: int = 2,
    image_size: int = 28,
    patch_size: int = 14,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(str(path), "clip")
    writer.add_string("general.type", "mmproj")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_uint32("clip.vision.patch_size", patch_size)
    writer.add_uint32("clip.vision.embedding_length", width)
    writer.add_uint32("clip.vision.feed_forward_length", feed_forward)
    writer.add_uint32("clip.vision.projection_dim", text_width)
    writer.add_uint32("clip.vision.block_count", layers)
    writer.add_uint32("clip.vision.attention.head_count", 2)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    def random(name: str, *shape: int) -> None:
        writer.add_tensor(name, rng.normal(0.0, 0.05, size=shape).astype(np.float32))

    def norm(name: str) -> None:
        writer.add_tensor(f"{name}.weight", np.ones(width, dtype=np.float32))
        random(f"{name}.bias", width)

    positions = (image_size // patch_size) ** 2 + 1  # patches and the class embedding
    random("v.patch_embd.weight", width, 3, patch_size, patch_size)
    random("v.class_embd", width)
    random("v.position_embd.weight", positions, width)
    norm("v.pre_ln")
    for layer in range(layers):
        prefix = f"v.blk.{layer}"
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            random(f"{prefix}.{part}.weight", width, width)
            random(f"{prefix}.{part}.bias", width)
        norm(f"{prefix}.ln1")
        norm(f"{prefix}.ln2")
        random(f"{prefix}.ffn_up.weight", feed_forward, width)
        random(f"{prefix}.ffn_up.bias", feed_forward)
        random(f"{prefix}.ffn_down.weight", width, feed_forward)
        random(f"{prefix}.ffn_down.bias", width)
    random("mm.0.weight", text_width, width)
    random("mm.0.bias", text_width)
    random("mm.2.weight", text_width, text_width)
    random("mm.2.bias", text_width)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
