"""Fixtures for the visual tests: one browser per test module, pages written into tmp dirs."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from kcode.visual.browser import browser_available
from kcode.visual.page_render import PageRenderer
from kcode.visual.sources import resolve_page_source
from kcode.visual.target_images import Viewport
from tests.visual.pages import write_page

NO_BROWSER = "no Chromium found (apt-get install chromium) — browser tests skipped"
VIEWPORT = Viewport(1280, 800)


def require_browser() -> None:
    if not browser_available():
        pytest.skip(NO_BROWSER)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def renderer() -> AsyncIterator[PageRenderer]:
    require_browser()
    async with PageRenderer(timeout_s=10) as shared:
        yield shared


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target_image(
    renderer: PageRenderer, tmp_path_factory: pytest.TempPathFactory
) -> Image.Image:
    """A render of the correct pricing page: the design every defect is compared against."""
    root = write_page(tmp_path_factory.mktemp("good"))
    result = await renderer.render(resolve_page_source(root, None, None), VIEWPORT)
    return Image.open(io.BytesIO(result.png)).convert("RGB")


def save_target(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path
