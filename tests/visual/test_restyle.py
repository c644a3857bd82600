"""Re-renders after edits: a stylesheet swap in place must give exactly what a full reload gives.

Every test edits files between two renders in the same renderer, then renders a copy of the edited
workspace from scratch (another directory, so a full load) and requires the same pixels (within
Chromium's own load-to-load variation, see same_pixels) and identical element boxes.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kcode.visual.page_render import PageRenderer, RenderResult
from kcode.visual.sources import resolve_page_source
from tests.visual.conftest import VIEWPORT
from tests.visual.pages import page_html, write_page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


def pixels(result: RenderResult) -> np.ndarray:  # type: ignore[type-arg]
    return np.asarray(Image.open(io.BytesIO(result.png)).convert("RGB"))


FEW_PIXELS = 16


class PixelMatch:
    """same_pixels' answer: falsy on a mismatch, and then its repr (which pytest prints with the
    failed assert) says where the images differ and by how much, so a rare failure can be read."""

    def __init__(self, diff: np.ndarray) -> None:  # type: ignore[type-arg]
        self.max = int(diff.max()) if diff.size else 0
        ys, xs = np.nonzero(diff.max(axis=2) > 2) if diff.size else ((), ())
        self.off = len(xs)  # pixels more than two levels apart
        self.where = (
            f"x {min(xs)}..{max(xs)}, y {min(ys)}..{max(ys)} ({len(xs)} pixels)" if len(xs) else ""
        )

    def __bool__(self) -> bool:
        # A few isolated pixels a little further apart are rasterisation too (seen: 2 pixels, 3
        # levels, in a full run under load); a wrong restyle changes whole elements.
        return self.max <= 2 or (self.off <= FEW_PIXELS and self.max <= 8)

    def __repr__(self) -> str:
        return f"PixelMatch(max difference {self.max}{'; ' + self.where if self.where else ''})"


def same_pixels(a: RenderResult, b: RenderResult) -> PixelMatch:
    """Equal within one or two levels per channel (a handful of pixels may be a few levels more).
    Chromium's rasterisation of blurred box shadows can differ by a level between two loads of the
    same page (seen in about one run in 15-30 under load); a wrong restyle differs by far more,
    over whole elements."""
    return PixelMatch(np.abs(pixels(a).astype(np.int16) - pixels(b)))


def edit(path: Path, text: str) -> None:
    """Writes and moves the mtime forward (two edits within one clock tick still count)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


async def render(renderer: PageRenderer, root: Path) -> RenderResult:
    return await renderer.render(resolve_page_source(root, None, None), VIEWPORT)


async def fresh_render(renderer: PageRenderer, root: Path, tmp_path: Path) -> RenderResult:
    copy = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(root, copy)
    result = await render(renderer, copy)
    assert result.mode == "reload"
    return result


