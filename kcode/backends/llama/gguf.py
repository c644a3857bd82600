"""A GGUF file's metadata, read without materialising its vocabulary.

`gguf.GGUFReader` builds a numpy view for every element of every array, vocabulary included
(49,152 strings, scores and types for SmolLM2): ~2 s on an idle core, 11 s on this shared machine,
on every kcode start with a local model. kcode needs only a few scalar keys, the per-layer number
lists and the tensor table (to check the file is complete), so this reader walks the header once,
skips arrays it does not keep by their lengths, and stops at the tensor data.

The file is untrusted: every count and length is checked against what is left of the file before
anything is allocated, and any inconsistency raises `GgufFormatError`, which the caller reports as
a damaged file.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_MAX_KEEP = 4096  # array elements kept (per-layer lists); longer arrays are skipped
_MAX_ITEMS = 1 << 24  # a header with more keys, tensors or dims than this is not a model


class GgufFormatError(ValueError):
    pass


@dataclass
class GgufHeader:
    version: int
    values: dict[str, Any] = field(default_factory=dict)
    data_end: int = 0  # where the last tensor's data ends


class _Reader:
    """Offsets into the mapped file: one `unpack_from` per value, no read calls (the vocabulary
    is ~100k strings, skipped by their lengths)."""

    def __init__(self, data: Any, size: int) -> None:
        self.data, self.size, self.pos = data, size, 0

    def left(self) -> int:
        return self.size - self.pos

    def read(self, n: int) -> bytes:
        self.skip(n)
        return bytes(self.data[self.pos - n : self.pos])

    def unpack(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        if n > self.left():
            raise GgufFormatError("the file ends early")
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += n
        return value

    def count(self, limit: int = _MAX_ITEMS) -> int:
        n = int(self.unpack("<Q"))
        if n > limit:
            raise GgufFormatError(f"implausible count {n}")
        return n

    def string(self) -> bytes:
        return self.read(self.count(self.left()))

    def skip(self, n: int) -> None:
        if n < 0 or n > self.left():
            raise GgufFormatError("a length runs past the end of the file")
        self.pos += n

    def value(self, kind: int, keep: bool) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            if not keep:
                self.skip(self.count(self.left()))
                return None
            return self.string().decode("utf-8", errors="replace")
        if kind != _ARRAY:
            raise GgufFormatError(f"unknown value type {kind}")
        item_kind = int(self.unpack("<I"))
        n = self.count(self.left())
        if item_kind in _SCALARS and not (keep and n <= _MAX_KEEP):
            self.skip(n * struct.calcsize(_SCALARS[item_kind]))
            return None
        if item_kind not in (*_SCALARS, _STRING):
            raise GgufFormatError(f"unknown array type {item_kind}")
        keep_items = keep and n <= _MAX_KEEP
        if not keep_items:  # a vocabulary: hop from length to length in one tight loop
            position, data, size, length_of = self.pos, self.data, self.size, _U64.unpack_from
            for _ in range(n):
                if position + 8 > size:
                    raise GgufFormatError("the file ends early")
                position += 8 + length_of(data, position)[0]
            if position > size:
                raise GgufFormatError("a length runs past the end of the file")
            self.pos = position
            return None
        items = [self.value(item_kind, keep_items) for _ in range(n)]
        return items if keep_items else None


def read_header(handle: BinaryIO, size: int, keep: Any) -> GgufHeader:
    """Parse the header of an open GGUF file of `size` bytes; `keep(key)` says which values to
    return (the others are skipped). GgufFormatError when it is not self-consistent."""
    if size < 24:
        raise GgufFormatError("the file ends early")
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _parse(_Reader(data, min(size, len(data))), keep)


def _parse(reader: _Reader, keep: Any) -> GgufHeader:
    import gguf  # for the tensor type sizes only

    if reader.read(4) != b"GGUF":
        raise GgufFormatError("not a GGUF file")
    header = GgufHeader(int(reader.unpack("<I")))
    n_tensors, n_values = reader.count(), reader.count()
    for _ in range(n_values):
        key = reader.string().decode("utf-8", errors="replace")
        kind = int(reader.unpack("<I"))
        wanted = bool(keep(key)) or key == "general.alignment"
        value = reader.value(kind, wanted)
        if wanted:
            header.values[key] = value
    tensors = []
    for _ in range(n_tensors):
        reader.string()
        n_dims = int(reader.unpack("<I"))
        if n_dims > 8:  # GGML_MAX_DIMS is 4
            raise GgufFormatError(f"a tensor with {n_dims} dimensions")
        dims = [int(reader.unpack("<Q")) for _ in range(n_dims)]
        kind, offset = int(reader.unpack("<I")), int(reader.unpack("<Q"))
        sizes = gguf.GGML_QUANT_SIZES.get(gguf.GGMLQuantizationType(kind)) if _known(kind) else None
        if sizes is None:
            raise GgufFormatError(f"unknown tensor type {kind}")
        elements = 1
        for dim in dims:
            elements *= dim
        block, type_size = sizes
        tensors.append(offset + elements // block * type_size)
    alignment = header.values.get("general.alignment") or 32
    if not isinstance(alignment, int) or alignment <= 0:
        raise GgufFormatError("bad general.alignment")
    start = reader.pos
    data_offset = (start + alignment - 1) // alignment * alignment
    header.data_end = data_offset + max(tensors, default=0)
    return header


def _known(kind: int) -> bool:
    import gguf

    return kind in {int(t) for t in gguf.GGMLQuantizationType}
