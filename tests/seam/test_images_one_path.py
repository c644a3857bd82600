"""Issue #12 item 5: the fix loop prepares images exactly as -i, @mentions and view_image do
(kcode.images): one size limit, one PNG→JPEG threshold (it was 4 MB in the fix loop, 1.5 MB elsewhere)."""

from __future__ import annotations

import io
import os

from PIL import Image

from kcode.images import PNG_MAX_BYTES, prepare_image_bytes
from kcode.visual.target_images import image_for_model


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_the_fix_loop_and_view_image_send_the_same_bytes() -> None:
    # grey noise: a PNG between the old 1.5 MB and 4 MB thresholds once resized to 1568 px
    noise = Image.frombytes("L", (2000, 1500), os.urandom(2000 * 1500)).convert("RGB")
    flat = Image.new("RGB", (3000, 2000), "white")
    for image in (noise, flat):
        loop_part = image_for_model(image)
        tool_part = prepare_image_bytes(_png(image)).part
        assert (loop_part.mime, loop_part.data) == (tool_part.mime, tool_part.data)
    noisy = image_for_model(noise)
    assert noisy.mime == "image/jpeg" and len(noisy.data) <= PNG_MAX_BYTES
    assert image_for_model(flat).mime == "image/png"
