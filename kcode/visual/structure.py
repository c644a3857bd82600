"""Structural similarity (SSIM) of two images, on grey copies downscaled to at most STRUCTURE_SIDE px.

Averaged over the 7×7 windows that have texture (standard deviation > 2/255 in either image): flat
background windows agree trivially and are left out. The target's side (its grey copy, window means
and variances) is computed once per run (compare.PreparedTarget), not once per render.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

STRUCTURE_SIDE = 384

Array = NDArray[Any]


def _box_mean(values: Array, size: int) -> Array:
    """Mean over size×size windows (valid part only) via a summed-area table."""
    table = np.pad(values, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    out: Array = (
        table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    ) / float(size * size)
    return out


def grey_small(image: Image.Image, size: tuple[int, int]) -> Array:
    grey: Array = np.asarray(
        image.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float32
    )
    return grey / 255


SSIM_WINDOW = 7


def window_stats(grey: Array) -> tuple[Array, Array] | None:
    """Per-window mean and variance of one side (None when the image is smaller than a window)."""
    if min(grey.shape) < SSIM_WINDOW:
        return None
    mean = _box_mean(grey, SSIM_WINDOW)
    return mean, np.maximum(_box_mean(grey * grey, SSIM_WINDOW) - mean * mean, 0)


def structural_similarity(
    target: Image.Image,
    render: Image.Image,
    target_small: Array | None = None,
    target_stats: tuple[Array, Array] | None = None,
) -> float:
    factor = min(1.0, STRUCTURE_SIDE / max(target.size))
    size = (max(8, round(target.size[0] * factor)), max(8, round(target.size[1] * factor)))
    a = target_small if target_small is not None else grey_small(target, size)
    b = grey_small(render, size)
    window = SSIM_WINDOW
    stats = target_stats if target_stats is not None else window_stats(a)
    if stats is None:
        return 1.0 if np.array_equal(a, b) else float(1 - np.abs(a - b).mean())
    mu_a, var_a = stats
    mu_b = _box_mean(b, window)
    var_b = np.maximum(_box_mean(b * b, window) - mu_b * mu_b, 0)
    cov = _box_mean(a * b, window) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    textured = (var_a > (2 / 255) ** 2) | (var_b > (2 / 255) ** 2)
    if not textured.any():
        return float(np.clip(1 - np.abs(mu_a - mu_b).mean() * 4, 0, 1))
    return float(np.clip(ssim[textured].mean(), 0, 1))
