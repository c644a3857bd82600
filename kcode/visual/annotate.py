"""Finding a red circle or box the user drew on a screenshot to point at a bug.

A mark is a connected group of saturated red pixels (R ≥ 170, R − max(G, B) ≥ 90) whose bounding box
is at least MIN_MARK_SIDE px on each side and mostly hollow (the red pixels fill < 45 % of the box), so a
red button or badge of the design is not taken for an annotation. The largest such ring wins.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from kcode.visual.regions import CELL, connected_boxes

MIN_MARK_SIDE = 16
MAX_FILL = 0.45


def red_mask(image: Image.Image) -> NDArray[np.bool_]:
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mask: NDArray[np.bool_] = (r >= 170) & (r - np.maximum(g, b) >= 90)
    return mask


def find_red_mark(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The (x, y, w, h) box of the drawn mark, in image pixels, or None."""
    mask = red_mask(image)
    if mask.sum() < 4 * MIN_MARK_SIDE:
        return None
    height, width = mask.shape
    rows, cols = -(-height // CELL), -(-width // CELL)
    padded = np.zeros((rows * CELL, cols * CELL), dtype=bool)
    padded[:height, :width] = mask
    cells: NDArray[np.bool_] = np.asarray(padded.reshape(rows, CELL, cols, CELL).any(axis=(1, 3)))
    best: tuple[int, int, int, int] | None = None
    for x0, y0, x1, y1 in connected_boxes(cells):
        part = mask[y0:y1, x0:x1]
        ys, xs = np.nonzero(part)
        if not len(ys):
            continue
        bx0, by0 = x0 + int(xs.min()), y0 + int(ys.min())
        bw, bh = int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1
        if bw < MIN_MARK_SIDE or bh < MIN_MARK_SIDE:
            continue
        if len(ys) / float(bw * bh) >= MAX_FILL:
            continue
        if best is None or bw * bh > best[2] * best[3]:
            best = (bx0, by0, bw, bh)
    return best


def mark_is_annotation(mark: tuple[int, int, int, int], render: Image.Image) -> bool:
    """True when the live render has no such red ring there (it was drawn by the user)."""
    x, y, w, h = mark
    if x + w > render.size[0] or y + h > render.size[1]:
        return True
    crop = render.crop((x, y, x + w, y + h))
    return float(red_mask(crop).mean()) < 0.02
