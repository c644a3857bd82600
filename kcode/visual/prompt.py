"""The message the fix loop sends the model each iteration: images plus regions, elements and sources."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PIL import Image

from kcode.messages import ImagePart, Message, TextPart
from kcode.visual.target_images import image_for_model

MAX_REGIONS_IN_PROMPT = 8

INSTRUCTIONS = (
    "Edit the project's source files with your tools (edit_file, apply_patch, ...) to remove the "
    "largest differences first. kcode re-renders and compares after your turn: do not try to render "
    "or screenshot yourself. Rendering is offline: external fonts, scripts and images are blocked, so "
    "use local files. End with one line saying what you changed."
)


def describe_regions(regions: list[dict[str, Any]], limit: int = MAX_REGIONS_IN_PROMPT) -> str:
    lines = []
    for number, region in enumerate(regions[:limit], start=1):
        x, y, w, h = region["box"]
        lines.append(
            f"{number}. region x={x} y={y} w={w} h={h} ({region.get('pixels', '?')} px differ)"
        )
        for element in region["elements"]:
            styles = "; ".join(f"{k}: {v}" for k, v in list(element["styles"].items())[:10])
            text = f' "{element["text"]}"' if element.get("text") else ""
            where = ", ".join(element.get("sources") or []) or "source not found"
            ex, ey, ew, eh = element["box"]
            lines.append(
                f"   - {element['selector']} <{element['tag']}>{text} at [{ex}, {ey}, {ew}, {eh}]"
                f" — {where}\n     {styles}"
            )
    if len(regions) > limit:
        lines.append(f"... and {len(regions) - limit} smaller regions")
    return "\n".join(lines) or "(no differing regions)"


def _page_notes(metrics: dict[str, Any]) -> str:
    notes = []
    if metrics.get("console_errors"):
        notes.append(
            "Console errors:\n" + "\n".join(f"  {e}" for e in metrics["console_errors"][:10])
        )
    if metrics.get("failed_requests"):
        notes.append(
            "Failed requests:\n" + "\n".join(f"  {e}" for e in metrics["failed_requests"][:10])
        )
    if metrics.get("blocked"):
        notes.append(
            "Blocked (network is off while rendering):\n"
            + "\n".join(f"  {u}" for u in metrics["blocked"][:10])
        )
    return "\n".join(notes)


def target_message(
    *,
    iteration: int,
    max_iters: int,
    page: str,
    threshold: float,
    best: float,
    metrics: dict[str, Any],
    instructions: str,
    target: Image.Image,
    render: Image.Image,
    heatmap: Image.Image,
) -> Message:
    viewport = metrics.get("viewport") or {}
    text = (
        f"Visual fix loop, turn {iteration} of at most {max_iters}. Make the page rendered from "
        f"{page} look like the target image.\n"
        f"Score now {metrics['score']:.3f} (goal ≥ {threshold:.2f}, best so far {best:.3f}); "
        f"{metrics['mismatch'] * 100:.2f}% of pixels differ; structure {metrics['structure']:.3f}.\n"
        f"Viewport {viewport.get('width')}×{viewport.get('height')} CSS px at scale "
        f"{viewport.get('scale')}; boxes below are in target-image pixels.\n"
        + (f"The user says: {instructions}\n" if instructions else "")
        + "Images: 1) the target, 2) the current render, 3) the difference (red = differing pixels, "
        "orange boxes = regions).\n\nDiffering regions, largest first, with the elements under "
        f"them in the current render:\n{describe_regions(metrics['regions'])}\n"
        + (f"\n{_page_notes(metrics)}\n" if _page_notes(metrics) else "")
        + f"\n{INSTRUCTIONS}"
    )
    return _message(text, target, render, heatmap)


def annotation_message(
    *,
    page: str,
    instructions: str,
    mark: tuple[int, int, int, int],
    region: dict[str, Any],
    metrics: dict[str, Any],
    annotated: Image.Image,
    render: Image.Image,
) -> Message:
    x, y, w, h = mark
    words = instructions or "this part does not look right"
    text = (
        f"Bug report on the page rendered from {page}: the user circled a spot in red on a screenshot "
        f"(x={x} y={y} w={w} h={h}, image pixels) and says: {words}\n"
        "Images: 1) the user's annotated screenshot, 2) the page as it renders now.\n\n"
        f"Elements under the circled spot in the live render:\n{describe_regions([region])}\n"
        + (f"\n{_page_notes(metrics)}\n" if _page_notes(metrics) else "")
        + f"\n{INSTRUCTIONS}"
    )
    return _message(text, annotated, render)


FIX_LOOP_META = "fix_loop_images"


def _message(text: str, *images: Image.Image) -> Message:
    parts: tuple[TextPart | ImagePart, ...] = (TextPart(text),)
    parts += tuple(image_for_model(image) for image in images)
    return Message("user", parts, meta={FIX_LOOP_META: len(images)})


def retire_images(history: list[Message]) -> None:
    """Drops the pictures of earlier fix-loop messages from an agent's history, keeping their text:
    once there is a newer render they are stale, and each costs the context about as much as a
    page of text (three per iteration). Called before each new iteration's turn."""
    for index, message in enumerate(history):
        if message.meta.get(FIX_LOOP_META) and message.images:
            note = f"\n\n[the {len(message.images)} images of this earlier iteration were dropped]"
            history[index] = replace(
                message,
                parts=(TextPart(message.text + note),),
                meta={**message.meta, FIX_LOOP_META: 0},
            )
