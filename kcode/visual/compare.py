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
from kcode.visual.structure import STRUCTURE_SIDE, grey_small, structural_similarity, window_stats

COLOUR_THRESHOLD = 0.1
MAX_YIQ_DELTA = 35215.0
# _delta() is normalised by MAX_YIQ_DELTA, so a pixel differs above COLOUR_THRESHOLD squared.
DELTA_LIMIT = COLOUR_THRESHOLD * COLOUR_THRESHOLD

Array = NDArray[Any]


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


def _yiq(rgb: Array) -> tuple[Array, Array, Array]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = r * 0.29889531 + g * 0.58662247 + b * 0.11448223
    i = r * 0.59597799 - g * 0.27417610 - b * 0.32180189
    q = r * 0.21147017 - g * 0.52261711 + b * 0.31114694
    return y, i, q


def _delta(a: tuple[Array, Array, Array], b: tuple[Array, Array, Array]) -> Array:
    dy, di, dq = a[0] - b[0], a[1] - b[1], a[2] - b[2]
    out: Array = (0.5053 * dy * dy + 0.299 * di * di + 0.1957 * dq * dq) / MAX_YIQ_DELTA
    return out


NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def _neighbours(ys: Array, xs: Array, height: int, width: int) -> list[Array]:
    """Flat indices of the 8 neighbours of each (y, x), clamped at the image edges."""
    flat = ys * width + xs
    inner = (ys > 0) & (ys < height - 1) & (xs > 0) & (xs < width - 1)
    if inner.all():  # the usual case: plain offsets, no clamping
        return [flat + (dy * width + dx) for dy, dx in NEIGHBOURS]
    return [
        np.clip(ys + dy, 0, height - 1) * width + np.clip(xs + dx, 0, width - 1)
        for dy, dx in NEIGHBOURS
    ]


def _matches_nearby(
    src: tuple[NDArray[np.uint8], NDArray[np.uint32]],
    other: tuple[NDArray[np.uint8], NDArray[np.uint32]],
    ys: Any,
    xs: Any,
) -> NDArray[np.bool_]:
    """For the candidate pixels (ys, xs) of `src` (rgb, packed): is the same colour within 1 px in
    `other`? Exact matches are found on whole packed pixels first (cheap); the YIQ distance is
    computed only for the pixels still unmatched."""
    (src_rgb, src_packed), (other_rgb, other_packed) = src, other
    height, width = other_packed.shape
    other_flat = other_packed.reshape(-1)
    wanted = src_packed[ys, xs]
    found = np.zeros(len(ys), dtype=bool)
    for index in _neighbours(ys, xs, height, width):
        found |= other_flat[index] == wanted
    rest = np.flatnonzero(~found)
    if not len(rest):
        return found
    rys, rxs = ys[rest], xs[rest]
    other_pixels = other_rgb.reshape(-1, 3)
    near = np.zeros(len(rest), dtype=bool)
    pick_src = _yiq(src_rgb[rys, rxs].astype(np.float32))
    for index in _neighbours(rys, rxs, height, width):
        near |= _delta(pick_src, _yiq(other_pixels[index].astype(np.float32))) <= DELTA_LIMIT
    found[rest] = near
    return found


def _rgba_arrays(image: Image.Image) -> tuple[NDArray[np.uint8], NDArray[np.uint32]]:
    """RGB view and one uint32 per pixel (equality tests on whole pixels at memory speed).

    Pillow keeps RGB as 4 bytes per pixel with an opaque pad byte: one copy of that buffer gives
    both views, with no RGBA conversion."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    raw = np.frombuffer(image.tobytes("raw", "RGBX"), dtype=np.uint8).reshape(height, width, 4)
    packed: NDArray[np.uint32] = raw.view(np.uint32)[..., 0]
    return raw[..., :3], packed


class PreparedTarget:
    """The target's pixel arrays and background analysis, computed once per run, not per iteration."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image.convert("RGB")
        self.rgb, self.packed = _rgba_arrays(self.image)
        values, counts = np.unique(self.packed[::7, ::7], return_counts=True)
        self.background_packed = values[np.argmax(counts)]
        first = int(np.argmax(self.packed.reshape(-1) == self.background_packed))
        self.background = _yiq(self.rgb.reshape(-1, 3)[first : first + 1].astype(np.float32))
        content = np.zeros(self.packed.shape, dtype=bool)
        ys, xs = np.nonzero(self.packed != self.background_packed)
        content[ys, xs] = self._away(self.rgb[ys, xs])
        self.content = content
        self.content_count = int(content.sum())
        factor = min(1.0, STRUCTURE_SIDE / max(self.image.size))
        width, height = self.image.size
        small = (max(8, round(width * factor)), max(8, round(height * factor)))
        self.small_grey = grey_small(self.image, small)
        self.small_stats = window_stats(self.small_grey)

    def _away(self, pixels: NDArray[np.uint8]) -> NDArray[np.bool_]:
        away: NDArray[np.bool_] = (
            _delta(_yiq(pixels.astype(np.float32)), self.background) > DELTA_LIMIT
        )
        return away

    def count_content(
        self, render: NDArray[np.uint8], changed: tuple[NDArray[Any], ...], height: int, width: int
    ) -> int:
        """Pixels away from the target's dominant (background) colour in either image.

        The render equals the target outside `changed` (pixels whose bytes differ), so only those
        pixels need a look.
        """
        ys, xs = changed
        target_content = self.content[:height, :width]
        extra = self._away(render[ys, xs]) & ~target_content[ys, xs]
        whole = target_content.shape == self.content.shape
        return (self.content_count if whole else int(target_content.sum())) + int(extra.sum())


