"""Re-rendering without a reload when that gives the same pixels: the files a page was built from.

A reload costs more than everything else in an iteration together. For a *static* page (no scripts,
no inline event handlers, no frames — checked at every full load) the DOM is a pure function of its
HTML, so when only stylesheets changed since the last load, swapping those `<link>` elements in place
gives what a reload would give. Anything else — a changed or new non-CSS file, a changed stylesheet
that is not a top-level `<link>` (an `@import`), a deleted file, a page with scripts, a dev-server URL —
takes a full reload. Nothing changed at all: a fresh capture of the same document.

The route handler records every workspace file it serves with its (mtime, size) signature, and the
404s as None, so a file that appears later is a change too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Signature = tuple[int, int] | None
Plan = Literal["reload", "restyle", "recapture"]
STYLE_SUFFIXES = (".css",)

# Runs after `load`: awaits web fonts (capped) and, when asked (the page's sources name resources),
# the images its computed styles name — `load` does not always wait for those (a ::before image, say).
# Then tells whether the page is static (see above) and, for a static page, collects the element boxes
# (K.collectBoxes: its layout is final) and describes the elements of the given indices (K.describe:
# the locator's recent picks, often wanted again, which saves a round trip after the capture).
SETTLE_FN = """
async ([fontWaitMs, boxLimit, describe, awaitImages]) => {
  const fontsReady = await Promise.race([document.fonts.ready.then(() => true),
    new Promise((resolve) => setTimeout(() => resolve(false), fontWaitMs))]);
  if (awaitImages) await K.awaitImages(fontWaitMs);
  let dynamic = document.scripts.length > 0
    || document.querySelector('iframe, frame, object, embed') !== null;
  if (!dynamic) {
    const all = document.getElementsByTagName('*');
    outer: for (let i = 0; i < all.length; i++) {
      for (const attr of all[i].attributes) {
        if (attr.name.startsWith('on')) { dynamic = true; break outer; }
      }
    }
  }
  // A script may still move things before the capture: then the boxes are taken after it.
  if (dynamic) return {fontsReady, isStatic: false, boxes: null, described: null};
  const boxes = K.collectBoxes(boxLimit);
  return {fontsReady, isStatic: true, boxes, described: K.describe(describe)};
}
"""

# Swaps the <link rel=stylesheet> elements of the given same-origin paths for fresh copies, waits for
# them, forces style and layout (which starts any newly needed image or font fetch) and awaits fonts
# (capped). Each sheet comes as [path, text]: with text (a sheet that names no resource, so its base
# URL does not matter) the copy loads from a data: URL of that text — no request through the route
# handler, which is most of a restyle's cost (a data: URL also loads in about half the time of a
# blob: URL, which goes through the browser process); otherwise from the path with a query string
# that defeats any cache (the server ignores it). Inlined links remember their path in a WeakMap,
# not in the DOM. {swapped: false} when a path has no such link or a sheet fails: the caller
# reloads. With a box limit (the caller passes one only when no fetch can still change the layout:
# every changed sheet handed over as text, no served source naming a resource) the element boxes
# come back too, and the descriptions of the given indices (as in SETTLE_FN).
RESTYLE_FN = """
async ([sheets, fontWaitMs, stamp, boxLimit, describe]) => {
  const inlined = window.__kcodeInlined || (window.__kcodeInlined = new WeakMap());
  const byPath = new Map();
  for (const link of document.querySelectorAll('link[rel~="stylesheet"]')) {
    let path = inlined.get(link);
    if (path === undefined) {
      const url = new URL(link.href, location.href);
      if (url.origin !== location.origin) continue;
      path = url.pathname;
    }
    if (!byPath.has(path)) byPath.set(path, []);
    byPath.get(path).push(link);
  }
  const failed = {swapped: false, fontsReady: true, boxes: null, described: null};
  if (!sheets.every(([p]) => byPath.has(p))) return failed;
  const inline = document.characterSet === 'UTF-8';
  const loads = [];
  for (const [path, text] of sheets) {
    for (const old of byPath.get(path)) {
      const fresh = old.cloneNode(false);
      let href;
      if (text !== null && inline) {
        href = 'data:text/css;charset=utf-8,' + encodeURIComponent(text);
        inlined.set(fresh, path);
      } else {
        const url = inlined.has(old) ? new URL(path, location.origin) : new URL(old.href);
        url.searchParams.set('kcode-restyle', String(stamp));
        href = url.href;
      }
      const done = (ok) => {
        old.remove();
        return ok;
      };
      loads.push(new Promise((resolve) => {
        fresh.onload = () => resolve(done(true));
        fresh.onerror = () => resolve(done(false));
      }));
      fresh.href = href;
      old.after(fresh);
    }
  }
  const loaded = await Promise.all(loads);
  if (!loaded.every(Boolean)) return failed;
  document.documentElement.getBoundingClientRect();
  const fontsReady = await Promise.race([document.fonts.ready.then(() => true),
    new Promise((resolve) => setTimeout(() => resolve(false), fontWaitMs))]);
  if (boxLimit === null) return {swapped: true, fontsReady, boxes: null, described: null};
  const boxes = K.collectBoxes(boxLimit);
  return {swapped: true, fontsReady, boxes, described: K.describe(describe)};
}
"""

# When the page's sources reference images or fonts, a restyle may have started fetches. Waiting for
# the network to go idle alone is not enough: the request events reach us through Playwright after a
# delay that grows with load, so an idle check can come before them. So the page itself awaits every
# image its computed styles now name (a new Image of the same URL joins the fetch, or hits the cache),
# capped at the font wait, then a frame; fonts were awaited by the restyle.
AWAIT_IMAGES_FN = """
async (capMs) => {
  const frame = () => new Promise((resolve) => {
    requestAnimationFrame(() => resolve()); setTimeout(resolve, 100);
  });
  const props = ['background-image', 'list-style-image', 'border-image-source', 'mask-image',
    'content'];
  const urls = new Set();
  for (const el of document.querySelectorAll('*')) {
    for (const pseudo of [null, '::before', '::after']) {
      const style = getComputedStyle(el, pseudo);
      for (const prop of props) {
        const value = style.getPropertyValue(prop);
        if (!value.includes('url(')) continue;
        for (const m of value.matchAll(/url\\(\\s*(['"]?)(.*?)\\1\\s*\\)/g)) urls.add(m[2]);
      }
    }
  }
  const loads = [...urls].map((url) => {
    const image = new Image();
    image.src = url;
    return image.decode().catch(() => null);
  });
  let timer;
  const cap = new Promise((resolve) => { timer = setTimeout(resolve, capMs); });
  await Promise.race([Promise.all(loads), cap]);
  clearTimeout(timer);
  await frame();
  return urls.size;
}
"""
RESOURCE_MARKERS = (b"url(", b"image-set(", b"@font-face", b"@import")
INLINE_SHEET_BYTES = 1_000_000


def names_resource(body: bytes) -> bool:
    lowered = body.lower()
    return any(marker in lowered for marker in RESOURCE_MARKERS)


def inline_sheet_text(body: bytes) -> str | None:
    """The text of a stylesheet that can be handed to the page directly (RESTYLE_FN), or None when
    it must be fetched: it names resources (relative to its URL), declares a charset or a BOM, is
    not UTF-8 or is large."""
    if len(body) > INLINE_SHEET_BYTES or body.startswith(b"\xef\xbb\xbf") or b"@charset" in body:
        return None
    if names_resource(body):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def signature(path: Path) -> Signature:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


@dataclass
class ServedFiles:
    """Workspace files the current document was built from, by URL path, with their signatures."""

    files: dict[str, tuple[Path, Signature]] = field(default_factory=dict)
    # URL paths of served files that name a resource (url(), @font-face, ...): a restyle may fetch.
    referencing: set[str] = field(default_factory=set)
    is_static: bool = False  # set after a full load; restyle only ever applies to static pages

    def reset(self) -> None:
        self.files.clear()
        self.referencing.clear()
        self.is_static = False

    def record(self, url_path: str, path: Path, sig: Signature, body: bytes = b"") -> None:
        self.files[url_path] = (path, sig)
        if path.suffix.lower() in (".css", ".html", ".htm") and names_resource(body):
            self.referencing.add(url_path)
        else:
            self.referencing.discard(url_path)

    @property
    def may_fetch(self) -> bool:
        return bool(self.referencing)

    def plan(self) -> tuple[Plan, list[str]]:
        """What the next render needs, and the changed stylesheet URL paths for a restyle."""
        if not self.is_static or not self.files:
            return "reload", []
        changed = [url for url, (path, sig) in self.files.items() if signature(path) != sig]
        if not changed:
            return "recapture", []
        for url in changed:
            path, _ = self.files[url]
            if path.suffix.lower() not in STYLE_SUFFIXES or signature(path) is None:
                return "reload", []
        return "restyle", sorted(changed)


def read_sheets(
    served: ServedFiles, changed: list[str]
) -> tuple[list[list[str | None]], list[tuple[str, Path, Signature, bytes]]]:
    """[url path, text or None] per changed stylesheet for RESTYLE_FN, and what to record as served
    (ServedFiles.record) for the ones handed over as text once the swap succeeded."""
    sheets: list[list[str | None]] = []
    inlined: list[tuple[str, Path, Signature, bytes]] = []
    for url in changed:
        path = served.files[url][0]
        sig = signature(path)  # stat before reading: a write in between shows up next time
        try:
            body = path.read_bytes() if sig is not None else b""
        except OSError:
            body, sig = b"", None
        text = inline_sheet_text(body) if sig is not None else None
        sheets.append([url, text])
        if text is not None:
            inlined.append((url, path, sig, body))
    return sheets, inlined
