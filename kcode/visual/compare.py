"""Comparing a render with its target: mismatch, structure, one score, differing regions, a heatmap.

Definitions (also in README.md):

* A pixel *differs* when the squared YIQ colour distance between target and render (the perceptual
  metric of pixelmatch) exceeds MAX_YIQ_DELTA × COLOUR_THRESHOLD² with COLOUR_THRESHOLD = 0.1, unless the same colour is found
  within one pixel in the other image in both directions (anti-aliasing and sub-pixel text shifts).
* `mismatch` = differing pixels / all compared pixels (the raw fraction, reported as is).
* *Content* pixels are those that differ from the target's dominant (background) colour in either
  image. `content_mismatch` = differing pixels / content pixels, capped at 1. This is what keeps a
  blank page from scoring high on a mostly-white design: all its content pixels differ.
* `structure` = SSIM on grey images downscaled to ≤ STRUCTURE_SIDE px, averaged over the windows that
  have texture (standard deviation > 2/255 in either image) — flat background windows, which agree
  trivially, are left out. 1.0 when no window has texture in either image.
* `size_penalty` = overlap area / union area of the two image sizes (1.0 when they match); images of
  different sizes are compared on their top-left-aligned overlap.

    score = (1 - content_mismatch) × structure × size_penalty      (in [0, 1]; identical images: 1.0)

Regions: differing pixels are pooled into CELL×CELL cells, dilated by one cell (so nearby differences
merge), grouped into connected components, tightened to their pixels and merged while their boxes
overlap; sorted by box area, largest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from kcode.visual.regions import Region, find_regions
from kcode.visual.structure import StructureBase, structural_similarity

COLOUR_THRESHOLD = 0.1
MAX_YIQ_DELTA = 35215.0
# colour_delta() is normalised by MAX_YIQ_DELTA, so a pixel differs above COLOUR_THRESHOLD squared.
DELTA_LIMIT = COLOUR_THRESHOLD * COLOUR_THRESHOLD

Array = NDArray[Any]
Packed = NDArray[np.uint32]  # one RGBX pixel per element (see packed_pixels)


@dataclass
class Comparison:
    score: float
    mismatch: float
    content_mismatch: float
    structure: float
    target_size: tuple[int, int]
    render_size: tuple[int, int]
    size_penalty: float
    regions: list[Region] = field(default_factory=list)
    diff_mask: NDArray[np.bool_] | None = None


# RGB → YIQ (pixelmatch's coefficients), one column per YIQ channel, and the weights of the squared
# channel differences. YIQ is linear in RGB, so the YIQ difference of two colours is the YIQ of their
# RGB difference: one small matrix product per batch of pixel pairs.
_TO_YIQ = np.array(
    [
        [0.29889531, 0.59597799, 0.21147017],
        [0.58662247, -0.27417610, -0.52261711],
        [0.11448223, -0.32180189, 0.31114694],
    ],
    dtype=np.float32,
)
_YIQ_WEIGHTS = np.array([0.5053, 0.299, 0.1957], dtype=np.float32) / np.float32(MAX_YIQ_DELTA)


def _rgb(packed: Packed) -> NDArray[np.float32]:
    channels = np.ascontiguousarray(packed).view(np.uint8).reshape(-1, 4)[:, :3]
    return channels.astype(np.float32)


def colour_delta(a: Packed, b: Packed) -> NDArray[np.float32]:
    """pixelmatch's perceptual distance of the packed pixels `a` and `b` (same shape), normalised to
    [0, 1]; a pixel differs above DELTA_LIMIT."""
    yiq = (_rgb(a) - _rgb(b)) @ _TO_YIQ
    out: NDArray[np.float32] = ((yiq * yiq) @ _YIQ_WEIGHTS).reshape(a.shape)
    return out


NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def _neighbours(pixels: Array, height: int, width: int) -> Array:
    """Flat indices of the 8 neighbours of each flat pixel index, shape (8, n), clamped at the
    image edges (a clamped neighbour is the pixel itself or another neighbour: no effect)."""
    ys, xs = np.divmod(pixels, width)
    inner = (ys > 0) & (ys < height - 1) & (xs > 0) & (xs < width - 1)
    if inner.all():  # the usual case: plain offsets, no clamping
        offsets = np.array([dy * width + dx for dy, dx in NEIGHBOURS])
        out: Array = pixels[None, :] + offsets[:, None]
        return out
    return np.stack(
        [
            np.clip(ys + dy, 0, height - 1) * width + np.clip(xs + dx, 0, width - 1)
            for dy, dx in NEIGHBOURS
        ]
    )


def _matches_nearby(
    src: Packed, other: Packed, pixels: Array, height: int, width: int
) -> NDArray[np.bool_]:
    """For the flat pixel indices `pixels` of `src` (flat packed image): is the same colour (within
    DELTA_LIMIT) within 1 px in `other`? Exact matches on whole packed pixels are found first
    (cheap); the colour distance is computed only for the pixels still unmatched."""
    wanted = src[pixels]
    around = other[_neighbours(pixels, height, width)]  # (8, n)
    found: NDArray[np.bool_] = (around == wanted).any(axis=0)
    rest = np.flatnonzero(~found)
    if len(rest):  # colour_delta, with each wanted colour converted once for its 8 neighbours
        count = len(rest)
        difference = _rgb(around[:, rest]).reshape(8, count, 3) - _rgb(wanted[rest])[None]
        yiq = difference @ _TO_YIQ
        found[rest] = (((yiq * yiq) @ _YIQ_WEIGHTS) <= DELTA_LIMIT).any(axis=0)
    return found


def packed_pixels(image: Image.Image) -> Packed:
    """One uint32 per pixel (equality tests on whole pixels at memory speed), shape (h, w).

    Pillow keeps RGB as 4 bytes per pixel with an opaque pad byte: one copy of that buffer, no
    RGBA conversion."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    raw = np.frombuffer(image.tobytes("raw", "RGBX"), dtype=np.uint32)
    return raw.reshape(height, width)


