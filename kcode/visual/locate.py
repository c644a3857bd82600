"""From differing regions to DOM elements and the source lines that style or create them.

Element boxes come from the render (one evaluate call collects all of them); each region ranks the
elements whose boxes intersect it by how well the two boxes agree, intersection² / (region area ×
element area) — 1.0 for an exact match, small for the page wrapper and for tiny spans — deeper elements
first on ties. Only the picked elements are described (selector, text, computed styles) in a second
evaluate call. Sources are found by searching the workspace's .html/.css/.scss/.jsx/.tsx/.vue/... files
for the element's id and classes: the CSS rule matching most of its classes wins, else the markup line.
Element-type rules (`main {…}`, `button:hover {…}`) count too, below any class or id rule, so an
element styled only by its tag (where many real defects live) still gets its source line.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcode.visual.regions import Region

SOURCE_SUFFIXES = {".html", ".htm", ".css", ".scss", ".sass", ".less", ".jsx", ".tsx", ".js", ".ts"}
SOURCE_SUFFIXES |= {".vue", ".svelte", ".astro"}
STYLE_SUFFIXES = {".css", ".scss", ".sass", ".less"}
SKIP_DIRS = {".git", "node_modules", ".kcode", "dist", "build", ".next", ".venv", "__pycache__"}
MAX_SOURCE_BYTES = 512_000
MAX_SOURCE_FILES = 3000
ELEMENTS_PER_REGION = 3
# The rest of a compound selector up to the end of the selector (no further descendant).
SUBJECT_END = r"[^\s,{>+~]*\s*(?:[,{]|$)"

BORING_STYLE_VALUES = {
    "0px",
    "none",
    "normal",
    "auto",
    "visible",
    "1",
    "0",
    "rgba(0, 0, 0, 0)",
    "static",
}

Describe = Callable[[list[int]], Awaitable[list[dict[str, Any] | None]]]


@dataclass
class _SourceFile:
    mtime_ns: int
    lines: list[str]


class SourceIndex:
    """The workspace's web sources, re-read only when their mtime changes."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace.resolve()
        self._files: dict[str, _SourceFile] = {}
        self.loaded = False

    def refresh(self) -> None:
        self.loaded = True
        seen: set[str] = set()
        for root, dirs, names in os.walk(self.workspace):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for name in sorted(names):
                if (
                    Path(name).suffix.lower() not in SOURCE_SUFFIXES
                    or len(seen) >= MAX_SOURCE_FILES
                ):
                    continue
                path = Path(root) / name
                rel = path.relative_to(self.workspace).as_posix()
                try:
                    stat = path.stat()
                except OSError:
                    continue
                if stat.st_size > MAX_SOURCE_BYTES:
                    continue
                seen.add(rel)
                cached = self._files.get(rel)
                if cached is None or cached.mtime_ns != stat.st_mtime_ns:
                    text = path.read_text(encoding="utf-8", errors="replace")
                    self._files[rel] = _SourceFile(stat.st_mtime_ns, text.splitlines())
        for rel in set(self._files) - seen:
            del self._files[rel]

    def find(
        self,
        element_id: str | None,
        classes: list[str],
        tag: str = "",
        context: tuple[str, ...] | list[str] = (),
    ) -> list[str]:
        """path:line candidates: best CSS rule first, then the markup line.

        An element without id or class (an `h3` in a card) is looked up as a descendant rule:
        a line naming a class or the id of its nearest classed ancestor (`context`, entries like
        ".card" or "#plan-pro") and then its tag; an id-scoped rule outranks a class-scoped one.
        """
        rules: list[tuple[int, int, str]] = []
        markup: list[str] = []
        # A rule styles the element when it names it in its last compound selector (the subject):
        # `.card h3` styles an h3, not the card.
        class_patterns = [
            re.compile(r"\." + re.escape(c) + r"(?![\w-])" + SUBJECT_END) for c in classes
        ]
        weights = [2] * len(class_patterns)
        if not classes and not element_id and tag and context:
            # context entries are ".class" or "#id" of the nearest ancestor that has any
            class_patterns = [
                re.compile(
                    re.escape(c) + r"(?![\w-])[^{,]*\b" + re.escape(tag) + r"\b" + SUBJECT_END
                )
                for c in context
            ]
            weights = [20 if c.startswith("#") else 2 for c in context]
        # A rule whose subject is the bare tag (`main {`, `nav > button:hover {`): weight 1, so any
        # class or id rule outranks it.
        tag_rule = (
            re.compile(r"(?<![\w.#:-])" + re.escape(tag.lower()) + r"(?![\w-])" + SUBJECT_END)
            if re.fullmatch(r"[a-zA-Z][\w-]*", tag or "")
            else None
        )
        tag_markup = (
            re.compile(r"<" + re.escape(tag.lower()) + r"(?![\w-])", re.IGNORECASE)
            if tag_rule and not classes and not element_id
            else None
        )
        tag_lines: list[str] = []
        id_rule = (
            re.compile(r"#" + re.escape(element_id) + r"(?![\w-])" + SUBJECT_END)
            if element_id
            else None
        )
        id_attr = (
            re.compile(r"""\bid\s*=\s*["'{]\s*["']?""" + re.escape(element_id) + r"""["'}]""")
            if element_id
            else None
        )
        class_attr = re.compile(r"""\bclass(?:Name)?\s*=\s*[{"'`]([^"'`}]*)""")
        for rel, source in sorted(self._files.items()):
            styles_here = Path(rel).suffix.lower() in STYLE_SUFFIXES
            in_style_block = False
            for number, line in enumerate(source.lines, start=1):
                lowered = line.lower()
                if "<style" in lowered:
                    in_style_block = True
                if styles_here or in_style_block:
                    rule_part = line.split("{", 1)[0] if "{" in line else line
                    hits = sum(
                        w
                        for p, w in zip(class_patterns, weights, strict=True)
                        if p.search(rule_part)
                    )
                    if id_rule and id_rule.search(rule_part):
                        hits += 20
                    if tag_rule and tag_rule.search(rule_part.lower()):
                        hits += 1
                    if hits and ("{" in line or line.rstrip().endswith(",")):
                        rules.append((-hits, len(rules), f"{rel}:{number}"))
                if "</style" in lowered:
                    in_style_block = False
                if styles_here:
                    continue
                if id_attr and id_attr.search(line):
                    markup.insert(0, f"{rel}:{number}")
                    continue
                match = class_attr.search(line)
                if match and classes and all(c in match.group(1).split() for c in classes):
                    markup.append(f"{rel}:{number}")
                elif tag_markup and tag_markup.search(line):
                    tag_lines.append(f"{rel}:{number}")
        rules.sort()
        found = [where for _, _, where in rules[:2]] + markup[:2] + tag_lines[:1]
        return list(dict.fromkeys(found))


