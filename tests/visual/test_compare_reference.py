"""The fast comparison agrees with the definitions in compare.py / structure.py, written out plainly.

compare.py does colour maths only where bytes differ, batches neighbour lookups and computes SSIM
only for windows touching a differing pixel; these tests hold it to a direct per-pixel / per-window
reading of the same definitions on generated images (few colours, so exact and near matches both
happen; edits of every size, including ones touching the borders).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kcode.visual.compare import DELTA_LIMIT, MAX_YIQ_DELTA, diff_pixels
from kcode.visual.structure import (
    C1,
    C2,
    SSIM_WINDOW,
    STRUCTURE_SIDE,
    TEXTURE_VARIANCE,
    StructureBase,
)

PALETTE = np.array(
    [[255, 255, 255], [250, 250, 250], [30, 41, 59], [37, 99, 235], [22, 163, 74], [40, 100, 230]],
    dtype=np.uint8,
)


def reference_delta(a: np.ndarray, b: np.ndarray) -> float:
    def yiq(c: np.ndarray) -> tuple[float, float, float]:
        r, g, b_ = (float(v) for v in c)
        return (
            r * 0.29889531 + g * 0.58662247 + b_ * 0.11448223,
            r * 0.59597799 - g * 0.27417610 - b_ * 0.32180189,
            r * 0.21147017 - g * 0.52261711 + b_ * 0.31114694,
        )

    (y1, i1, q1), (y2, i2, q2) = yiq(a), yiq(b)
    return (
        0.5053 * (y1 - y2) ** 2 + 0.299 * (i1 - i2) ** 2 + 0.1957 * (q1 - q2) ** 2
    ) / MAX_YIQ_DELTA


def reference_differs(t: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(differs, borderline): a pixel differs when its colour distance exceeds the limit, unless the
    same colour (within the limit) is within 1 px in the other image, both ways. `borderline`
    marks pixels where a distance lies within float rounding of the limit."""
    height, width, _ = t.shape
    differs = np.zeros((height, width), dtype=bool)
    borderline = np.zeros((height, width), dtype=bool)

    def near(d: float, y: int, x: int) -> bool:
        if abs(d - DELTA_LIMIT) < 1e-5:
            borderline[y, x] = True
        return d <= DELTA_LIMIT

    def found(src: np.ndarray, other: np.ndarray, y: int, x: int) -> bool:
        hit = False
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = y + dy, x + dx
                if (dy or dx) and 0 <= ny < height and 0 <= nx < width:
                    hit |= near(reference_delta(src[y, x], other[ny, nx]), y, x)
        return hit

    for y in range(height):
        for x in range(width):
            if near(reference_delta(t[y, x], r[y, x]), y, x):
                continue
            differs[y, x] = not (found(t, r, y, x) and found(r, t, y, x))
    return differs, borderline


def reference_structure(target: Image.Image, render: Image.Image) -> float:
    factor = 1
    while max(target.size) > STRUCTURE_SIDE * factor:
        factor += 1
    a = np.asarray(target.convert("L").reduce(factor)).astype(np.float64) / 255
    b = np.asarray(render.convert("L").reduce(factor)).astype(np.float64) / 255
    n = SSIM_WINDOW
    if min(a.shape) < n:  # not one window: how far the grey levels are apart
        return float(1 - np.abs(a - b).mean())
    scores, flat_gap = [], []
    for y in range(a.shape[0] - n + 1):
        for x in range(a.shape[1] - n + 1):
            wa, wb = a[y : y + n, x : x + n], b[y : y + n, x : x + n]
            ma, mb = wa.mean(), wb.mean()
            va, vb = wa.var(), wb.var()
            cov = ((wa - ma) * (wb - mb)).mean()
            flat_gap.append(abs(ma - mb))
            if va > TEXTURE_VARIANCE or vb > TEXTURE_VARIANCE:
                scores.append(
                    ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma**2 + mb**2 + C1) * (va + vb + C2))
                )
    if not scores:
        return float(np.clip(1 - np.mean(flat_gap) * 4, 0, 1))
    return float(np.clip(np.mean(scores), 0, 1))


@st.composite
def image_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    width = draw(st.integers(3, 24))
    height = draw(st.integers(3, 18))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    target = PALETTE[rng.integers(0, len(PALETTE), (height, width))]
    render = target.copy()
    for _ in range(draw(st.integers(0, 4))):  # rectangles repainted, shifted or jittered
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        y1, x1 = int(rng.integers(y0, height)) + 1, int(rng.integers(x0, width)) + 1
        kind = draw(st.sampled_from(["paint", "shift", "jitter"]))
        if kind == "paint":
            render[y0:y1, x0:x1] = PALETTE[rng.integers(0, len(PALETTE))]
        elif kind == "shift":
            render[y0:y1, x0:x1] = np.roll(target, 1, axis=1)[y0:y1, x0:x1]
        else:
            noise = rng.integers(-12, 13, (y1 - y0, x1 - x0, 3))
            render[y0:y1, x0:x1] = np.clip(render[y0:y1, x0:x1] + noise, 0, 255)
    return target, render


@settings(max_examples=150, deadline=None)
@given(image_pairs())
def test_pixel_diff_matches_the_definition(pair: tuple[np.ndarray, np.ndarray]) -> None:
    target, render = pair
    got = diff_pixels(Image.fromarray(target), Image.fromarray(render)).differs
    expected, borderline = reference_differs(target, render)
    assert np.array_equal(got & ~borderline, expected & ~borderline)


@settings(max_examples=30, deadline=None)
@given(image_pairs(), st.integers(1, 40), st.integers(1, 4))
def test_structure_matches_a_per_window_ssim(
    pair: tuple[np.ndarray, np.ndarray], scale_x: int, scale_y: int
) -> None:
    target, render = pair
    # Upscaled so that the grey copies hold several 7×7 windows with texture and flat areas (and,
    # past STRUCTURE_SIDE px, are reduced).
    size = (target.shape[1] * scale_x, target.shape[0] * scale_y)
    big_target = Image.fromarray(target).resize(size, Image.Resampling.NEAREST)
    big_render = Image.fromarray(render).resize(size, Image.Resampling.NEAREST)
    base = StructureBase(big_target)
    expected = reference_structure(big_target, big_render)
    assert abs(base.similarity(big_render) - expected) < 1e-9
    # Told where the pixels changed, it redoes only that part of the grey copy: same score.
    rows, cols = np.nonzero((np.asarray(big_target) != np.asarray(big_render)).any(axis=2))
    if len(rows):
        changed = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
        assert abs(base.similarity(big_render, changed) - expected) < 1e-9


@settings(max_examples=100, deadline=None)
@given(
    st.integers(8, 1200),
    st.integers(8, 60),
    st.integers(0, 2**32 - 1),
)
def test_grey_copy_of_the_changed_part_equals_the_whole_grey_copy(
    width: int, height: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    render = target.copy()
    x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
    x1, y1 = int(rng.integers(x0, width)) + 1, int(rng.integers(y0, height)) + 1
    render[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    base = StructureBase(Image.fromarray(target))
    whole = base.render_grey(Image.fromarray(render), None)
    assert np.array_equal(base.render_grey(Image.fromarray(render), (x0, y0, x1, y1)), whole)
