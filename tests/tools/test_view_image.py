"""view_image and kcode.images on real image files."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from kcode.images import MAX_SIDE_PX, prepare_image_bytes
from kcode.messages import ToolCall, ToolResult
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.view_image import ViewImageTool


async def view(root: Path, path: str) -> ToolResult:
    call = ToolCall("v", "view_image", {"path": path})
    return await run_tool(ViewImageTool(), call, ToolContext(root=root))


async def test_small_png_is_passed_through_as_png(tmp_path: Path) -> None:
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "shot.png")
    result = await view(tmp_path, "shot.png")
    assert result.ok
    assert "40x30" in result.content and "resized" not in result.content
    (image,) = result.images
    assert image.mime == "image/png"
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert decoded.size == (40, 30)
        assert decoded.getpixel((0, 0)) == (255, 0, 0)


async def test_large_image_is_resized_keeping_aspect(tmp_path: Path) -> None:
    Image.new("RGB", (4000, 1000), (0, 128, 255)).save(tmp_path / "wide.jpg")
    result = await view(tmp_path, "wide.jpg")
    assert result.ok and "resized from 4000x1000" in result.content
    with Image.open(io.BytesIO(result.images[0].data)) as decoded:
        assert decoded.size == (MAX_SIDE_PX, 392)


def test_noisy_photo_falls_back_to_jpeg() -> None:
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    prepared = prepare_image_bytes(buffer.getvalue())
    assert prepared.part.mime == "image/jpeg"
    assert prepared.size == (1200, 1200)


async def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_bytes(b"this is not a png at all")
    result = await view(tmp_path, "fake.png")
    assert not result.ok
    assert "not an image that can be decoded" in result.content
    assert result.images == ()


async def test_missing_file_and_outside_paths(tmp_path: Path) -> None:
    missing = await view(tmp_path, "nope.png")
    assert not missing.ok and "not a file" in missing.content
    outside = await view(tmp_path, "/etc/hostname")
    assert not outside.ok and "outside the workspace" in outside.content
