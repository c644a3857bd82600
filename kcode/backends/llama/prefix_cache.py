"""The KV state of a prompt's static prefix (system prompt and tools), kept on disk across runs.

Every `kcode -p` with a local model starts a new process whose context is empty, so it used to
re-read the same system prompt and tool list every time. After the first run evaluates that
prefix, its KV cells (`llama_state_seq_get_data` for sequence 0: the cells only, no logits) are
written to the user's cache dir; the next run with the same prefix loads them and evaluates only
what follows.

A file is used only when everything that determines its content is the same, all in its name
(`key`) and checked again inside it: the model file (real path, size, mtime, inode, and a hash of
its first and last MiB, so a replaced file with the same name does not match), the exact prefix
tokens, llama-cpp-python's version (the state layout is llama.cpp's and changes between
versions), and this file format's version.

The cache dir belongs to the user, but its content is treated as untrusted input all the same:
a file that is truncated, corrupted, oversized, of another key or another format, a symlink or
not a regular file (a FIFO would block) is ignored (and removed) and the prefix is evaluated as if there was none; nothing here raises into a request.
The file carries a SHA-256 of its payload, checked before llama.cpp sees a byte, and llama.cpp's
own reader refuses a state of another shape (it returns 0, which counts as a miss). Writes go to a
temporary file in the same folder and are renamed into place, so a reader never sees half a file
and two concurrent writers leave one whole file. Size is bounded: no single file over
`MAX_FILE_BYTES`, and after each write the oldest files go until the folder is under
`MAX_DIR_BYTES`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import stat
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MAGIC = b"KCODEKV\x00"
# magic, format version, key (sha256), token count, payload length, payload sha256
_HEADER = struct.Struct("<8sI32sIQ32s")
MAX_FILE_BYTES = 256 << 20
MAX_DIR_BYTES = 1 << 30
MIN_PREFIX_TOKENS = 64  # below this, evaluating is as fast as reading a file
_SUFFIX = ".kvstate"
_EDGE = 1 << 20  # bytes hashed at each end of the model file


def default_dir() -> Path | None:
    """`$XDG_CACHE_HOME/kcode/kv` or `~/.cache/kcode/kv`; None when neither is absolute (a
    relative XDG_CACHE_HOME would put the cache inside whatever repository kcode runs in)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "kcode" / "kv"
    home = os.path.expanduser("~")
    return Path(home) / ".cache" / "kcode" / "kv" if os.path.isabs(home) else None


def model_identity(model_path: Path) -> bytes:
    """What makes two model files the same for a KV state, cheaply (no full-file hash)."""
    real = os.path.realpath(model_path)
    stat = os.stat(real)
    digest = hashlib.sha256(f"{real}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}".encode())
    with open(real, "rb") as handle:
        digest.update(handle.read(_EDGE))
        if stat.st_size > _EDGE:
            handle.seek(max(_EDGE, stat.st_size - _EDGE))
            digest.update(handle.read(_EDGE))
    return digest.digest()


def _token_bytes(tokens: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(tokens)}i", *tokens)


class PrefixCache:
    def __init__(self, directory: Path, model_path: Path, runtime_version: str) -> None:
        self.directory = directory
        self._identity = model_identity(model_path) + runtime_version.encode() + b"\0"
        self.hits = 0
        self.writes = 0

    def key(self, tokens: Sequence[int]) -> bytes:
        material = self._identity + struct.pack("<I", FORMAT_VERSION) + _token_bytes(tokens)
        return hashlib.sha256(material).digest()

    def path(self, tokens: Sequence[int]) -> Path:
        return self.directory / (self.key(tokens).hex() + _SUFFIX)

    # --- reading ----------------------------------------------------------------------------
    def read(self, tokens: Sequence[int]) -> bytes | None:
        """The saved KV payload for exactly `tokens`, or None (missing or not trustworthy)."""
        path = self.path(tokens)
        try:
            # Not through a symlink, and without blocking on a FIFO planted under the name.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError:
            self._discard(path)
            return None
        try:
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                    raise ValueError("not a regular file of a plausible size")
                blob = handle.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError):
            self._discard(path)
            return None
        payload = self._verified_payload(blob, tokens)
        if payload is None:
            self._discard(path)
        return payload

    def _verified_payload(self, blob: bytes, tokens: Sequence[int]) -> bytes | None:
        if len(blob) < _HEADER.size:
            return None
        magic, version, key, count, length, digest = _HEADER.unpack_from(blob)
        token_bytes = _token_bytes(tokens)
        start = _HEADER.size + len(token_bytes)
        if (
            magic != MAGIC
            or version != FORMAT_VERSION
            or key != self.key(tokens)
            or count != len(tokens)
            or blob[_HEADER.size : start] != token_bytes
            or length != len(blob) - start
            or hashlib.sha256(blob[start:]).digest() != digest
        ):
            return None
        return blob[start:]

    # --- writing ----------------------------------------------------------------------------
    def write(self, tokens: Sequence[int], payload: bytes) -> bool:
        """Save atomically; False (and nothing left behind) when it cannot."""
        token_bytes = _token_bytes(tokens)
        header = _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            self.key(tokens),
            len(tokens),
            len(payload),
            hashlib.sha256(payload).digest(),
        )
        if len(header) + len(token_bytes) + len(payload) > MAX_FILE_BYTES:
            return False
        temporary = ""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=_SUFFIX)
            with os.fdopen(fd, "wb") as handle:
                handle.write(header + token_bytes)
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path(tokens))
            temporary = ""
        except OSError:
            return False
        finally:
            if temporary:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        self.writes += 1
        self._trim()
        return True

    def _trim(self) -> None:
        """Oldest files out until the folder is under MAX_DIR_BYTES (stale temporaries too)."""
        try:
            entries = []
            for entry in os.scandir(self.directory):
                if entry.name.endswith(_SUFFIX) and entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    entries.append((stat.st_mtime, stat.st_size, entry.path))
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= MAX_DIR_BYTES:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
            total -= size

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    # --- llama.cpp ----------------------------------------------------------------------------
    def restore(self, lib: Any, ctx: Any, tokens: Sequence[int]) -> bool:
        """Load the saved cells for `tokens` into sequence 0 of an empty context."""
        payload = self.read(tokens)
        if payload is None:
            return False
        buffer = (ctypes.c_uint8 * len(payload)).from_buffer_copy(payload)
        if int(lib.llama_state_seq_set_data(ctx, buffer, len(payload), 0)) == 0:
            self._discard(self.path(tokens))  # llama.cpp refused it: another shape of state
            return False
        self.hits += 1
        return True

    def save(self, lib: Any, ctx: Any, tokens: Sequence[int]) -> bool:
        """Save the cells of sequence 0, which must hold exactly `tokens`."""
        size = int(lib.llama_state_seq_get_size(ctx, 0))
        if size <= 0 or size > MAX_FILE_BYTES:
            return False
        buffer = (ctypes.c_uint8 * size)()
        written = int(lib.llama_state_seq_get_data(ctx, buffer, size, 0))
        if written <= 0:
            return False
        return self.write(tokens, ctypes.string_at(buffer, written))
