"""What to render: the page source (a workspace file or a loopback dev server) and how workspace
files are served (URL → file, content types). Kept apart from render.py, which drives the browser."""

from __future__ import annotations

import asyncio
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kcode.netutil import is_loopback_url
from kcode.visual.errors import VisualError
from kcode.visual.restyle import ServedFiles, signature

WORKSPACE_ORIGIN = "http://kcode.local"
INLINE_READ_BYTES = 1_000_000

MIME_OVERRIDES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True)
class PageSource:
    """What to render: a file in the workspace (served at WORKSPACE_ORIGIN) or a loopback URL."""

    workspace: Path
    entry: str | None = None
    url: str | None = None

    @property
    def address(self) -> str:
        if self.url:
            return self.url
        return f"{WORKSPACE_ORIGIN}/{self.entry}"

    @property
    def label(self) -> str:
        return self.url or str(self.entry)


def resolve_page_source(workspace: Path, entry: str | None, url: str | None) -> PageSource:
    """Validate --entry / --url, or find index.html; VisualError (exit 2) when there is nothing."""
    workspace = workspace.resolve()
    if entry and url:
        raise VisualError("give either --entry FILE or --url URL, not both")
    if url:
        if not is_loopback_url(url):
            raise VisualError(
                f"--url {url} is not a loopback address: rendering never reaches the network. "
                "Start the dev server locally and pass http://localhost:PORT/ or http://127.0.0.1:PORT/"
            )
        return PageSource(workspace, url=url)
    if entry:
        path = (workspace / entry).resolve()
        if not path.is_relative_to(workspace):
            raise VisualError(f"--entry {entry} is outside the workspace {workspace}")
        if not path.is_file():
            raise VisualError(f"--entry {entry}: no such file in {workspace}")
        return PageSource(workspace, entry=path.relative_to(workspace).as_posix())
    for candidate in ("index.html", "public/index.html", "src/index.html", "dist/index.html"):
        if (workspace / candidate).is_file():
            return PageSource(workspace, entry=candidate)
    raise VisualError(
        f"no page to render: no index.html in {workspace}. "
        "Pass --entry path/to/page.html, or --url http://localhost:PORT/ for a running dev server"
    )


def workspace_path(workspace: Path, url: str) -> Path | None:
    """The file a workspace URL names (it may not exist), or None outside the workspace."""
    path = unquote(urlsplit(url).path).lstrip("/")
    target = (workspace / path).resolve()
    if not target.is_relative_to(workspace):
        return None
    return target / "index.html" if target.is_dir() else target


def content_type(path: Path) -> str:
    return MIME_OVERRIDES.get(path.suffix.lower()) or (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )


async def serve_workspace_file(route: Any, workspace: Path, served: ServedFiles) -> None:
    """Fulfils a Playwright route for a WORKSPACE_ORIGIN URL from disk (404 when there is no such
    file) and records what was served, for restyle.py."""
    url: str = route.request.url
    url_path = urlsplit(url).path
    path = workspace_path(workspace, url)
    sig = signature(path) if path is not None else None
    if path is not None:  # stat before reading: a write in between shows up as a change next time
        served.record(url_path, path, sig)
    if path is None or sig is None or not path.is_file():
        await route.fulfill(status=404, body="not found", content_type="text/plain")
        return
    # Page assets are small local files: reading them inline is faster than a thread hop, which
    # matters because every request of every render passes through here.
    body = (
        await asyncio.to_thread(path.read_bytes)
        if sig[1] > INLINE_READ_BYTES
        else path.read_bytes()
    )
    served.record(url_path, path, sig, body)
    await route.fulfill(status=200, body=body, content_type=content_type(path))
