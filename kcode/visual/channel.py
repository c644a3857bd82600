"""How the renderer talks to its page: our page scripts and the screenshot.

Over a CDP session when Chromium gives one, through Playwright otherwise. Every fix-loop iteration
makes two or three of these calls on its critical path, so their cost matters: Playwright's
`evaluate()` adds ~3 ms per call here and its structured serialisation of nested results 10-15 ms
(our functions return one JSON string instead, see page_scripts.py), and `page.screenshot()`
repeats font and caret handling the renderer has already done.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from kcode.safety.json_input import loads_json
from kcode.visual.errors import VisualError
from kcode.visual.target_images import Viewport


class PageChannel:
    def __init__(self, page: Any, cdp: Any, timeout_s: float) -> None:
        self.page = page
        self.cdp = cdp  # None: not Chromium, or CDP was refused
        self.timeout_s = timeout_s

    @classmethod
    async def open(cls, context: Any, page: Any, timeout_s: float) -> PageChannel:
        try:
            cdp = await context.new_cdp_session(page)
        except Exception:  # not Chromium: Playwright works everywhere
            cdp = None
        return cls(page, cdp, timeout_s)

    async def call(self, name: str, arg: Any = None, expect: type = dict) -> Any:
        """Runs our page function `name` (page_scripts.page_library) on `arg` in the page's main
        world and parses its JSON result, which must be an `expect`. Neither way has a timeout of
        its own: a script busy-looping after load would hang it."""
        if self.cdp is None:
            call = self.page.evaluate("([n, a]) => window.__kcode.call(n, a)", [name, arg])
            text = await asyncio.wait_for(call, timeout=self.timeout_s)
        else:
            call = self.cdp.send(
                "Runtime.evaluate",
                {
                    "expression": f"window.__kcode.call({json.dumps(name)}, {json.dumps(arg)})",
                    "awaitPromise": True,
                    "returnByValue": True,
                },
            )
            reply = await asyncio.wait_for(call, timeout=self.timeout_s)
            if "exceptionDetails" in reply:
                details = reply["exceptionDetails"]
                error = details.get("exception", {}).get("description") or details.get("text")
                raise VisualError(f"a kcode script failed in the page: {error}")
            text = reply["result"].get("value")
        try:
            result = loads_json(text)
        except (TypeError, ValueError):
            result = None
        if not isinstance(result, expect):
            raise VisualError(
                f"a kcode script returned {str(text)[:80]!r} in the page instead of a "
                f"{expect.__name__}: do the page's own scripts change built-in objects?"
            )
        return result

    async def capture(self, viewport: Viewport) -> bytes:
        """Chromium's own capture (PNG, fast zlib): ~1.5× faster than page.screenshot(). Only at
        scale 1: with an emulated device scale factor the raw capture comes back in CSS pixels.
        Falls back to Playwright if CDP is refused."""
        if self.cdp is not None and viewport.scale == 1.0:
            try:
                shot = await asyncio.wait_for(
                    self.cdp.send(
                        "Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True}
                    ),
                    timeout=self.timeout_s,
                )
                return base64.b64decode(shot["data"])
            except TimeoutError as err:
                raise VisualError(f"the screenshot took longer than {self.timeout_s:g} s") from err
            except Exception:
                self.cdp = None
        png: bytes = await self.page.screenshot(
            type="png", caret="hide", timeout=self.timeout_s * 1000
        )
        return png
