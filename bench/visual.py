"""Benchmark of the visual loop's building blocks (issue 5).

Figures, all measured in this run against baselines of the same run:
- warm iteration (render + screenshot + compare + locate of a 1280×800 page, browser already up),
  median, after a CSS edit (the usual fix: stylesheets swapped in place, see kcode/visual/restyle.py)
  and after an HTML edit (full reload), each against
    * a bare Playwright `page.screenshot()` of the same loaded page (the target: ≤ 1.5×), and
    * a bare `page.reload()` + `page.screenshot()` (what a naive harness pays per iteration);
- the per-phase split of both iterations (median ms);
- cold browser start (Playwright + Chromium launch);
- localisation: share of injected CSS defects whose element is among the top-3 located (≥ 90 %);
- discrimination: share of defects where the correct page scores higher than the defective one (100 %).
Each round measures all variants back to back, in rotating order, so load spikes hit them alike.
The LAST line starts with the CSS-edit iteration's ratio against the bare screenshot.
Run: .venv/bin/python bench/visual.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from kcode.visual.compare import PreparedTarget
from kcode.visual.locate import SourceIndex
from kcode.visual.page_render import PageRenderer
from kcode.visual.pipeline import inspect_page
from kcode.visual.sources import resolve_page_source
from kcode.visual.target_images import Viewport
from tests.visual.pages import DEFECTS, page_html, write_defective, write_page

VIEWPORT = Viewport(1280, 800)


def touch_edit(path: Path, text: str) -> None:
    """An edit the renderer must notice even within one clock tick of the previous one."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


async def main(rounds: int) -> None:
    print(f"before: {load_average()}")
    tmp = Path(tempfile.mkdtemp(prefix="kcode-bench-visual-"))
    good = write_page(tmp / "good")
    cold: list[float] = []
    for _ in range(2):
        started = time.perf_counter()
        probe = PageRenderer()
        await probe.start()
        cold.append(time.perf_counter() - started)
        await probe.close()

    async with PageRenderer() as renderer:
        good_source = resolve_page_source(good, None, None)
        target_png = (await renderer.render(good_source, VIEWPORT)).png
        target = Image.open(io.BytesIO(target_png)).convert("RGB")
        prepared = PreparedTarget(target)

        # Warm iterations on a page with a real difference (so compare and locate have work to
        # do); every round really edits a file, alternating between two versions, as a model does.
        work = write_defective(tmp / "warm", DEFECTS[2])
        source = resolve_page_source(work, None, None)
        sources = SourceIndex(work)
        styles, html = work / "styles.css", work / "index.html"
        css_versions = [styles.read_text(), styles.read_text() + ".hero p { color: #334155; }\n"]
        html_versions = [html.read_text(), page_html().replace("Cancel any time.", "Cancel.")]

        async def css_iteration(n: int) -> tuple[float, dict[str, float], str]:
            touch_edit(styles, css_versions[n % 2])
            started = time.perf_counter()
            got = await inspect_page(renderer, source, prepared, VIEWPORT, None, sources)
            return time.perf_counter() - started, got.timings, got.render.mode

        async def html_iteration(n: int) -> tuple[float, dict[str, float], str]:
            touch_edit(html, html_versions[n % 2])
            started = time.perf_counter()
            got = await inspect_page(renderer, source, prepared, VIEWPORT, None, sources)
            return time.perf_counter() - started, got.timings, got.render.mode

        async def bare_screenshot(n: int) -> tuple[float, dict[str, float], str]:
            started = time.perf_counter()
            await renderer.page.screenshot(type="png")
            return time.perf_counter() - started, {}, ""

        async def bare_reload_screenshot(n: int) -> tuple[float, dict[str, float], str]:
            started = time.perf_counter()
            await renderer.page.reload(wait_until="load")
            await renderer.page.screenshot(type="png")
            # (same files, same document state: the renderer's bookkeeping stays valid)
            return time.perf_counter() - started, {}, ""

        variants = {
            "css": css_iteration,
            "html": html_iteration,
            "shot": bare_screenshot,
            "reload+shot": bare_reload_screenshot,
        }
        for n in range(3):  # warm-up: context, caches, JIT of the page scripts
            for run in variants.values():
                await run(n)
        times: dict[str, list[float]] = defaultdict(list)
        phases: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        modes: dict[str, set[str]] = defaultdict(set)
        names = list(variants)
        for n in range(rounds):
            order = names[n % len(names) :] + names[: n % len(names)]
            for name in order:
                elapsed, timings, mode = await variants[name](n)
                times[name].append(elapsed)
                modes[name].add(mode)
                for phase, ms in timings.items():
                    phases[name][phase].append(ms)

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

    css, html_, shot = (statistics.median(times[k]) for k in ("css", "html", "shot"))
    reload_shot = statistics.median(times["reload+shot"])
    print(f"cold browser start: {min(cold) * 1000:.0f} ms (best of {len(cold)})")
    print(f"medians over {rounds} rounds (best in brackets):")
    for name, label in (
        ("shot", "bare page.screenshot()"),
        ("reload+shot", "bare page.reload() + page.screenshot()"),
        ("css", f"iteration after a CSS edit  [{'/'.join(sorted(modes['css']))}]"),
        ("html", f"iteration after an HTML edit [{'/'.join(sorted(modes['html']))}]"),
    ):
        print(f"  {label:45} {median_ms(times[name]):>7} ({min(times[name]) * 1000:.0f} ms)")
        if phases[name]:
            split = ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in phases[name].items())
            print(f"      phases (median ms): {split}")
    print(f"after: {load_average()}")
    top3 = 100.0 * hits / len(DEFECTS)
    discrimination = 100.0 * discriminated / len(DEFECTS)
    print(
        f"{css / shot:.2f}x bare screenshot (CSS-edit iteration {css * 1000:.0f} ms); "
        f"HTML-edit iteration {html_ / shot:.2f}x; vs bare reload+screenshot: CSS "
        f"{css / reload_shot:.2f}x, HTML {html_ / reload_shot:.2f}x; "
        f"top3 hit {top3:.0f}%; discrimination {discrimination:.0f}%"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args().rounds))