async def test_css_edit_restyles_in_place_with_the_pixels_of_a_reload(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    root = write_page(tmp_path / "site")
    first = await render(renderer, root)
    styles = root / "styles.css"
    edit(styles, styles.read_text() + ".hero h1 { font-size: 44px; color: #b91c1c; }\n")
    second = await render(renderer, root)
    assert second.mode == "restyle"
    assert not np.array_equal(pixels(first), pixels(second))  # the edit shows
    assert same_pixels(second, await fresh_render(renderer, root, tmp_path))
    # the element boxes follow the new layout too
    fresh = await fresh_render(renderer, root, tmp_path)
    assert second.boxes == fresh.boxes


async def test_a_rule_that_newly_shows_a_background_image_waits_for_it(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    root = write_page(tmp_path / "site", ".hero { background: url(stripes.png); }\n")
    Image.new("RGB", (8, 8), (220, 40, 200)).save(root / "stripes.png")
    await render(renderer, root)
    styles = root / "styles.css"
    edit(styles, styles.read_text() + ".site-footer { background: url(dots.png); }\n")
    Image.new("RGB", (4, 4), (20, 160, 60)).save(root / "dots.png")
    second = await render(renderer, root)
    assert second.mode == "restyle"
    assert same_pixels(second, await fresh_render(renderer, root, tmp_path))


async def test_html_edit_reloads(renderer: PageRenderer, tmp_path: Path) -> None:
    root = write_page(tmp_path / "site")
    await render(renderer, root)
    edit(root / "index.html", page_html().replace("Simple pricing", "Plans for everyone"))
    second = await render(renderer, root)
    assert second.mode == "reload"
    assert same_pixels(second, await fresh_render(renderer, root, tmp_path))


async def test_page_with_a_script_reloads_on_css_edit(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    # The script reads a computed style at load: only a reload shows the edited value.
    script = (
        "<script>document.addEventListener('DOMContentLoaded', () => {"
        " const h1 = document.querySelector('h1');"
        " h1.textContent = 'size ' + getComputedStyle(h1).fontSize; });</script>\n"
    )
    root = write_page(tmp_path / "site", html=page_html(extra_body=script))
    await render(renderer, root)
    styles = root / "styles.css"
    edit(styles, styles.read_text() + ".hero h1 { font-size: 40px; }\n")
    second = await render(renderer, root)
    assert second.mode == "reload"
    assert same_pixels(second, await fresh_render(renderer, root, tmp_path))


async def test_imported_stylesheet_edit_reloads(renderer: PageRenderer, tmp_path: Path) -> None:
    root = write_page(tmp_path / "site")
    styles = root / "styles.css"
    edit(styles, '@import "theme.css";\n' + styles.read_text())
    (root / "theme.css").write_text(".logo { color: #fbbf24; }\n", encoding="utf-8")
    await render(renderer, root)
    edit(root / "theme.css", ".logo { color: #22d3ee; font-size: 30px; }\n")
    second = await render(renderer, root)
    assert second.mode == "reload"
    assert same_pixels(second, await fresh_render(renderer, root, tmp_path))


async def test_a_file_that_appears_later_reloads(renderer: PageRenderer, tmp_path: Path) -> None:
    head = '<link rel="stylesheet" href="late.css">\n'
    root = write_page(tmp_path / "site", html=page_html(extra_head=head))
    await render(renderer, root)  # late.css is a 404 here
    (root / "late.css").write_text("body { background: #fde68a; }\n", encoding="utf-8")
    second = await render(renderer, root)
    assert second.mode in ("reload", "restyle")
    assert same_pixels(second, await fresh_render(renderer, root, tmp_path))


async def test_no_edit_recaptures_and_still_reports_blocked_requests(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    head = '<link rel="stylesheet" href="https://fonts.example.com/css?family=Inter">\n'
    root = write_page(tmp_path / "site", html=page_html(extra_head=head))
    first = await render(renderer, root)
    second = await render(renderer, root)
    assert second.mode == "recapture"
    assert np.array_equal(pixels(first), pixels(second))
    assert any("fonts.example.com" in url for url in second.blocked)


async def test_successive_css_edits_keep_restyling_with_the_pixels_of_a_reload(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    # Sheets without resources are handed over as text; the next edit must still find them, and
    # an edit that adds a resource (fetched relative to the sheet's own URL) must resolve it.
    root = write_page(tmp_path / "site")
    Image.new("RGB", (6, 6), (30, 90, 220)).save(root / "tile.png")
    await render(renderer, root)
    styles = root / "styles.css"
    original = styles.read_text()
    edits = [
        ".hero h1 { font-size: 40px; }\n",
        ".hero h1 { font-size: 36px; color: #15803d; }\n",
        ".hero { background: url(tile.png); }\n",
        ".cards { gap: 4px; }\n",
    ]
    results = []
    for extra in edits:  # one page throughout: a fresh render in between would reload it
        edit(styles, original + extra)
        results.append(await render(renderer, root))
    assert [r.mode for r in results] == ["restyle"] * len(edits)
    assert (await render(renderer, root)).mode == "recapture"  # the last edit counts as served
    for extra, result in zip(edits, results, strict=True):
        edit(styles, original + extra)
        fresh = await fresh_render(renderer, root, tmp_path)
        assert same_pixels(result, fresh), extra
        assert result.boxes == fresh.boxes


async def test_elements_described_ahead_show_the_styles_after_the_edit(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    # The elements the locator asked about are described again by the next restyle, ahead of
    # the capture: those descriptions must be of the page after the edit, as if asked afterwards.
    root = write_page(tmp_path / "site")
    first = await render(renderer, root)
    described = await renderer.describe_elements(list(range(len(first.boxes))))
    heading = next(i for i, d in enumerate(described) if d and d["tag"] == "h1")
    assert described[heading]["styles"]["color"] != "rgb(185, 28, 28)"  # type: ignore[index]
    await renderer.describe_elements([heading])
    styles = root / "styles.css"
    edit(styles, styles.read_text() + ".hero h1 { color: #b91c1c; }\n")
    assert (await render(renderer, root)).mode == "restyle"
    assert heading in renderer._described  # described on the way, no round trip needed
    ahead = (await renderer.describe_elements([heading]))[0]
    assert ahead is not None and ahead["styles"]["color"] == "rgb(185, 28, 28)"
    renderer._described.clear()
    assert (await renderer.describe_elements([heading]))[0] == ahead


async def test_an_edit_that_first_names_an_image_gives_the_boxes_after_it_loads(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    # The sheet named no resource before the edit; the edited one pulls in an image that pushes
    # content down. The boxes must be those of the page with the image, as after a reload.
    root = write_page(tmp_path / "site")
    Image.new("RGB", (120, 90), (20, 160, 60)).save(root / "banner.png")
    await render(renderer, root)
    styles = root / "styles.css"
    edit(styles, styles.read_text() + ".hero::before { content: url(banner.png); }\n")
    second = await render(renderer, root)
    assert second.mode == "restyle"
    fresh = await fresh_render(renderer, root, tmp_path)
    assert second.boxes == fresh.boxes
    assert same_pixels(second, fresh)