@dataclass
class PixelDiff:
    """The first half of a comparison: which pixels differ and where — all that locating needs.
    `finish_comparison` adds the content share, the structure and the score."""

    prepared: PreparedTarget
    render: Image.Image
    render_rgb: NDArray[np.uint8]  # cropped to the overlap
    changed: tuple[Array, Array]  # pixels whose bytes differ (rows, columns)
    differs: NDArray[np.bool_]
    diff_pixels: int
    regions: list[Region]


def diff_pixels(target: Image.Image | PreparedTarget, render: Image.Image) -> PixelDiff:
    prepared = target if isinstance(target, PreparedTarget) else PreparedTarget(target)
    tw, th = prepared.image.size
    rw, rh = render.size
    width, height = min(tw, rw), min(th, rh)
    target_rgb = prepared.rgb[:height, :width]
    render_rgb, render_packed = _rgba_arrays(render)
    render_rgb, render_packed = render_rgb[:height, :width], render_packed[:height, :width]
    target_packed = prepared.packed[:height, :width]
    # Colour maths only where the bytes differ: on a typical iteration that is a small part.
    ys, xs = changed = np.divmod(np.flatnonzero(target_packed != render_packed), width)
    differs = np.zeros((height, width), dtype=bool)
    if not len(ys):
        return PixelDiff(prepared, render, render_rgb, changed, differs, 0, [])
    a = _yiq(target_rgb[ys, xs].astype(np.float32))
    b = _yiq(render_rgb[ys, xs].astype(np.float32))
    far = _delta(a, b) > DELTA_LIMIT
    ys, xs = ys[far], xs[far]
    if len(ys):
        target_pair, render_pair = (target_rgb, target_packed), (render_rgb, render_packed)
        tolerated = _matches_nearby(target_pair, render_pair, ys, xs)
        if tolerated.any():  # both ways: only where the first way already tolerates
            both = np.flatnonzero(tolerated)
            tolerated[both] = _matches_nearby(render_pair, target_pair, ys[both], xs[both])
        ys, xs = ys[~tolerated], xs[~tolerated]
    differs[ys, xs] = True
    regions = find_regions(differs, (ys, xs))
    return PixelDiff(prepared, render, render_rgb, changed, differs, len(ys), regions)


def render_structure(prepared: PreparedTarget, render: Image.Image) -> float | None:
    """The structure score of a render the target's size (None for another size: the overlap is
    known only to `finish_comparison`). Needs no pixel diff, so it can run alongside one."""
    if prepared.image.size != render.size:
        return None
    return structural_similarity(prepared.image, render, prepared.small_grey, prepared.small_stats)


def finish_comparison(diff: PixelDiff, structure: float | None = None) -> Comparison:
    """`structure`: `render_structure()` of the same render, when already computed."""
    prepared, render = diff.prepared, diff.render
    tw, th = prepared.image.size
    rw, rh = render.size
    height, width = diff.differs.shape
    overlap = width * height
    size_penalty = overlap / float(tw * th + rw * rh - overlap)
    if not len(diff.changed[0]):
        return Comparison(
            size_penalty, 0.0, 0.0, 1.0, (tw, th), (rw, rh), size_penalty, [], diff.differs
        )
    content_pixels = max(prepared.count_content(diff.render_rgb, diff.changed, height, width), 1)
    mismatch = diff.diff_pixels / float(overlap)
    content_mismatch = min(1.0, diff.diff_pixels / float(content_pixels))
    if structure is None:
        structure = render_structure(prepared, render)
    if structure is None:  # sizes differ: compare the overlap
        structure = structural_similarity(
            Image.fromarray(np.ascontiguousarray(prepared.rgb[:height, :width])),
            Image.fromarray(np.ascontiguousarray(diff.render_rgb)),
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
