"""One look at the page: render, compare with the target, locate the differences — the §7 object.

Shared by `kcode visual compare`, every fix-loop iteration and the benchmark. Pillow and numpy work runs
in a thread so the event loop (and Playwright's connection) stays responsive.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from kcode.visual.compare import Comparison, PreparedTarget, compare_images, heatmap
from kcode.visual.errors import VisualError
from kcode.visual.images import Viewport
from kcode.visual.locate import SourceIndex, locate_regions
from kcode.visual.render import PageSource, Renderer, RenderResult

# A target whose size differs this much from the render (overlap / union) is not the same page.
MIN_SIZE_AGREEMENT = 0.5


@dataclass
class Inspection:
    metrics: dict[str, Any]  # the SPEC §7 object
    comparison: Comparison
    render: RenderResult
    render_image: Image.Image
    heatmap_image: Image.Image


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


def _compare_and_draw(
    target: PreparedTarget, png: bytes, heatmap_path: Path | None
) -> tuple[Image.Image, Comparison, Image.Image]:
    render_image = Image.open(io.BytesIO(png)).convert("RGB")
    comparison = compare_images(target, render_image)
    heat = heatmap(target.image, comparison)
    if heatmap_path is not None:
        heatmap_path.parent.mkdir(parents=True, exist_ok=True)
        heat.save(heatmap_path, format="PNG", compress_level=1)
    return render_image, comparison, heat


async def inspect_page(
    renderer: Renderer,
    source: PageSource,
    target: Image.Image | PreparedTarget,
    viewport: Viewport,
    heatmap_path: Path | None,
    sources: SourceIndex | None,
) -> Inspection:
    render = await renderer.render(source, viewport)
    if not isinstance(target, PreparedTarget):
        target = await asyncio.to_thread(PreparedTarget, target)
    refresh = asyncio.to_thread(sources.refresh) if sources else asyncio.sleep(0)
    (render_image, comparison, heat), _ = await asyncio.gather(
        asyncio.to_thread(_compare_and_draw, target, render.png, heatmap_path), refresh
    )
    regions = await locate_regions(
        comparison.regions, render.boxes, viewport.scale, renderer.describe_elements, sources
    )
    return Inspection(
        metrics_object(comparison, regions, render, heatmap_path),
        comparison,
        render,
        render_image,
        heat,
    )
