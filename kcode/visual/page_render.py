"""Deterministic, offline rendering of the user's page in headless Chromium (Playwright).

One browser per run, reused across iterations (one context per viewport, one page, reloaded for each
render or, after CSS-only edits to a static page, restyled in place: restyle.py).
The workspace is served from disk through a route handler at a made-up origin (WORKSPACE_ORIGIN), so
relative paths and ES modules resolve exactly as from a static server. An explicit `--url` may point at a
loopback dev server; every other request is aborted and listed in `blocked`, so nothing ever waits on a
web font or a CDN. Capture is made deterministic by disabling animations and transitions, hiding the
caret and awaiting web fonts (capped by FONT_WAIT_S).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kcode.visual.browser import launch_browser
from kcode.visual.channel import PageChannel
from kcode.visual.errors import VisualError
from kcode.visual.page_scripts import (
    COLLECT_BOXES_FN,
    DESCRIBE_FN,
    FREEZE_SCRIPT,
    page_library,
)
from kcode.visual.restyle import (
    AWAIT_IMAGES_FN,
    RESTYLE_FN,
    SETTLE_FN,
    Plan,
    ServedFiles,
    read_sheets,
)
from kcode.visual.sources import WORKSPACE_ORIGIN, PageSource, serve_workspace_file
from kcode.visual.target_images import Viewport

FONT_WAIT_S = 3.0
DEFAULT_TIMEOUT_S = 15.0
# Our page functions, installed in every document before its own scripts (page_scripts.py).
PAGE_LIBRARY = page_library(
    {
        "collectBoxes": COLLECT_BOXES_FN,
        "describe": DESCRIBE_FN,
        "settle": SETTLE_FN,
        "restyle": RESTYLE_FN,
        "awaitImages": AWAIT_IMAGES_FN,
    }
)
# How many renders' element picks are described ahead of time, and at most how many elements.
RECENT_RENDERS = 3
RECENT_PICKS_LIMIT = 60


@dataclass
class RenderResult:
    png: bytes
    viewport: Viewport
    boxes: list[list[float]]  # [x, y, w, h, depth] per element, CSS pixels, document coordinates
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    fonts_ready: bool = True
    # How the page got to this state: "reload", "restyle" (stylesheets swapped in place) or
    # "recapture" (nothing changed since the last load); see restyle.py.
    mode: Plan = "reload"
    timings: dict[str, float] = field(default_factory=dict)  # phase → milliseconds
    # What `render(..., with_png=f)` returned for the PNG (run in a thread while the boxes are
    # collected).
    processed: Any = None


class PageRenderer:
    """Owns Playwright, the browser and one page; `render()` may be called many times."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, element_limit: int = 3000) -> None:
        self._channel: PageChannel = PageChannel(None, None, timeout_s)
        self.timeout_s = timeout_s
        self.element_limit = element_limit
        self._playwright: Any = None
        self._manager: Any = None
        self._browser: Any = None
        self._context: Any = None
        self._page: Any = None
        self._context_key: tuple[int, int, float] | None = None
        self._source: PageSource | None = None
        self._current: RenderResult | None = None
        self._served = ServedFiles()
        # (workspace, address) of the document in the page: the same URL in another workspace is
        # another page.
        self._loaded_key: tuple[Path, str] | None = None
        self._inflight: set[Any] = set()  # requests not finished yet
        self._restyles = 0
        # The element indices the locator asked to describe in the last few renders (described
        # again with the next settle/restyle call: regions tend to persist from one iteration to
        # the next), and the descriptions already fetched for the current render.
        self._recent_picks: list[list[int]] = []
        self._described: dict[int, dict[str, Any] | None] = {}
        # What the last full load reported (blocked URLs, console errors): still true of the page
        # after a restyle or a recapture, which do not load it again.
        self._load_report: RenderResult | None = None

    @property
    def timeout_s(self) -> float:
        """How long a load, a page call or a capture may take (seconds)."""
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self._timeout_s = self._channel.timeout_s = value
        if getattr(self, "_context", None) is not None:
            self._context.set_default_timeout(value * 1000)

    async def __aenter__(self) -> PageRenderer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        from playwright.async_api import async_playwright

        self._manager = async_playwright()
        self._playwright = await self._manager.start()
        try:
            self._browser = await launch_browser(self._playwright)
        except BaseException:
            await self._manager.__aexit__(None, None, None)
            raise

    async def close(self) -> None:
        if self._browser is not None:
            try:
                await self._browser.close()
            except Exception:
                pass
        if self._manager is not None:
            await self._manager.__aexit__(None, None, None)
        self._browser = self._manager = self._page = self._context = None

    @property
    def page(self) -> Any:
        return self._page

    async def _ensure_page(self, source: PageSource, viewport: Viewport) -> Any:
        key = (viewport.width, viewport.height, viewport.scale)
        self._source = source  # the route handler serves whatever source is current
        if self._page is not None and key == self._context_key:
            return self._page
        self._served.reset()
        if self._context is not None:
            await self._context.close()
        self._context = await self._browser.new_context(
            viewport={"width": viewport.width, "height": viewport.height},
            device_scale_factor=viewport.scale,
            service_workers="block",
            reduced_motion="reduce",
            color_scheme="light",
            locale="en-US",
            timezone_id="UTC",
        )
        self._context.set_default_timeout(self.timeout_s * 1000)
        self._context_key = key
        await self._context.route("**/*", self._handle_route)
        # Injected before any page script runs, so no animation ever starts (no extra round trip)
        # and our functions are there before the page could touch JSON.stringify.
        await self._context.add_init_script(script=FREEZE_SCRIPT + PAGE_LIBRARY)
        page = await self._context.new_page()
        self._channel = await PageChannel.open(self._context, page, self.timeout_s)
        page.on("console", self._on_console)
        page.on("pageerror", lambda err: self._record("console_errors", f"uncaught: {err}"))
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)
        page.on("request", self._on_request_started)
        page.on("requestfinished", self._on_request_done)
        self._page = page
        return page

    def _record(self, kind: str, text: str) -> None:
        if self._current is not None:
            bucket: list[str] = getattr(self._current, kind)
            if text not in bucket and len(bucket) < 50:
                bucket.append(text)

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self._record("console_errors", message.text[:500])

    def _on_request_started(self, request: Any) -> None:
        self._inflight.add(request)

    def _on_request_done(self, request: Any) -> None:
        self._inflight.discard(request)

    def _on_request_failed(self, request: Any) -> None:
        self._on_request_done(request)
        if self._current is not None and request.url not in self._current.blocked:
            self._record("failed_requests", f"{request.url} ({request.failure})")

    def _on_response(self, response: Any) -> None:
        if response.status >= 400:
            self._record("failed_requests", f"{response.url} (HTTP {response.status})")

    async def _handle_route(self, route: Any) -> None:
        source = self._source
        url: str = route.request.url
        parts = urlsplit(url)
        if (
            source is not None
            and source.entry is not None
            and url.startswith(WORKSPACE_ORIGIN + "/")
        ):
            await serve_workspace_file(route, source.workspace.resolve(), self._served)
            return
        if source is not None and source.url:
            allowed = urlsplit(source.url)
            if (parts.scheme, parts.netloc) == (allowed.scheme, allowed.netloc):
                await route.continue_()
                return
        if self._current is not None and url not in self._current.blocked:
            self._current.blocked.append(url)
        await route.abort("blockedbyclient")

    async def render(
        self,
        source: PageSource,
        viewport: Viewport,
        with_png: Callable[[bytes], Any] | None = None,
    ) -> RenderResult:
        """Brings the page up to date and captures it. `with_png` (blocking work on the PNG, such
        as decoding and comparing it) runs in a thread while the element boxes are collected; its
        result is `RenderResult.processed`."""
        page = await self._ensure_page(source, viewport)
        self._current = RenderResult(b"", viewport, [])
        self._described = {}
        result = self._current
        from playwright.async_api import Error as PlaywrightError

        try:
            early = await self._bring_up_to_date(page, source, result)
            clock = time.perf_counter()

            def boxes() -> Any:
                if early is not None:  # came with the settle or restyle call
                    return asyncio.sleep(0, early)
                return self._channel.call("collectBoxes", self.element_limit, list)

            if with_png is None:
                # The capture is compositor work, the box walk main-thread work: overlap them.
                png, collected = await asyncio.gather(self._channel.capture(viewport), boxes())
                result.timings["capture+boxes"] = (time.perf_counter() - clock) * 1000
            else:
                # Capture first, then (unless they came early) walk the boxes while the PNG is
                # processed here.
                png = await self._channel.capture(viewport)
                result.timings["capture"] = (time.perf_counter() - clock) * 1000
                clock = time.perf_counter()
                collected, result.processed = await asyncio.gather(
                    boxes(), asyncio.to_thread(with_png, png)
                )
                result.timings["boxes+process"] = (time.perf_counter() - clock) * 1000
            result.png, result.boxes = png, collected
        except (PlaywrightError, TimeoutError, VisualError) as err:
            await self._discard_page()
            if isinstance(err, VisualError):
                raise
            if isinstance(err, TimeoutError) or "Timeout" in type(err).__name__:
                raise VisualError(
                    f"the page {source.label} did not finish loading within {self.timeout_s:g} s "
                    "(a script that never ends, or a request that never answers?). "
                    f"Requests blocked so far: {', '.join(result.blocked) or 'none'}"
                ) from err
            raise VisualError(f"could not render {source.label}: {err}") from err
        finally:
            self._current = None
        return result

    async def _bring_up_to_date(
        self, page: Any, source: PageSource, result: RenderResult
    ) -> list[list[float]] | None:
        """Reload, or for a static page whose stylesheets alone changed, swap them (restyle.py).
        Returns the element boxes when the last call collected them on the way."""
        clock = time.perf_counter()
        plan: Plan = "reload"
        changed: list[str] = []
        if source.entry is not None and self._loaded_key == (
            source.workspace.resolve(),
            source.address,
        ):
            plan, changed = self._served.plan()
        if plan == "restyle":
            self._restyles += 1
            sheets, inlined = read_sheets(self._served, changed)
            # When the swap may start fetches (images, fonts), the layout is final only after them:
            # a page whose sources named resources, or a sheet fetched by URL (not handed over as
            # text, so it may name one for the first time).
            may_fetch = self._served.may_fetch or any(text is None for _, text in sheets)
            box_limit = None if may_fetch else self.element_limit
            settled = await self._channel.call(
                "restyle",
                [sheets, FONT_WAIT_S * 1000, self._restyles, box_limit, self._likely_picks()],
            )
            if settled["swapped"]:
                for url, path, sig, body in inlined:  # never went through the route handler
                    self._served.record(url, path, sig, body)
                if may_fetch or self._served.may_fetch:
                    await self._channel.call("awaitImages", FONT_WAIT_S * 1000, int)
                    await self._network_idle()  # anything else it started (a font, say)
            else:
                plan = "reload"
        if plan == "reload":
            self._served.reset()
            self._loaded_key = None
            await page.goto(source.address, wait_until="load", timeout=self.timeout_s * 1000)
            result.timings["navigate"] = (time.perf_counter() - clock) * 1000
            clock = time.perf_counter()
            # A dev server's files do not pass through us: they may name anything.
            await_images = source.entry is None or self._served.may_fetch
            settled = await self._channel.call(
                "settle",
                [FONT_WAIT_S * 1000, self.element_limit, self._likely_picks(), await_images],
            )
            self._served.is_static = bool(settled["isStatic"])
            self._loaded_key = (source.workspace.resolve(), source.address)
            self._load_report = result
        elif plan == "recapture":
            fonts_ready = self._load_report.fonts_ready if self._load_report else True
            settled = {"fontsReady": fonts_ready, "boxes": None}
        result.timings[plan if plan != "reload" else "settle"] = (
            time.perf_counter() - clock
        ) * 1000
        result.mode = plan
        result.fonts_ready = bool(settled["fontsReady"])
        if plan != "reload" and self._load_report is not None:
            for kind in ("blocked", "console_errors", "failed_requests"):
                bucket: list[str] = getattr(result, kind)
                bucket[:0] = [t for t in getattr(self._load_report, kind) if t not in bucket]
        boxes: list[list[float]] | None = settled.get("boxes")
        described, picks = settled.get("described"), self._likely_picks()
        if boxes is not None and isinstance(described, list) and len(described) == len(picks):
            self._described = dict(zip(picks, described, strict=True))
        return boxes

    def _likely_picks(self) -> list[int]:
        """Element indices the locator will probably ask about (see _recent_picks)."""
        return sorted({i for picks in self._recent_picks for i in picks})[:RECENT_PICKS_LIMIT]

    async def _network_idle(self, cap_s: float = FONT_WAIT_S) -> None:
        """After a restyle: wait for the fetches it started (background images, fonts), capped."""
        deadline = time.perf_counter() + cap_s
        while self._inflight and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)

    async def _discard_page(self) -> None:
        if self._context is not None:
            try:
                await asyncio.wait_for(self._context.close(), timeout=5)
            except Exception:
                pass
        self._context = self._page = self._context_key = None
        self._served.reset()
        self._loaded_key = None

    async def describe_elements(self, indices: list[int]) -> list[dict[str, Any] | None]:
        """Selector, tag, id, classes, short text and key computed styles of collected elements
        (None for an index the page does not have). Those described on the way to this render's
        capture are not asked for again."""
        if self._page is None or not indices:
            return []
        self._recent_picks = [*self._recent_picks[-RECENT_RENDERS + 1 :], list(indices)]
        missing = [i for i in indices if i not in self._described]
        if missing:
            try:
                fetched = await self._channel.call("describe", missing, list)
            except TimeoutError as err:
                await self._discard_page()
                raise VisualError(
                    f"the page stopped responding (busy script?) for {self.timeout_s:g} s"
                ) from err
            if len(fetched) != len(missing):
                raise VisualError(
                    f"a kcode script described {len(fetched)} of {len(missing)} elements"
                )
            self._described.update(zip(missing, fetched, strict=True))
        return [self._described[i] for i in indices]
