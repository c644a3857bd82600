"""Benchmark of the visual loop's building blocks (issue 5).

Figures, all measured in this run against baselines of the same run:
- warm iteration (render + screenshot + compare + locate of a 1280×800 page, browser already up),
  median, against a bare Playwright `page.screenshot()` of the same loaded page (target ≤ 1.5×);
- cold browser start (Playwright + Chromium launch);
- localisation: share of injected CSS defects whose element is among the top-3 located (≥ 90 %);
- discrimination: share of defects where the correct page scores higher than the defective one (100 %).
The LAST line starts with the ratio. Run: .venv/bin/python bench/visual.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from kcode.visual.compare import PreparedTarget
from kcode.visual.images import Viewport
from kcode.visual.locate import SourceIndex
from kcode.visual.pipeline import inspect_page
from kcode.visual.render import Renderer, resolve_page_source
from tests.visual.pages import DEFECTS, write_defective, write_page

VIEWPORT = Viewport(1280, 800)


async def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kcode-bench-visual-"))
    good = write_page(tmp / "good")
    cold: list[float] = []
    for _ in range(2):
        started = time.perf_counter()
        probe = Renderer()
        await probe.start()
        cold.append(time.perf_counter() - started)
        await probe.close()

    async with Renderer() as renderer:
        good_source = resolve_page_source(good, None, None)
        target_png = (await renderer.render(good_source, VIEWPORT)).png
        target = Image.open(io.BytesIO(target_png)).convert("RGB")
        prepared = PreparedTarget(target)

        # Warm iteration on a page with a real difference (so compare and locate have work to do).
        defective = write_defective(tmp / "warm", DEFECTS[2])
        source = resolve_page_source(defective, None, None)
        sources = SourceIndex(defective)
        for _ in range(2):  # warm-up: context, caches, JIT of the page scripts
            await inspect_page(renderer, source, prepared, VIEWPORT, None, sources)
            await renderer.page.screenshot(type="png")
        iteration_s: list[float] = []
        bare_s: list[float] = []
        render_s: list[float] = []
        for _ in range(rounds):
            started = time.perf_counter()
            await renderer.render(source, VIEWPORT)
            render_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            await inspect_page(renderer, source, prepared, VIEWPORT, None, sources)
            iteration_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            await renderer.page.screenshot(type="png")
            bare_s.append(time.perf_counter() - started)

        hits = discriminated = 0
        for defect in DEFECTS:
            root = write_defective(tmp / defect.name.replace(" ", "-"), defect)
            inspection = await inspect_page(
                renderer, resolve_page_source(root, None, None), prepared, VIEWPORT, None,
                SourceIndex(root),
            )  # fmt: skip
            selectors = [
                e["selector"] for r in inspection.metrics["regions"] for e in r["elements"]
            ]
            hit = any(defect.expected in s for s in selectors[:3])
            correct = await inspect_page(renderer, good_source, prepared, VIEWPORT, None, None)
            better = correct.metrics["score"] > inspection.metrics["score"]
            hits += hit
            discriminated += better
            print(
                f"  {defect.name:15} score {inspection.metrics['score']:.4f} vs correct "
                f"{correct.metrics['score']:.4f}  top3 {'hit ' if hit else 'MISS'} {selectors[:3]}"
            )

    iteration = statistics.median(iteration_s)
    bare = statistics.median(bare_s)
    print(f"cold browser start: {min(cold) * 1000:.0f} ms (best of {len(cold)})")
    print(f"warm iteration median: {iteration * 1000:.0f} ms over {rounds} rounds")
    print(
        f"  of which render alone (reload + freeze + fonts + boxes + capture): "
        f"{statistics.median(render_s) * 1000:.0f} ms"
    )
    print(f"bare page.screenshot() median: {bare * 1000:.0f} ms")
    top3 = 100.0 * hits / len(DEFECTS)
    discrimination = 100.0 * discriminated / len(DEFECTS)
    print(
        f"{iteration / bare:.2f}x bare screenshot; top3 hit {top3:.0f}%; "
        f"discrimination {discrimination:.0f}%"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    asyncio.run(main(parser.parse_args().rounds))
