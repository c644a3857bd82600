"""Images for the model: decode with Pillow, shrink to what vision models accept, encode.

The one image path (issue #12): `-i/--image` (REPL and -p), `@image` mentions, view_image and the
visual fix loop all go through `prepare_pil_image`, so every front end sends the same size and format.
Pillow work is blocking: async callers run these functions in a thread (asyncio.to_thread).
"""

from __future__ import annotations

import io
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from kcode.messages import ImagePart

MAX_SIDE_PX = 1568  # longest side vision models take without downscaling themselves
# A PNG larger than this (photos, noise) is sent as JPEG instead to keep requests small.
PNG_MAX_BYTES = 1_500_000


class ImageError(ValueError):
    """The file is not an image Pillow can decode; the message says what to do."""


# What Pillow raises for a file that is not a (sane) image: besides OSError and ValueError, a
# broken PNG or GIF chunk is a SyntaxError, a truncated header an EOFError or struct.error, and
# a header claiming 100000x100000 a DecompressionBombError. All of them are the file's fault.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)
# An image file bigger than this is refused before it is read (a 4K screenshot is a few MB).
MAX_IMAGE_FILE = 64 * 1024 * 1024


def image_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as an image file, or None: it must be a regular file (a FIFO
    would block the read for ever, /dev/zero never ends) of at most MAX_IMAGE_FILE bytes."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, device or directory)"
    if info.st_size > MAX_IMAGE_FILE:
        return f"{info.st_size:,} bytes, more than the {MAX_IMAGE_FILE >> 20} MB an image may have"
    return None


@dataclass(frozen=True)
class PreparedImage:
    part: ImagePart
    original_size: tuple[int, int]
    size: tuple[int, int]
    source_format: str

    def describe(self) -> str:
        (ow, oh), (w, h) = self.original_size, self.size
        resized = f", resized from {ow}x{oh}" if (ow, oh) != (w, h) else ""
        kb = len(self.part.data) / 1024
        return (
            f"{self.source_format} image {w}x{h}{resized}, sent as {self.part.mime} ({kb:.0f} KB)"
        )


def prepare_image_bytes(
    data: bytes, name: str = "image", max_side: int = MAX_SIDE_PX
) -> PreparedImage:
    """Decode, flatten animation to its first frame, shrink the longest side to `max_side`."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            source_format = opened.format or "unknown"
            image = opened.copy()
    except DECODE_ERRORS as err:
        raise ImageError(
            f"{name} is not an image that can be decoded ({err}); "
            "give a PNG, JPEG, GIF or WebP file"
        ) from None
    return prepare_pil_image(image, source_format, max_side)


def prepare_pil_image(
    image: Image.Image, source_format: str = "PNG", max_side: int = MAX_SIDE_PX
) -> PreparedImage:
    """Shrink the longest side to `max_side`; PNG (sharp text), or JPEG when the PNG is too big."""
    original = image.size
    if max(original) > max_side:
        scale = max_side / max(original)
        target = (max(1, round(original[0] * scale)), max(1, round(original[1] * scale)))
        image = image.resize(target, Image.Resampling.LANCZOS)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    png = io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    if png.tell() <= PNG_MAX_BYTES or has_alpha:
        part = ImagePart(png.getvalue(), "image/png")
    else:
        jpeg = io.BytesIO()
        image.save(jpeg, format="JPEG", quality=85)
        part = ImagePart(jpeg.getvalue(), "image/jpeg")
    return PreparedImage(part, original, image.size, source_format)


def prepare_image_file(path: Path, max_side: int = MAX_SIDE_PX) -> PreparedImage:
    problem = image_file_problem(path)
    if problem is not None:
        raise ImageError(f"cannot use {path} as an image: {problem}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageError(f"cannot read {path}: {err.strerror or err}") from None
    return prepare_image_bytes(data, str(path), max_side)
