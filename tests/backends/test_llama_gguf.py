"""kcode's GGUF header reader (kcode/backends/llama/gguf.py) against the gguf package's reader on
the real SmolLM2 file, and on damaged copies of its header: always GgufFormatError, never
another exception, a hang or a huge allocation."""

from __future__ import annotations

import io
import os
import random
import struct
from pathlib import Path

import pytest

from kcode.backends.llama.gguf import GgufFormatError, read_header

from .real_models import smollm2

HEADER_BYTES = 4 << 20  # SmolLM2's metadata (vocabulary and merges included) ends before this


def parse(data: bytes, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    with path.open("rb") as handle:
        return read_header(handle, len(data), lambda key: not key.startswith("tokenizer.")).values


def test_same_metadata_as_the_gguf_package(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = smollm2()
    reader = gguf.GGUFReader(str(path))
    with path.open("rb") as handle:
        header = read_header(handle, path.stat().st_size, lambda key: "vocab" not in key)
    expected_end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    assert header.data_end == expected_end
    for key in (
        "general.architecture",
        "llama.context_length",
        "llama.block_count",
        "tokenizer.chat_template",
    ):
        field = reader.get_field(key)
        value = field.parts[field.data[0]]
        expected = (
            bytes(value).decode() if key.endswith(("architecture", "template")) else int(value[0])
        )
        assert header.values[key] == expected, key


def test_damaged_headers_are_format_errors(tmp_path: Path) -> None:
    with smollm2().open("rb") as handle:
        head = handle.read(HEADER_BYTES)
    rng = random.Random(13)
    cases = [head[:n] for n in (0, 3, 4, 8, 23, 24, 100, 5000, len(head) // 2)]
    for _ in range(20):  # a random byte of the first KiBs (counts, lengths, types) set to 0xFF
        damaged = bytearray(head[:200_000])
        damaged[rng.randrange(4, 4096)] = 0xFF
        cases.append(bytes(damaged))
    cases.append(head[:16] + struct.pack("<Q", 1 << 62) + head[24:])  # absurd key count
    for data in cases:
        try:
            parse(data, tmp_path)
        except GgufFormatError:
            continue
        # A flipped byte inside a string value can leave a valid header: then it must parse.
        assert len(data) > 24


def test_not_a_gguf(tmp_path: Path) -> None:
    with pytest.raises(GgufFormatError):
        parse(b"<html>404</html>" + os.urandom(64), tmp_path)
    with pytest.raises(GgufFormatError):
        read_header(io.BytesIO(b"GGUF"), 4, lambda key: True)
