"""The fix loop: render, compare, locate, let the model edit, re-render — driven by the harness.

The model part is injected: `edit_step(message)` runs ONE agent turn with the normal tools and yields
its events (the CLI passes `Agent.run_turn`; tests pass a function that edits files directly).

Iteration 0 is the page as it is. Each following iteration is one model turn and a new render. The loop
stops when the score reaches the threshold, after 2 iterations in a row without beating the best
score, after `max_iters` turns, or when a turn ends abnormally (backend error, approval needed,
cancelled). Every render is checkpointed; the best iteration is restored at the end (and on errors),
so the working tree is never left half-edited. Exit code 0 when the best score reaches the threshold.

Annotated screenshots (a red ring drawn by the user, found on the image but not on the live render)
are bug reports, not targets: one model turn gets the circled region, its elements and the user's
words; it succeeds (exit 0) when the turn completes and the circled part of the page changed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from kcode.events import Event, TurnFinished, TurnReason, VisualIteration
from kcode.exit_codes import ENDS_RUN
from kcode.exit_codes import exit_code as code_for
from kcode.messages import Message
from kcode.visual.annotate import find_red_mark, mark_is_annotation
from kcode.visual.checkpoint import Checkpoints, open_checkpoints
from kcode.visual.compare import PreparedTarget, compare_images, heatmap
from kcode.visual.locate import SourceIndex, locate_regions
from kcode.visual.page_render import PageRenderer
from kcode.visual.pipeline import Inspection, check_sizes, inspect_page, metrics_object
from kcode.visual.prompt import annotation_message, target_message
from kcode.visual.regions import Region
from kcode.visual.report import IterationRecord, make_run_dir, write_report
from kcode.visual.sources import PageSource, resolve_page_source
from kcode.visual.target_images import detect_viewport, load_image

EditStep = Callable[[Message], AsyncIterator[Event]]
PATIENCE = 2  # iterations without improvement before giving up


@dataclass
class FixOptions:
    workspace: Path
    image: Path
    instructions: str = ""
    entry: str | None = None
    url: str | None = None
    max_iters: int = 6
    threshold: float = 0.95
    timeout_s: float = 15.0
    run_id: str | None = None


@dataclass
class FixResult:
    exit_code: int
    mode: str  # "target" | "annotation"
    best_iteration: int
    best_score: float
    stop_reason: str
    report_path: Path
    iterations: list[IterationRecord] = field(default_factory=list)
    restored_files: list[str] = field(default_factory=list)


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-fix-{secrets.token_hex(3)}"


class FixLoop:
    def __init__(
        self, options: FixOptions, edit_step: EditStep, renderer: PageRenderer | None = None
    ) -> None:
        """`renderer`: an already started one to reuse (it is then left open), else one per run."""
        self.options = options
        self._shared_renderer = renderer
        self.edit_step = edit_step
        self.workspace = options.workspace.resolve()
        self.run_id = options.run_id or new_run_id()
        self.run_dir = self.workspace / ".kcode" / "runs" / self.run_id
        self.result: FixResult | None = None
        self.records: list[IterationRecord] = []
        self._checkpoints: Checkpoints | None = None
        self._best = (-1, -1.0)  # (iteration, score)

    def _prepare(self) -> tuple[Image.Image, PageSource]:
        """Validate everything before touching the browser or the tree (bad input: exit 2)."""
        if not 0.0 < self.options.threshold <= 1.0:
            from kcode.visual.errors import VisualError

            raise VisualError(f"--threshold {self.options.threshold} must be in (0, 1]")
        image = load_image(self.options.image, "target image")
        source = resolve_page_source(self.workspace, self.options.entry, self.options.url)
        return image, source

    async def run(self) -> AsyncIterator[Event]:
        image, source = await asyncio.to_thread(self._prepare)
        viewport = detect_viewport(image)
        await asyncio.to_thread(make_run_dir, self.workspace, self.run_id)
        await asyncio.to_thread(image.save, self.run_dir / "target.png")
        self._checkpoints = await open_checkpoints(self.workspace, self.run_dir, self.run_id)
        sources = SourceIndex(self.workspace)
        renderer = self._shared_renderer or PageRenderer(timeout_s=self.options.timeout_s)
        if self._shared_renderer is None:
            await renderer.start()
        try:
            try:
                first = await inspect_page(
                    renderer, source, image, viewport, self._path(0, "diff"), sources
                )
                check_sizes(image, first.render_image, "render")
                mark = find_red_mark(image)
                if mark is not None and mark_is_annotation(mark, first.render_image):
                    agen = self._annotation(renderer, source, image, first, mark, sources)
                else:
                    agen = self._target(renderer, source, image, first, sources)
                async for event in agen:
                    yield event
            except BaseException:
                await self._restore_best()
                raise
        finally:
            if self._shared_renderer is None:
                await renderer.close()
        assert self.result is not None
        self.result.report_path = await asyncio.to_thread(
            write_report,
            self.run_dir,
            self.result.mode,
            self.records,
            self.options.threshold,
            self.result.best_iteration,
        )

    def _path(self, iteration: int, kind: str) -> Path:
        return self.run_dir / f"iter-{iteration}-{kind}.png"

    async def _record(
        self, iteration: int, inspection: Inspection, score: float, metrics: dict[str, Any]
    ) -> VisualIteration:
        render_path = self._path(iteration, "render")
        await asyncio.to_thread(render_path.write_bytes, inspection.render.png)
        assert self._checkpoints is not None
        await self._checkpoints.snapshot(iteration)
        if iteration > 0:
            self.records[-1].edits = await self._checkpoints.diff(iteration - 1, iteration)
        improved = score > self._best[1]
        if improved:
            self._best = (iteration, score)
        self.records.append(IterationRecord(iteration, score, metrics, render_path))
        return VisualIteration(iteration=iteration, score=score, metrics=metrics, best=improved)

    async def _edit(self, message: Message) -> AsyncIterator[Event]:
        """Forward the turn's events; remember how it ended."""
        self._turn_reason: TurnReason = "completed"
        async for event in self.edit_step(message):
            if isinstance(event, TurnFinished) and event.agent == "main":
                self._turn_reason = event.reason
            yield event

    async def _target(
        self,
        renderer: PageRenderer,
        source: PageSource,
        image: Image.Image,
        current: Inspection,
        sources: SourceIndex,
    ) -> AsyncIterator[Event]:
        options = self.options
        prepared = await asyncio.to_thread(PreparedTarget, image)
        yield await self._record(0, current, current.metrics["score"], current.metrics)
        stop_reason, stale, exit_code = "max_iters", 0, None
        for iteration in range(1, options.max_iters + 1):
            if self._best[1] >= options.threshold:
                stop_reason = "threshold"
                break
            message = target_message(
                iteration=iteration,
                max_iters=options.max_iters,
                page=source.label,
                threshold=options.threshold,
                best=self._best[1],
                metrics=current.metrics,
                instructions=options.instructions,
                target=image,
                render=current.render_image,
                heatmap=current.heatmap_image,
            )
            async for event in self._edit(message):
                yield event
            current = await inspect_page(
                renderer,
                source,
                prepared,
                current.render.viewport,
                self._path(iteration, "diff"),
                sources,
            )
            before = self._best[1]
            yield await self._record(iteration, current, current.metrics["score"], current.metrics)
            if self._turn_reason in ENDS_RUN:  # one table for every front end (kcode.exit_codes)
                stop_reason, exit_code = self._turn_reason, code_for(self._turn_reason)
                break
            stale = 0 if current.metrics["score"] > before else stale + 1
            if stale >= PATIENCE and self._best[1] < options.threshold:
                stop_reason = "no_improvement"
                break
        else:
            if self._best[1] >= options.threshold:
                stop_reason = "threshold"
        restored = await self._restore_best()
        best_iteration, best_score = self._best
        if exit_code is None:
            exit_code = 0 if best_score >= options.threshold else 1
        self.result = FixResult(
            exit_code,
            "target",
            best_iteration,
            best_score,
            stop_reason,
            self.run_dir,
            self.records,
            restored,
        )

    async def _annotation(
        self,
        renderer: PageRenderer,
        source: PageSource,
        image: Image.Image,
        first: Inspection,
        mark: tuple[int, int, int, int],
        sources: SourceIndex,
    ) -> AsyncIterator[Event]:
        x, y, w, h = mark
        scale = first.render.viewport.scale
        region = Region(x, y, w, h, w * h, (x + w // 2, y + h // 2))
        located = await locate_regions(
            [region], first.render.boxes, scale, renderer.describe_elements, sources
        )
        metrics = {**first.metrics, "mode": "annotation", "mark": list(mark), "regions": located}
        yield await self._record(0, first, 0.0, metrics)
        message = annotation_message(
            page=source.label,
            instructions=self.options.instructions,
            mark=mark,
            region=located[0],
            metrics=metrics,
            annotated=image,
            render=first.render_image,
        )
        async for event in self._edit(message):
            yield event
        after = await renderer.render(source, first.render.viewport)
        after_image = await asyncio.to_thread(_decode, after.png)
        box = (x, y, x + w, y + h)
        change = await asyncio.to_thread(
            compare_images, first.render_image.crop(box), after_image.crop(box)
        )
        whole = await asyncio.to_thread(compare_images, first.render_image, after_image)
        heat = await asyncio.to_thread(heatmap, first.render_image, whole)
        await asyncio.to_thread(heat.save, self._path(1, "diff"))
        changed = round(1.0 - change.score, 4)
        metrics_after = {
            **metrics_object(whole, located, after, self._path(1, "diff")),
            "mode": "annotation",
            "mark": list(mark),
            "changed": changed,
        }
        after_inspection = Inspection(metrics_after, whole, after, after_image, _heatmap=heat)
        yield await self._record(1, after_inspection, changed, metrics_after)
        reason = self._turn_reason
        if reason in ENDS_RUN:
            exit_code = code_for(reason)
        else:
            exit_code = 0 if changed > 0 and reason == "completed" else 1
        restored = []
        if reason in ENDS_RUN and self._checkpoints is not None:
            restored = await self._checkpoints.restore(0)
        self.result = FixResult(
            exit_code,
            "annotation",
            1,
            changed,
            "changed" if changed > 0 else "unchanged",
            self.run_dir,
            self.records,
            restored,
        )

    async def _restore_best(self) -> list[str]:
        best_iteration = self._best[0]
        if self._checkpoints is None or best_iteration < 0:
            return []
        return await self._checkpoints.restore(best_iteration)


def _decode(png: bytes) -> Image.Image:
    import io

    return Image.open(io.BytesIO(png)).convert("RGB")
