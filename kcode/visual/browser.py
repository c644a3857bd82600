"""Finding and launching a Chromium for Playwright.

Playwright's own browser is preferred when its download is on disk; otherwise a system Chromium is used
through `executable_path`. The launch flags keep a headless run quiet and offline: as root Chromium needs
--no-sandbox, and without the background-networking flags it phones Google hosts on start.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from kcode.visual.errors import VisualError

LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--font-render-hinting=none",
)

SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

INSTALL_HINT = (
    "no Chromium found for rendering: install one with `apt-get install chromium` "
    "(or `playwright install chromium`), or set KCODE_CHROMIUM=/path/to/chrome"
)


def system_browser() -> str | None:
    """A Chromium on PATH or in /usr/bin, or the one KCODE_CHROMIUM names."""
    override = os.environ.get("KCODE_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    for name in SYSTEM_BROWSERS:
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if found:
            return found
    return None


def find_browser(playwright: Any) -> str | None:
    """The executable to launch: None means Playwright's own download (it exists on disk)."""
    if not os.environ.get("KCODE_CHROMIUM"):
        try:
            bundled = playwright.chromium.executable_path
        except Exception:  # Playwright raises when its browser registry is unreadable
            bundled = ""
        if bundled and Path(bundled).exists():
            return None
    found = system_browser()
    if found is None:
        raise VisualError(INSTALL_HINT)
    return found


def browser_available() -> bool:
    """Cheap check (no launch) for tests and `kcode doctor`."""
    if system_browser():
        return True
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache/ms-playwright"))
    return any(cache.glob("chromium*/chrome-linux*/chrome"))


async def launch_browser(playwright: Any) -> Any:
    executable = find_browser(playwright)
    try:
        return await playwright.chromium.launch(
            executable_path=executable, args=list(LAUNCH_ARGS), headless=True
        )
    except Exception as err:
        where = executable or "Playwright's Chromium"
        raise VisualError(f"could not start the browser ({where}): {err}. {INSTALL_HINT}") from err
