"""Differing regions: the pixels of a diff mask grouped into a few boxes, largest first.

Differing pixels are pooled into CELL×CELL cells, dilated by one cell (so nearby differences merge),
grouped into connected components, tightened to their pixels and merged while their boxes overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

CELL = 8
MAX_REGIONS = 12
MIN_REGION_PIXELS = 6

Array = NDArray[Any]


@dataclass
class Region:
    x: int
    y: int
    w: int
    h: int
    pixels: int  # differing pixels inside the box
    # The topmost (then leftmost) differing pixel: where a shift of the content below usually starts.
    first: tuple[int, int] = (0, 0)

    @property
    def area(self) -> int:
        return self.w * self.h

    def to_json(self) -> dict[str, Any]:
        return {"box": [self.x, self.y, self.w, self.h], "area": self.area, "pixels": self.pixels}


def find_regions(mask: NDArray[np.bool_], where: tuple[Array, Array] | None = None) -> list[Region]:
    """Regions of `mask`; `where` (the rows and columns of its set pixels), when the caller has
    them, saves a pass over the whole mask."""
    height, width = mask.shape
    ys, xs = where if where is not None else np.nonzero(mask)
    if not len(ys):
        return []
    rows, cols = -(-height // CELL), -(-width // CELL)
    cells = np.zeros((rows, cols), dtype=bool)
    cells[ys // CELL, xs // CELL] = True
    grown = cells.copy()
    grown[1:, :] |= cells[:-1, :]
    grown[:-1, :] |= cells[1:, :]
    grown[:, 1:] |= cells[:, :-1]
    grown[:, :-1] |= cells[:, 1:]
    boxes = [_tighten(mask, box) for box in connected_boxes(grown)]
    regions = _merge_overlapping([r for r in boxes if r is not None])
    regions = [r for r in regions if r.pixels >= MIN_REGION_PIXELS] or regions[:1]
    regions.sort(key=lambda r: r.area, reverse=True)
    return regions[:MAX_REGIONS]


def connected_boxes(cells: NDArray[np.bool_]) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x0, y0, x1, y1 in pixels) of 4-connected groups of cells, in the raster
    order of each group's first cell.

    Works on horizontal runs of cells rather than single cells: runs on neighbouring rows that
    share a column belong together (union-find over runs, far fewer than cells)."""
    edges = np.diff(np.pad(cells, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    start_rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # exclusive; same raster order as the starts
    runs = list(zip(start_rows.tolist(), starts.tolist(), ends.tolist(), strict=True))
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    previous: list[int] = []  # runs of the row above
    current: list[int] = []
    row_of_current = -1
    for index, (row, start, end) in enumerate(runs):
        if row != row_of_current:
            previous = current if row == row_of_current + 1 else []
            current, row_of_current = [], row
        for above in previous:
            _, above_start, above_end = runs[above]
            if above_start < end and start < above_end:
                a, b = root(above), root(index)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        current.append(index)
    boxes: dict[int, list[int]] = {}
    for index, (row, start, end) in enumerate(runs):
        box = boxes.get(root(index))
        if box is None:
            boxes[root(index)] = [start, row, end, row + 1]
        else:
            box[0], box[2], box[3] = min(box[0], start), max(box[2], end), row + 1
    return [(x0 * CELL, y0 * CELL, x1 * CELL, y1 * CELL) for x0, y0, x1, y1 in boxes.values()]


def _tighten(mask: NDArray[np.bool_], box: tuple[int, int, int, int]) -> Region | None:
    x0, y0, x1, y1 = box
    part = mask[y0:y1, x0:x1]
    rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
    if not len(rows):
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    first = (x0 + int(np.argmax(part[top])), y0 + top)
    pixels = int(np.count_nonzero(part))
    return Region(x0 + left, y0 + top, right - left + 1, bottom - top + 1, pixels, first)


def _merge_overlapping(regions: list[Region]) -> list[Region]:
    merged = True
    while merged:
        merged = False
        out: list[Region] = []
        for region in regions:
            for other in out:
                if (
                    region.x < other.x + other.w
                    and other.x < region.x + region.w
                    and region.y < other.y + other.h
                    and other.y < region.y + region.h
                ):
                    x0, y0 = min(region.x, other.x), min(region.y, other.y)
                    x1 = max(region.x + region.w, other.x + other.w)
                    y1 = max(region.y + region.h, other.y + other.h)
                    other.x, other.y, other.w, other.h = x0, y0, x1 - x0, y1 - y0
                    other.pixels += region.pixels
                    other.first = min(other.first, region.first, key=lambda p: (p[1], p[0]))
                    merged = True
                    break
            else:
                out.append(region)
        regions = out
    return regions