class PreparedTarget:
    """The target's pixels and background analysis, computed once per run, not per iteration."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image.convert("RGB")
        self.packed = packed_pixels(self.image)
        values, counts = np.unique(self.packed[::7, ::7], return_counts=True)
        self.background = values[np.argmax(counts)]
        flat = self.packed.reshape(-1)
        content = np.zeros(flat.shape, dtype=bool)
        candidates = np.flatnonzero(flat != self.background)
        content[candidates] = self.away(flat[candidates])
        self.content = content.reshape(self.packed.shape)
        self.content_count = int(content.sum())
        self.structure = StructureBase(self.image)

    def away(self, pixels: Packed) -> NDArray[np.bool_]:
        """Which of these packed pixels are visibly away from the background colour."""
        far: NDArray[np.bool_] = (
            colour_delta(pixels, np.broadcast_to(self.background, pixels.shape)) > DELTA_LIMIT
        )
        return far

    def count_content(self, render: Packed, changed: Array, height: int, width: int) -> int:
        """Pixels away from the target's dominant (background) colour in either image.

        The render (flat packed overlap) equals the target outside `changed` (flat indices of the
        pixels whose bytes differ), so only those pixels need a look.
        """
        whole = (height, width) == self.packed.shape[:2]
        target_content = self.content if whole else self.content[:height, :width]
        extra = self.away(render[changed]) & ~target_content.reshape(-1)[changed]
        return (self.content_count if whole else int(target_content.sum())) + int(extra.sum())


@dataclass
class PixelDiff:
    """The first half of a comparison: which pixels differ and where — all that locating needs.
    `finish_comparison` adds the content share, the structure and the score."""

    prepared: PreparedTarget
    render: Image.Image
    render_packed: Packed  # the overlap, flat
    changed: Array  # flat indices (in the overlap) of the pixels whose bytes differ
    differs: NDArray[np.bool_]
    diff_pixels: int
    regions: list[Region]


def diff_pixels(target: Image.Image | PreparedTarget, render: Image.Image) -> PixelDiff:
    prepared = target if isinstance(target, PreparedTarget) else PreparedTarget(target)
    tw, th = prepared.image.size
    rw, rh = render.size
    width, height = min(tw, rw), min(th, rh)
    target_packed, render_packed = prepared.packed, packed_pixels(render)
    if (tw, th) != (rw, rh):  # compare the top-left-aligned overlap
        target_packed = np.ascontiguousarray(target_packed[:height, :width])
        render_packed = np.ascontiguousarray(render_packed[:height, :width])
    target_flat, render_flat = target_packed.reshape(-1), render_packed.reshape(-1)
    # Colour maths only where the bytes differ: on a typical iteration that is a small part.
    changed = np.flatnonzero(target_flat != render_flat)
    differs = np.zeros((height, width), dtype=bool)
    if not len(changed):
        return PixelDiff(prepared, render, render_flat, changed, differs, 0, [])
    pixels = changed[colour_delta(target_flat[changed], render_flat[changed]) > DELTA_LIMIT]
    if len(pixels):
        tolerated = _matches_nearby(target_flat, render_flat, pixels, height, width)
        if tolerated.any():  # both ways: only where the first way already tolerates
            both = np.flatnonzero(tolerated)
            tolerated[both] = _matches_nearby(render_flat, target_flat, pixels[both], height, width)
        pixels = pixels[~tolerated]
    ys, xs = np.divmod(pixels, width)
    differs[ys, xs] = True
    regions = find_regions(differs, (ys, xs))
    return PixelDiff(prepared, render, render_flat, changed, differs, len(pixels), regions)


def render_structure(
    prepared: PreparedTarget, render: Image.Image, diff: PixelDiff | None = None
) -> float | None:
    """The structure score of a render the target's size (None for another size: the overlap is
    known only to `finish_comparison`). With the render's `diff_pixels`, only the part around the
    changed pixels is looked at."""
    if prepared.image.size != render.size:
        return None
    changed = None
    if diff is not None:
        if not len(diff.changed):
            return 1.0
        width = render.size[0]
        rows, cols = np.divmod(diff.changed, width)  # flat indices ascend: rows too
        changed = (int(cols.min()), int(rows[0]), int(cols.max()) + 1, int(rows[-1]) + 1)
    return prepared.structure.similarity(render, changed)


def finish_comparison(diff: PixelDiff, structure: float | None = None) -> Comparison:
    """`structure`: `render_structure()` of the same render, when already computed."""
    prepared, render = diff.prepared, diff.render
    tw, th = prepared.image.size
    rw, rh = render.size
    height, width = diff.differs.shape
    overlap = width * height
    size_penalty = overlap / float(tw * th + rw * rh - overlap)
    if not len(diff.changed):
        return Comparison(
            size_penalty, 0.0, 0.0, 1.0, (tw, th), (rw, rh), size_penalty, [], diff.differs
        )
    content_pixels = max(prepared.count_content(diff.render_packed, diff.changed, height, width), 1)
    mismatch = diff.diff_pixels / float(overlap)
    content_mismatch = min(1.0, diff.diff_pixels / float(content_pixels))
    if structure is None:
        structure = render_structure(prepared, render, diff)
    if structure is None:  # sizes differ: compare the overlap
        overlap_box = (0, 0, width, height)
        structure = structural_similarity(
            prepared.image.crop(overlap_box), render.crop(overlap_box)
        )
    score = (1.0 - content_mismatch) * structure * size_penalty
    return Comparison(
        round(score, 4),
        round(mismatch, 5),
        round(content_mismatch, 5),
        round(structure, 4),
        (tw, th),
        (rw, rh),
        round(size_penalty, 4),
        diff.regions,
        diff.differs,
    )


def compare_images(target: Image.Image | PreparedTarget, render: Image.Image) -> Comparison:
    return finish_comparison(diff_pixels(target, render))


def heatmap(target: Image.Image, comparison: Comparison) -> Image.Image:
    """The target faded to light grey, differing pixels in red, region boxes outlined."""
    from PIL import ImageDraw

    grey = np.asarray(target.convert("L"), dtype=np.float32)
    mask = comparison.diff_mask
    height, width = grey.shape
    faded = (255 - (255 - grey) * 0.3).astype(np.uint8)
    rgb = np.stack([faded, faded, faded], axis=-1)
    if mask is not None:
        full = np.zeros((height, width), dtype=bool)
        full[: mask.shape[0], : mask.shape[1]] = mask
        rgb[full] = (230, 20, 40)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    for region in comparison.regions:
        draw.rectangle(
            (region.x - 2, region.y - 2, region.x + region.w + 1, region.y + region.h + 1),
            outline=(255, 140, 0),
            width=2,
        )
    return image
