"""Structural similarity (SSIM) of two images, on grey copies downscaled to at most STRUCTURE_SIDE px.

The grey copies are reduced by the smallest whole factor that brings the longer side to at most
STRUCTURE_SIDE px (block means; a partial block at the right or bottom edge averages what it has).
SSIM is averaged over the 7×7 windows that have texture (standard deviation > 2/255 in either image):
flat background windows agree trivially and are left out. The target's side (its grey copy, window
means and variances) is computed once per run (StructureBase), not once per render.

Only what changed is computed. With whole-factor blocks, the grey copy of a block-aligned crop is
exactly that part of the whole grey copy, so a render's grey copy is the target's with the crop around
the changed pixels redone. A window whose pixels are the same in both images has an SSIM of exactly 1
and is textured exactly when the target's window is, so only the windows touching a pixel that
differs are computed; the others count as 1. Window sums are taken in float64 so that the texture
test (a variance of ~6e-5) is not lost in rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

STRUCTURE_SIDE = 384
SSIM_WINDOW = 7
TEXTURE_VARIANCE = (2 / 255) ** 2
C1, C2 = 0.01**2, 0.03**2

Array = NDArray[Any]


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (end exclusive), full-size pixels


def reduction(size: tuple[int, int]) -> int:
    """The whole factor the grey copies are reduced by."""
    return max(1, -(-max(size) // STRUCTURE_SIDE))


def grey_small(image: Image.Image, factor: int, box: Box | None = None) -> NDArray[np.uint8]:
    """The reduced grey copy of the image, or of the part in `box` (aligned to `factor`)."""
    grey = (image if box is None else image.crop(box)).convert("L")
    return np.asarray(grey.reduce(factor) if factor > 1 else grey)


def _box_sums(values: Array) -> Array:
    """Sum over every SSIM_WINDOW×SSIM_WINDOW window (valid part only), via a summed-area table."""
    n = SSIM_WINDOW
    table = np.pad(values, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    out: Array = table[n:, n:] - table[:-n, n:] - table[n:, :-n] + table[:-n, :-n]
    return out


def _mean_and_variance(grey: Array) -> tuple[Array, Array]:
    area = float(SSIM_WINDOW * SSIM_WINDOW)
    mean = _box_sums(grey) / area
    return mean, np.maximum(_box_sums(grey * grey) / area - mean * mean, 0)


class StructureBase:
    """The target's side of the structure score."""

    def __init__(self, image: Image.Image) -> None:
        self.image_size = image.size
        self.factor = reduction(image.size)
        self.grey = grey_small(image, self.factor)
        self.fits = min(self.grey.shape) >= SSIM_WINDOW  # else too small for one window
        if self.fits:
            self.values = self.grey / 255.0  # float64
            self.mean, self.variance = _mean_and_variance(self.values)
            self.textured = self.variance > TEXTURE_VARIANCE
            self.textured_count = int(self.textured.sum())

    def render_grey(self, render: Image.Image, changed: Box | None) -> NDArray[np.uint8]:
        """The render's reduced grey copy; with `changed` (a box outside which the render's pixels
        equal the target's), only the blocks under that box are computed."""
        if changed is None:
            return grey_small(render, self.factor)
        k = self.factor
        width, height = self.image_size
        x0, y0 = changed[0] // k * k, changed[1] // k * k
        x1, y1 = min(width, -(-changed[2] // k) * k), min(height, -(-changed[3] // k) * k)
        other = self.grey.copy()
        other[y0 // k : -(-y1 // k), x0 // k : -(-x1 // k)] = grey_small(
            render, k, (x0, y0, x1, y1)
        )
        return other

    def similarity(self, render: Image.Image, changed: Box | None = None) -> float:
        """The structure score of a render of the target's size, in [0, 1]. `changed`: see
        render_grey."""
        if render.size != self.image_size:
            raise ValueError(f"render is {render.size}, target {self.image_size}")
        other = self.render_grey(render, changed)
        dirty = self.grey != other
        if not dirty.any():
            return 1.0
        if not self.fits:
            return float(1 - np.abs(self.grey / 255.0 - other / 255.0).mean())
        # Windows touching a differing pixel lie within its bounding box grown up and left by a
        # window: compute those (the box may include clean windows, which come out as 1).
        rows, cols = np.flatnonzero(dirty.any(1)), np.flatnonzero(dirty.any(0))
        last_row, last_col = self.mean.shape[0] - 1, self.mean.shape[1] - 1
        r0, r1 = max(0, int(rows[0]) - SSIM_WINDOW + 1), min(last_row, int(rows[-1]))
        c0, c1 = max(0, int(cols[0]) - SSIM_WINDOW + 1), min(last_col, int(cols[-1]))
        span = (slice(r0, r1 + SSIM_WINDOW), slice(c0, c1 + SSIM_WINDOW))
        windows = (slice(r0, r1 + 1), slice(c0, c1 + 1))
        a, b = self.values[span], other[span] / 255.0
        mu_a, var_a = self.mean[windows], self.variance[windows]
        mu_b, var_b = _mean_and_variance(b)
        cov = _box_sums(a * b) / float(SSIM_WINDOW * SSIM_WINDOW) - mu_a * mu_b
        ssim = ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / (
            (mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2)
        )
        textured = self.textured[windows] | (var_b > TEXTURE_VARIANCE)
        clean = self.textured_count - int(self.textured[windows].sum())  # outside the box
        counted = clean + int(textured.sum())
        if not counted:  # no texture anywhere: how far the window means are apart
            spread = float(np.abs(mu_a - mu_b).sum()) / self.mean.size
            return float(np.clip(1 - spread * 4, 0, 1))
        return float(np.clip((clean + float(ssim[textured].sum())) / counted, 0, 1))


def structural_similarity(target: Image.Image, render: Image.Image) -> float:
    """The structure score of two images of the same size."""
    return StructureBase(target).similarity(render)
