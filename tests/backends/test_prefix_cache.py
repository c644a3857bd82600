"""The on-disk KV state of a prompt's static prefix (kcode/backends/llama/prefix_cache.py): what
is written, what is refused, and — on the real SmolLM2 — that a restored prefix gives the same
greedy answer as evaluating it, while bad files are ignored, never crash, and get replaced."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kcode.backends.base import BackendOptions, TextChunk
from kcode.backends.llama import prefix_cache as llama_prefix_cache
from kcode.backends.llama.llama_cpp import LlamaCppBackend
from kcode.backends.llama.prefix_cache import PrefixCache
from kcode.backends.llama.request import static_prefix_length
from kcode.messages import Message

from .real_models import needs_llama, smollm2

TOKENS = list(range(100, 400))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + os.urandom(3 << 20))
    return path


def test_round_trip_and_the_file_names_model_tokens_and_version(
    tmp_path: Path, model: Path
) -> None:
    cache = PrefixCache(tmp_path / "kv", model, "0.3.36")
    assert cache.read(TOKENS) is None
    assert cache.write(TOKENS, b"state" * 1000)
    assert cache.read(TOKENS) == b"state" * 1000
    assert oct((tmp_path / "kv").stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in (tmp_path / "kv").iterdir()] == [cache.path(TOKENS).name]
    # Another token sequence, llama-cpp-python version or model file: another key, no hit.
    assert cache.read(TOKENS[:-1]) is None
    assert PrefixCache(tmp_path / "kv", model, "0.3.37").read(TOKENS) is None
    with model.open("r+b") as handle:  # same name and size, other content
        handle.seek(10)
        handle.write(b"X")
    assert PrefixCache(tmp_path / "kv", model, "0.3.36").read(TOKENS) is None


@pytest.mark.parametrize(
    "damage",
    [
        "flip a payload byte",
        "truncate",
        "empty",
        "wrong magic",
        "foreign key",
        "oversized",
        "symlink",
        "fifo",
    ],
)
def test_a_bad_file_is_ignored_and_removed(
    tmp_path: Path, model: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PrefixCache(tmp_path / "kv", model, "v")
    assert cache.write(TOKENS, b"0123456789" * 500)
    path = cache.path(TOKENS)
    blob = path.read_bytes()
    if damage == "flip a payload byte":
        path.write_bytes(blob[:-7] + bytes([blob[-7] ^ 1]) + blob[-6:])
    elif damage == "truncate":
        path.write_bytes(blob[: len(blob) - 100])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong magic":
        path.write_bytes(b"X" + blob[1:])
    elif damage == "foreign key":  # a valid file for other tokens, renamed into place
        other = list(range(7, 300))
        cache.write(other, b"other")
        os.replace(cache.path(other), path)
    elif damage == "symlink":  # to a valid file elsewhere: still not followed
        target = tmp_path / "elsewhere"
        os.replace(path, target)
        path.symlink_to(target)
    elif damage == "fifo":  # would block a plain open() forever
        path.unlink()
        os.mkfifo(path)
    else:
        monkeypatch.setattr(llama_prefix_cache, "MAX_FILE_BYTES", len(blob) - 1)
    assert cache.read(TOKENS) is None
    assert not path.exists() and not path.is_symlink()


def test_writes_are_atomic_bounded_and_leave_no_temporaries(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PrefixCache(tmp_path / "kv", model, "v")
    monkeypatch.setattr(llama_prefix_cache, "MAX_FILE_BYTES", 20_000)
    assert not cache.write(TOKENS, b"x" * 30_000)  # one state over the cap: not written
    monkeypatch.setattr(llama_prefix_cache, "MAX_DIR_BYTES", 25_000)
    for i in range(5):
        assert cache.write([i, *TOKENS], b"y" * 10_000)
    files = sorted((tmp_path / "kv").iterdir())
    assert len(files) == 2 and not any(p.name.startswith(".tmp-") for p in files)
    assert cache.read([4, *TOKENS]) == b"y" * 10_000  # the newest survive
    assert cache.read([0, *TOKENS]) is None


def test_an_unwritable_cache_dir_is_no_error(tmp_path: Path, model: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = PrefixCache(blocker / "kv", model, "v")
    assert not cache.write(TOKENS, b"state")
    assert cache.read(TOKENS) is None


def test_default_dir_is_the_users_cache_never_a_relative_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert llama_prefix_cache.default_dir() == tmp_path / "kcode" / "kv"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert llama_prefix_cache.default_dir() == tmp_path / "home" / ".cache" / "kcode" / "kv"


# --- the real model -----------------------------------------------------------------------------

SYSTEM = "You are a careful assistant. " + "Answer in one short sentence. " * 20


def conversation(question: str) -> list[Message]:
    return [Message.system(SYSTEM), Message.user(question)]


async def answer(folder: Path, question: str) -> tuple[str, LlamaCppBackend]:
    backend = LlamaCppBackend(smollm2(), n_threads=1, n_ctx=2048, prefix_cache=folder)
    options = BackendOptions(temperature=0.0, max_tokens=12)
    parts = [
        d.text
        async for d in backend.stream(conversation(question), [], options)
        if isinstance(d, TextChunk)
    ]
    return "".join(parts), backend


@needs_llama
@pytest.mark.llama
def test_static_prefix_is_the_system_turn_shared_by_other_questions(tmp_path: Path) -> None:
    async def run() -> None:
        _, backend = await answer(tmp_path / "kv", "Name a colour.")
        engine, template = backend.engine, backend._template
        assert engine is not None and template is not None

        def render(messages: list[Message]) -> list[int]:
            return engine.tokenize(backend.render_prompt(template, messages, [], BackendOptions()))

        lengths = []
        for question in ("Name a colour.", "What is 2+2?"):
            tokens = render(conversation(question))
            n = static_prefix_length(
                lambda m: backend.render_prompt(template, m, [], BackendOptions()),
                engine.tokenize,
                conversation(question),
                tokens,
            )
            assert 60 < n < len(tokens)
            lengths.append((n, tokens[:n]))
        assert lengths[0] == lengths[1]
        assert "Answer in one short sentence." in "".join(
            engine.token_text(t) for t in lengths[0][1]
        )
        await backend.aclose()

    asyncio.run(run())


@needs_llama
@pytest.mark.llama
def test_a_restored_prefix_answers_like_a_cold_one_and_bad_files_are_recomputed(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "kv"

    async def one(question: str) -> tuple[str, int, int]:
        text, backend = await answer(folder, question)
        engine = backend.engine
        assert engine is not None and engine.prefix_cache is not None
        result = (text, engine.prefix_cache.hits, engine.tokens_decoded())
        await backend.aclose()
        return result

    async def run() -> None:
        cold_text, hits, cold_work = await one("Name a colour.")
        assert hits == 0
        [state] = list(folder.iterdir())
        warm_text, hits, warm_work = await one("Name a colour.")
        assert hits == 1 and warm_text == cold_text
        assert warm_work < cold_work - 60  # the prefix was not evaluated again
        # Damaged in the payload: detected before llama.cpp sees it, recomputed, rewritten.
        blob = bytearray(state.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        state.write_bytes(bytes(blob))
        text, hits, work = await one("Name a colour.")
        assert (text, hits) == (cold_text, 0) and work == cold_work
        assert state.read_bytes() != bytes(blob)
        # A file with a valid checksum whose payload llama.cpp cannot read (foreign, garbage):
        # llama.cpp refuses it, the prefix is evaluated, the answer is unchanged.
        cache = PrefixCache(folder, smollm2(), _llama_version())
        payload_tokens = _stored_tokens(state)
        assert cache.write(payload_tokens, b"\x01\x00\x00\x00" + b"\xff" * 4096)
        text, hits, _ = await one("Name a colour.")
        assert (text, hits) == (cold_text, 0)

    asyncio.run(run())


def _llama_version() -> str:
    from importlib import metadata

    return metadata.version("llama-cpp-python")


def _stored_tokens(path: Path) -> list[int]:
    import struct

    header = llama_prefix_cache._HEADER
    count = header.unpack_from(path.read_bytes())[3]
    return list(struct.unpack_from(f"<{count}i", path.read_bytes(), header.size))