def rank_elements(region: Region, boxes: list[list[float]], scale: float) -> list[int]:
    """Indices of the elements best matching the region (image pixels vs CSS-pixel boxes).

    The best-fitting box comes first, then the smallest element under the region's first differing
    pixel (a heading that grew pushes everything below it: the region is the card, the cause is
    the heading), then the next best fits.
    """
    rx0, ry0 = region.x / scale, region.y / scale
    rx1, ry1 = (region.x + region.w) / scale, (region.y + region.h) / scale
    fx, fy = region.first[0] / scale, region.first[1] / scale
    region_area = max((rx1 - rx0) * (ry1 - ry0), 1.0)
    scored: list[tuple[float, float, int]] = []
    origin: tuple[float, int] | None = None
    for index, (x, y, w, h, depth) in enumerate(boxes):
        ix = min(rx1, x + w) - max(rx0, x)
        iy = min(ry1, y + h) - max(ry0, y)
        if ix <= 0 or iy <= 0:
            continue
        inter = ix * iy
        fit = inter * inter / (region_area * max(w * h, 1.0))
        scored.append((-round(fit, 3), -depth, index))
        under_first = x - 1 <= fx <= x + w + 1 and y - 1 <= fy <= y + h + 1
        if under_first and (origin is None or w * h < origin[0]):
            origin = (w * h, index)
    scored.sort()
    ranked = [index for _, _, index in scored]
    if origin is not None and ranked:
        ranked.insert(1, origin[1])
    return list(dict.fromkeys(ranked))[:ELEMENTS_PER_REGION]


def _compact_styles(styles: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in styles.items() if v and v not in BORING_STYLE_VALUES}


async def locate_regions(
    regions: list[Region],
    boxes: list[list[float]],
    scale: float,
    describe: Describe,
    sources: SourceIndex | None,
) -> list[dict[str, Any]]:
    """The §7 region objects: box, area, and the elements (with source) under each region."""
    if sources is not None and not sources.loaded:
        await asyncio.to_thread(sources.refresh)
    picks = [rank_elements(region, boxes, scale) for region in regions]
    wanted = sorted({i for pick in picks for i in pick})
    described = dict(zip(wanted, await describe(wanted), strict=True)) if wanted else {}
    out = []
    for region, pick in zip(regions, picks, strict=True):
        elements = []
        for index in pick:
            info = described.get(index)
            if not info:
                continue
            x, y, w, h, _ = boxes[index]
            found = (
                sources.find(
                    info.get("id"),
                    list(info.get("classes") or []),
                    info.get("tag", ""),
                    list(info.get("context") or []),
                )
                if sources
                else []
            )
            elements.append(
                {
                    "selector": info["selector"],
                    "tag": info["tag"],
                    "id": info.get("id"),
                    "classes": info.get("classes") or [],
                    "text": info.get("text", ""),
                    "box": [round(x * scale), round(y * scale), round(w * scale), round(h * scale)],
                    "styles": _compact_styles(info.get("styles") or {}),
                    "source": found[0] if found else None,
                    "sources": found,
                }
            )
        out.append({**region.to_json(), "elements": elements})
    return out
