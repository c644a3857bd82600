"""A local vision model: the tiny GGUF with a tiny mmproj (both written by the tests).

The image embeddings are noise, so the tests check what a user would notice: a conversation with
an image is answered (the image really goes through the projector into the context), a
grammar-forced call still comes out exact, later text-only turns still work, and bad input is
refused with a clear message.
"""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from kcode.backends.base import (
    BackendError,
    BackendOptions,
    Delta,
    FinishChunk,
    ToolCallChunk,
    ToolSpec,
    UsageChunk,
)
from kcode.backends.llama.llama_cpp import LlamaCppBackend
from kcode.messages import ImagePart, Message

from .tiny_gguf import write_llama_gguf
from .tiny_mmproj import write_mmproj_gguf

pytestmark = [
    pytest.mark.llama,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed (pip install 'kcode[local]')",
    ),
]

COLOR_TOOL = ToolSpec(
    "report_color",
    "Report the main colour",
    {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}},
        "required": ["color"],
    },
)


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("vision")
    return write_llama_gguf(folder / "tiny.gguf"), write_mmproj_gguf(folder / "mmproj.gguf")


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, "PNG")
    return out.getvalue()


async def collect(
    backend: LlamaCppBackend, messages: list[Message], **options: object
) -> list[Delta]:
    return [d async for d in backend.stream(messages, [], BackendOptions(**options))]  # type: ignore[arg-type]


def looking_at(*images: bytes) -> list[Message]:
    parts = tuple(ImagePart(data) for data in images)
    return [Message.system("You are a test."), Message.user("What colour is this?", parts)]


async def test_an_image_goes_through_the_projector_and_is_answered(
    vision_model: tuple[Path, Path],
) -> None:
    model, mmproj = vision_model
    backend = LlamaCppBackend(model, n_ctx=1024, n_threads=1, mmproj=mmproj)
    plain = await collect(
        backend, [*looking_at()[:1], Message.user("What colour is this?")], max_tokens=2
    )
    one = await collect(backend, looking_at(png((200, 0, 0))), max_tokens=2)
    two = await collect(backend, looking_at(png((200, 0, 0)), png((0, 0, 200))), max_tokens=2)

    def prompt_tokens(deltas: list[Delta]) -> int:
        return next(d.prompt_tokens for d in deltas if isinstance(d, UsageChunk))

    # Each 28x28 image becomes 4 image tokens (plus the marker's newline) in the context.
    assert prompt_tokens(one) - prompt_tokens(plain) == 5
    assert prompt_tokens(two) - prompt_tokens(one) == 5
    assert isinstance(two[-1], FinishChunk)
    # A text-only turn afterwards re-reads everything from the first image position on: the
    # image's KV entries are never taken for the text that used to sit there.
    engine = backend.engine
    assert engine is not None
    in_context = engine.llama.input_ids[: engine.llama.n_tokens].tolist()
    first_image_position = in_context.index(-1)
    before = engine.tokens_decoded()
    again = await collect(
        backend, [*looking_at()[:1], Message.user("What colour is this?")], max_tokens=2
    )
    assert prompt_tokens(again) == prompt_tokens(plain)
    assert engine.tokens_decoded() - before >= prompt_tokens(again) - first_image_position
    await backend.aclose()


async def test_forced_call_about_an_image_is_exact(vision_model: tuple[Path, Path]) -> None:
    model, mmproj = vision_model
    backend = LlamaCppBackend(model, n_ctx=1024, n_threads=1, mmproj=mmproj)
    deltas = [
        d
        async for d in backend.stream(
            looking_at(png((0, 200, 0))),
            [COLOR_TOOL],
            BackendOptions(tool_choice="report_color", max_tokens=100, temperature=1.0),
        )
    ]
    calls = [d for d in deltas if isinstance(d, ToolCallChunk)]
    assert [c.name for c in calls] == ["report_color"]
    assert json.loads(calls[0].arguments)["color"] in ("red", "green", "blue")
    await backend.aclose()


async def test_data_that_is_not_an_image_is_a_clear_error(vision_model: tuple[Path, Path]) -> None:
    model, mmproj = vision_model
    backend = LlamaCppBackend(model, n_ctx=1024, n_threads=1, mmproj=mmproj)
    with pytest.raises(BackendError) as err:
        await collect(backend, looking_at(b"\x89PNG not really"), max_tokens=2)
    assert "image could not be decoded" in err.value.message
    # The model is still usable.
    deltas = await collect(backend, looking_at(png((1, 2, 3))), max_tokens=2)
    assert isinstance(deltas[-1], FinishChunk)
    await backend.aclose()


async def test_a_projector_that_is_not_for_this_model_is_refused(tmp_path: Path) -> None:
    model = write_llama_gguf(tmp_path / "tiny.gguf")
    wrong = write_mmproj_gguf(tmp_path / "wide-mmproj.gguf", text_width=96)
    backend = LlamaCppBackend(model, n_ctx=512, n_threads=1, mmproj=wrong)
    with pytest.raises(BackendError) as err:
        await collect(backend, looking_at(png((0, 0, 0))), max_tokens=2)
    assert err.value.kind == "config" and "mmproj" in err.value.message
