"""One look at the page: render, compare with the target, locate the differences — the §7 object.

Shared by `kcode visual compare`, every fix-loop iteration and the benchmark. Pillow and numpy work runs
in a thread so the event loop (and Playwright's connection) stays responsive.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from kcode.visual.compare import (
    Comparison,
    PixelDiff,
    PreparedTarget,
    diff_pixels,
    finish_comparison,
    heatmap,
    render_structure,
)
from kcode.visual.errors import VisualError
from kcode.visual.locate import SourceIndex, locate_regions
from kcode.visual.page_render import PageRenderer, RenderResult
from kcode.visual.sources import PageSource
from kcode.visual.target_images import Viewport

# A target whose size differs this much from the render (overlap / union) is not the same page.
MIN_SIZE_AGREEMENT = 0.5


@dataclass
class Inspection:
    metrics: dict[str, Any]  # the SPEC §7 object
    comparison: Comparison
    render: RenderResult
    render_image: Image.Image
    # Drawn on first use (the model's message, the report), not on every iteration.
    target_image: Image.Image | None = None
    _heatmap: Image.Image | None = field(default=None, repr=False)
    timings: dict[str, float] = field(default_factory=dict)  # phase → milliseconds

    @property
    def heatmap_image(self) -> Image.Image:
        if self._heatmap is None:
            assert self.target_image is not None
            self._heatmap = heatmap(self.target_image, self.comparison)
        return self._heatmap


def check_sizes(target: Image.Image, other: Image.Image, other_name: str) -> None:
    tw, th = target.size
    ow, oh = other.size
    overlap = min(tw, ow) * min(th, oh)
    if overlap / float(tw * th + ow * oh - overlap) < MIN_SIZE_AGREEMENT:
        raise VisualError(
            f"the target is {tw}×{th} px but the {other_name} is {ow}×{oh} px: too different to "
            "compare. Use a screenshot of the same viewport (same width and height)"
        )


def metrics_object(
    comparison: Comparison,
    regions: list[dict[str, Any]],
    render: RenderResult | None,
    heatmap_path: Path | None,
) -> dict[str, Any]:
    return {
        "score": comparison.score,
        "mismatch": comparison.mismatch,
        "content_mismatch": comparison.content_mismatch,
        "structure": comparison.structure,
        "size": {"target": list(comparison.target_size), "render": list(comparison.render_size)},
        "size_penalty": comparison.size_penalty,
        "regions": regions,
        "blocked": list(render.blocked) if render else [],
        "console_errors": list(render.console_errors) if render else [],
        "failed_requests": list(render.failed_requests) if render else [],
        "fonts_ready": render.fonts_ready if render else True,
        "viewport": (
            {
                "width": render.viewport.width,
                "height": render.viewport.height,
                "scale": render.viewport.scale,
            }
            if render
            else None
        ),
        "heatmap": str(heatmap_path) if heatmap_path else None,
    }


def _timed(timings: dict[str, float], phase: str, work: Any, *args: Any) -> Any:
    clock = time.perf_counter()
    try:
        return work(*args)
    finally:
        timings[phase] = (time.perf_counter() - clock) * 1000


def _decode_and_diff(
    target: PreparedTarget, png: bytes, timings: dict[str, float]
) -> tuple[Image.Image, PixelDiff, float | None]:
    """Decodes the capture, diffs it with the target and computes its structure score. In one
    thread, one step after the other: run beside each other (or beside the locator's round trip)
    these small numpy steps mostly wait for each other's hold on the GIL."""
    clock = time.perf_counter()
    render_image: Image.Image = Image.open(io.BytesIO(png))
    render_image.load()
    if render_image.mode != "RGB":
        render_image = render_image.convert("RGB")
    timings["decode"] = (time.perf_counter() - clock) * 1000
    diff = _timed(timings, "compare", diff_pixels, target, render_image)
    structure = _timed(timings, "structure", render_structure, target, render_image, diff)
    return render_image, diff, structure


def _score(diff: PixelDiff, structure: float | None, timings: dict[str, float]) -> Comparison:
    comparison: Comparison = _timed(timings, "score", finish_comparison, diff, structure)
    return comparison


def save_heatmap(inspection: Inspection, path: Path) -> None:
    """Writes the heatmap PNG (fast zlib level: it is a local artefact, not an archive)."""
    clock = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    inspection.heatmap_image.save(path, format="PNG", compress_level=1)
    inspection.timings["heatmap"] = (time.perf_counter() - clock) * 1000


async def inspect_page(
    renderer: PageRenderer,
    source: PageSource,
    target: Image.Image | PreparedTarget,
    viewport: Viewport,
    heatmap_path: Path | None,
    sources: SourceIndex | None,
) -> Inspection:
    """Render, compare and locate; the heatmap PNG is written only when `heatmap_path` is given."""
    if not isinstance(target, PreparedTarget):
        target = await asyncio.to_thread(PreparedTarget, target)
    # The workspace scan for sources needs no page: it runs while the page renders.
    refresh = asyncio.create_task(
        asyncio.to_thread(sources.refresh) if sources else asyncio.sleep(0)
    )
    timings: dict[str, float] = {}
    prepared = target
    try:
        render = await renderer.render(
            source, viewport, lambda png: _decode_and_diff(prepared, png, timings)
        )
    finally:
        await refresh
    timings = {**render.timings, **timings}
    render_image, diff, structure = render.processed
    # Locating needs only the regions: the rest of the score is computed in a thread meanwhile.
    scoring = asyncio.create_task(asyncio.to_thread(_score, diff, structure, timings))
    clock = time.perf_counter()
    try:
        regions = await locate_regions(
            diff.regions, render.boxes, viewport.scale, renderer.describe_elements, sources
        )
    finally:
        comparison = await scoring
    timings["locate"] = (time.perf_counter() - clock) * 1000
    inspection = Inspection(
        metrics_object(comparison, regions, render, heatmap_path),
        comparison,
        render,
        render_image,
        target.image,
        timings=timings,
    )
    if heatmap_path is not None:
        await asyncio.to_thread(save_heatmap, inspection, heatmap_path)
    return inspection
