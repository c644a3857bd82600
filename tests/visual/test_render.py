"""Rendering, blocking, localisation and annotation against a real Chromium (one per module)."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from kcode.visual.errors import VisualError
from kcode.visual.locate import SourceIndex, locate_regions
from kcode.visual.page_render import PageRenderer
from kcode.visual.pipeline import inspect_page
from kcode.visual.regions import Region
from kcode.visual.sources import resolve_page_source
from kcode.visual.target_images import Viewport
from tests.visual.conftest import VIEWPORT
from tests.visual.pages import DEFECTS, Defect, write_defective, write_page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]
    stall: threading.Event

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path.startswith("/stall"):
            self.stall.wait(30)
            return
        body = b"<html><body><h1 id='dev'>dev server</h1><img src='/stall.png'></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    stall = threading.Event()
    handler = type("Handler", (_Recorder,), {"hits": hits, "stall": stall})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    stall.set()
    server.shutdown()
    server.server_close()


async def test_outside_requests_are_blocked_and_never_fetched(
    renderer: PageRenderer, tmp_path: Path, local_server: tuple[str, list[str]]
) -> None:
    origin, hits = local_server
    head = (
        '  <link rel="stylesheet" href="https://fonts.googleapis.com/css2?family=Inter">\n'
        f'  <link rel="preload" as="font" crossorigin href="{origin}/font.woff2">\n'
        f'  <script src="{origin}/analytics.js"></script>\n'
        '  <script src="https://cdn.example.com/lib.js"></script>\n'
        "  <style>@font-face { font-family: Remote; src: url(https://fonts.gstatic.com/x.woff2); }"
        " h1 { font-family: Remote, sans-serif; }</style>\n"
    )
    from tests.visual.pages import page_html

    root = write_page(tmp_path, html=page_html(extra_head=head))
    result = await asyncio.wait_for(
        renderer.render(resolve_page_source(root, None, None), VIEWPORT), timeout=20
    )
    assert Image.open(io.BytesIO(result.png)).size == (1280, 800)
    assert f"{origin}/analytics.js" in result.blocked
    assert "https://cdn.example.com/lib.js" in result.blocked
    assert "https://fonts.googleapis.com/css2?family=Inter" in result.blocked
    assert hits == []  # the loopback server is not the page's origin: nothing reached it


async def test_es_modules_and_relative_paths_are_served_from_disk(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.js").write_text(
        "import { label } from './label.mjs';\ndocument.getElementById('out').textContent = label;\n"
    )
    (tmp_path / "src" / "label.mjs").write_text("export const label = 'loaded by a module';\n")
    (tmp_path / "index.html").write_text(
        '<html><body><p id="out">not loaded</p><script type="module" src="src/app.js"></script>'
        "</body></html>"
    )
    result = await renderer.render(resolve_page_source(tmp_path, None, None), VIEWPORT)
    assert result.console_errors == [] and result.blocked == []
    text = await renderer.page.text_content("#out")
    assert text == "loaded by a module"


async def test_a_page_that_never_loads_times_out_with_a_clear_message(
    renderer: PageRenderer, tmp_path: Path, local_server: tuple[str, list[str]]
) -> None:
    origin, hits = local_server
    renderer.timeout_s = 2
    try:
        with pytest.raises(VisualError, match="did not finish loading within 2 s"):
            await renderer.render(resolve_page_source(tmp_path, None, origin + "/"), VIEWPORT)
    finally:
        renderer.timeout_s = 10
    assert "/stall.png" in hits  # the explicit loopback dev server was allowed
    # The renderer recovers: the next page renders normally.
    root = write_page(tmp_path / "after")
    result = await renderer.render(resolve_page_source(root, None, None), VIEWPORT)
    assert result.png


async def test_a_script_busy_looping_after_load_times_out(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text(
        "<html><body><h1>hi</h1><script>addEventListener('load', () =>"
        " setTimeout(() => { while (true) {} }, 0))</script></body></html>"
    )
    renderer.timeout_s = 2
    try:
        with pytest.raises(VisualError, match="within 2 s"):
            await renderer.render(resolve_page_source(tmp_path, None, None), VIEWPORT)
    finally:
        renderer.timeout_s = 10


async def test_identical_render_scores_one(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    root = write_page(tmp_path)
    inspection = await inspect_page(
        renderer, resolve_page_source(root, None, None), target_image, VIEWPORT, None, None
    )
    assert inspection.metrics["score"] == 1.0
    assert inspection.metrics["regions"] == []


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.name for d in DEFECTS])
async def test_defects_score_lower_and_are_located(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path, defect: Defect
) -> None:
    root = write_defective(tmp_path, defect)
    inspection = await inspect_page(
        renderer, resolve_page_source(root, None, None), target_image, VIEWPORT,
        tmp_path / "diff.png", SourceIndex(root),
    )  # fmt: skip
    metrics = inspection.metrics
    assert metrics["score"] < 0.99
    top3 = [e["selector"] for region in metrics["regions"] for e in region["elements"]][:3]
    assert any(defect.expected in selector for selector in top3), top3
    first = metrics["regions"][0]["elements"][0]
    assert first["source"] is not None and first["source"].startswith("styles.css:")
    assert (tmp_path / "diff.png").is_file()


async def test_red_circle_on_a_render_maps_to_the_element(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    from kcode.visual.annotate import find_red_mark

    root = write_page(tmp_path)
    result = await renderer.render(resolve_page_source(root, None, None), VIEWPORT)
    pro_button = await renderer.page.eval_on_selector(
        "#plan-pro .buy",
        "e => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }",
    )
    x, y, w, h = pro_button
    marked = target_image.copy()
    ImageDraw.Draw(marked).ellipse((x - 14, y - 12, x + w + 14, y + h + 12), outline="red", width=4)
    mark = find_red_mark(marked)
    assert mark is not None
    mx, my, mw, mh = mark
    located = await locate_regions(
        [Region(mx, my, mw, mh, mw * mh, (mx + mw // 2, my + mh // 2))], result.boxes, 1.0,
        renderer.describe_elements, SourceIndex(root),
    )  # fmt: skip
    assert located[0]["elements"][0]["selector"] == "#plan-pro > button.buy"
    assert located[0]["elements"][0]["source"] == "styles.css:24"


async def test_two_x_target_renders_at_device_scale_two(
    renderer: PageRenderer, tmp_path: Path
) -> None:
    root = write_page(tmp_path)
    result = await renderer.render(resolve_page_source(root, None, None), Viewport(640, 400, 2.0))
    assert Image.open(io.BytesIO(result.png)).size == (1280, 800)


async def test_without_cdp_page_calls_and_capture_go_through_playwright(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    # Not every browser gives a CDP session: then the same page functions run through Playwright's
    # evaluate and the capture is page.screenshot(), with the same result.
    root = write_defective(tmp_path, DEFECTS[0])
    source = resolve_page_source(root, None, None)
    with_cdp = await inspect_page(renderer, source, target_image, VIEWPORT, None, SourceIndex(root))
    cdp, renderer._channel.cdp = renderer._channel.cdp, None
    try:
        styles = root / "styles.css"
        styles.write_text(styles.read_text() + "/* touched */\n")  # a restyle, then a describe
        without = await inspect_page(
            renderer, source, target_image, VIEWPORT, None, SourceIndex(root)
        )
    finally:
        renderer._channel.cdp = cdp
    assert without.render.mode == "restyle"
    assert without.metrics["score"] == with_cdp.metrics["score"] < 1.0
    assert without.metrics["regions"] == with_cdp.metrics["regions"]


async def test_a_page_that_redefines_to_json_is_still_measured_and_located(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    # Old libraries (Prototype.js) define toJSON on Array and Object prototypes; our page calls
    # must not go through them.
    root = write_defective(tmp_path, DEFECTS[0])
    index = root / "index.html"
    index.write_text(
        index.read_text().replace(
            "</head>",
            "<script>Array.prototype.toJSON = function () { return 'ARR'; };"
            " Object.prototype.toJSON = function () { return 1; };</script></head>",
        )
    )
    inspection = await inspect_page(
        renderer, resolve_page_source(root, None, None), target_image, VIEWPORT, None,
        SourceIndex(root),
    )  # fmt: skip
    selectors = [e["selector"] for r in inspection.metrics["regions"] for e in r["elements"]]
    assert any(DEFECTS[0].expected in s for s in selectors[:3]), selectors
    assert inspection.render.boxes and isinstance(inspection.render.boxes[0], list)
