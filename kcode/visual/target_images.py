"""Loading images the user gives us, and preparing images for a model.

Viewport rule (documented in README.md): a PNG whose pHYs/dpi says ≥ 110 dpi (macOS writes 144 for
Retina captures) is a 2× screenshot; otherwise an image at least 2200 px wide with even width and height
is taken as 2× (Retina laptops: 2560, 2880, 3024 px); anything else is 1×. The viewport in CSS pixels is
the image size divided by that scale, so the render has exactly the target's pixel size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from kcode.images import DECODE_ERRORS, MAX_SIDE_PX, image_file_problem, prepare_pil_image
from kcode.messages import ImagePart
from kcode.visual.errors import VisualError

MODEL_IMAGE_MAX_SIDE = MAX_SIDE_PX  # one limit for every front end (kcode.images)
MIN_SIDE = 64
MAX_CSS_WIDTH = 4000
MAX_CSS_HEIGHT = 12000


@dataclass(frozen=True)
class Viewport:
    width: int  # CSS pixels
    height: int
    scale: float = 1.0  # device pixel ratio

    @property
    def pixel_size(self) -> tuple[int, int]:
        return round(self.width * self.scale), round(self.height * self.scale)


def load_image(path: Path, what: str = "image") -> Image.Image:
    """An RGB image, or a VisualError saying why the file cannot be used."""
    problem = image_file_problem(path)
    if problem == "no such file":
        raise VisualError(f"the {what} {path} does not exist")
    if problem is not None:
        raise VisualError(f"the {what} {path} cannot be used: {problem}")
    try:
        with Image.open(path) as raw:
            raw.load()
            image = raw
    except FileNotFoundError as err:
        raise VisualError(f"the {what} {path} does not exist") from err
    except DECODE_ERRORS as err:
        raise VisualError(
            f"the {what} {path} is not a readable image (PNG, JPEG or WebP expected): {err}"
        ) from err
    width, height = image.size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise VisualError(
            f"the {what} {path} is {width}×{height} px; it is too small to compare "
            f"(at least {MIN_SIDE}×{MIN_SIDE} px expected: a screenshot of the whole page or viewport)"
        )
    return flatten_to_rgb(image)


def flatten_to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def detect_viewport(image: Image.Image) -> Viewport:
    width, height = image.size
    dpi = image.info.get("dpi")
    scale = 1.0
    even = width % 2 == 0 and height % 2 == 0
    high_dpi = dpi is not None and float(dpi[0]) >= 110
    if even and (high_dpi or width >= 2200):
        scale = 2.0
    viewport = Viewport(round(width / scale), round(height / scale), scale)
    if viewport.width > MAX_CSS_WIDTH or viewport.height > MAX_CSS_HEIGHT:
        raise VisualError(
            f"the target is {width}×{height} px, which is no page size kcode can render "
            f"(at most {MAX_CSS_WIDTH}×{MAX_CSS_HEIGHT} CSS px); crop it to the viewport you want"
        )
    return viewport


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def image_for_model(image: Image.Image, max_side: int = MODEL_IMAGE_MAX_SIDE) -> ImagePart:
    """The same preparation as every other front end (kcode.images, issue #12)."""
    return prepare_pil_image(image, "PNG", max_side).part
