"""`kcode visual compare` and `kcode fix` (SPEC §2, §7): flags and output only.

The work lives in kcode/visual/. `fix_command` is the testable core of `kcode fix`: it takes an
`edit_step_factory` (returning the coroutine that runs one agent turn) so tests and the CLI can plug
in a fake model or the real agent. Playwright, rich and the agent runtime are imported lazily.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcode.exit_codes import EXIT_CODES
from kcode.visual.errors import VisualError

if TYPE_CHECKING:
    from kcode.cli.parse import Invocation

EditStepFactory = Callable[[], Any]  # () -> edit_step(message) -> AsyncIterator[Event]


def _error(message: str) -> None:
    sys.stderr.write(f"kcode: {message}\n")


async def compare_once(
    target: Path, workspace: Path, entry: str | None, url: str | None, image: Path | None
) -> dict[str, Any]:
    """One render (or a given image) + compare + locate: the §7 object."""
    from kcode.visual.compare import compare_images, heatmap
    from kcode.visual.locate import SourceIndex
    from kcode.visual.page_render import PageRenderer
    from kcode.visual.pipeline import check_sizes, inspect_page, metrics_object
    from kcode.visual.sources import resolve_page_source
    from kcode.visual.target_images import detect_viewport, load_image

    target_image = await asyncio.to_thread(load_image, target, "target image")
    from kcode.visual.report import make_run_dir

    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-compare"
    heatmap_path = workspace / ".kcode" / "runs" / run_id / "diff.png"
    if image is not None:
        if entry or url:
            raise VisualError("give one of --entry, --url or --image")
        other = await asyncio.to_thread(load_image, image, "image")
        check_sizes(target_image, other, "image")
        comparison = await asyncio.to_thread(compare_images, target_image, other)
        heat = await asyncio.to_thread(heatmap, target_image, comparison)
        await asyncio.to_thread(make_run_dir, workspace, run_id)
        await asyncio.to_thread(heat.save, heatmap_path)
        regions = [{**r.to_json(), "elements": []} for r in comparison.regions]
        return metrics_object(comparison, regions, None, heatmap_path)
    source = resolve_page_source(workspace, entry, url)
    viewport = detect_viewport(target_image)
    await asyncio.to_thread(make_run_dir, workspace, run_id)
    async with PageRenderer() as renderer:
        inspection = await inspect_page(
            renderer, source, target_image, viewport, heatmap_path, SourceIndex(workspace)
        )
    check_sizes(target_image, inspection.render_image, "render")
    return inspection.metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    size = metrics["size"]
    lines = [
        f"score      {metrics['score']:.4f}",
        f"mismatch   {metrics['mismatch'] * 100:.2f}% of pixels",
        f"structure  {metrics['structure']:.4f}",
        f"size       target {size['target'][0]}×{size['target'][1]}, "
        f"render {size['render'][0]}×{size['render'][1]}",
    ]
    for number, region in enumerate(metrics["regions"], start=1):
        x, y, w, h = region["box"]
        lines.append(f"region {number}: x={x} y={y} w={w} h={h}")
        for element in region["elements"]:
            where = element["source"] or "source not found"
            lines.append(f"    {element['selector']}  ({where})")
    if metrics.get("blocked"):
        lines.append("blocked: " + ", ".join(metrics["blocked"]))
    if metrics.get("console_errors"):
        lines.append("console errors: " + " | ".join(metrics["console_errors"]))
    lines.append(f"heatmap    {metrics['heatmap']}")
    return "\n".join(lines)


def compare_command(inv: Invocation) -> int:
    """`kcode visual compare TARGET`: render the page (or take --image), compare, print."""
    from kcode.cli.parse import root_of

    workspace = root_of(inv)
    try:
        metrics = asyncio.run(
            compare_once(inv["target"], workspace, inv["entry"], inv["url"], inv["compare_image"])
        )
    except VisualError as err:
        _error(err.message)
        return err.exit_code
    except KeyboardInterrupt:
        return EXIT_CODES["cancelled"]
    sys.stdout.write(
        json.dumps(metrics, ensure_ascii=False) if inv["as_json"] else format_metrics(metrics)
    )
    sys.stdout.write("\n")
    return 0


def iteration_table(result: Any) -> str:
    lines = ["iter  score   mismatch  regions"]
    for record in result.iterations:
        mark = "  ← kept" if record.iteration == result.best_iteration else ""
        lines.append(
            f"{record.iteration:>4}  {record.score:.4f}  {record.metrics.get('mismatch', 0):8.4f}"
            f"  {len(record.metrics.get('regions', [])):>7}{mark}"
        )
    return "\n".join(lines)


def fix_command(
    image: Path,
    instructions: str = "",
    entry: str | None = None,
    url: str | None = None,
    max_iters: int = 6,
    threshold: float = 0.95,
    *,
    workspace: Path | None = None,
    edit_step_factory: EditStepFactory | None = None,
    output_format: str = "text",
    on_event: Callable[[Any], None] | None = None,
    cleanup: Callable[[], Awaitable[None]] | None = None,
    session_id: Callable[[], str | None] | None = None,
) -> int:
    """Run the fix loop; print progress/result in `output_format`; return the exit code.

    The JSON result has the SPEC §4 fields of `kcode -p` (kcode.run_result) plus `visual`;
    `session_id` tells the id of the session the agent turns were logged in, once known."""
    from kcode.events import TurnFinished, VisualIteration
    from kcode.run_result import result_object
    from kcode.ui.printers import make_printer
    from kcode.visual.loop import FixLoop, FixOptions

    printer = make_printer(output_format, sys.stdout, sys.stderr)
    started = time.monotonic()
    totals: dict[str, Any] = {}  # the main agent's stats at its last turn: totals of the run

    def fail(message: str, code: int) -> int:
        """The one-line error; with json/stream-json also the §4 result object, as -p gives."""
        _error(message)
        sid = session_id() if session_id is not None else None
        printer.finish({**result_object(sid, code, None, started, totals), "error": message})
        return code

    if edit_step_factory is None:
        return fail(
            "no model is connected to the fix loop (configure a backend: `kcode doctor`)", 2
        )
    if max_iters < 1:
        return fail(f"--max-iters {max_iters} must be at least 1", 2)
    options = FixOptions(
        workspace=(workspace or Path.cwd()).resolve(), image=image, instructions=instructions,
        entry=entry, url=url, max_iters=max_iters, threshold=threshold,
    )  # fmt: skip
    loop = FixLoop(options, edit_step_factory())

    progress = output_format == "text" and sys.stderr.isatty()

    async def drive() -> None:
        try:
            async for event in loop.run():
                if isinstance(event, TurnFinished) and event.agent == "main":
                    totals.update(event.stats)
                printer.event(event)
                if on_event is not None:
                    on_event(event)
                if progress and isinstance(event, VisualIteration):
                    sys.stderr.write(
                        f"kcode fix: iteration {event.iteration} score {event.score:.4f}\n"
                    )
        finally:
            if cleanup is not None:
                await cleanup()

    try:
        asyncio.run(drive())
    except VisualError as err:
        return fail(err.message, err.exit_code)
    except KeyboardInterrupt:
        return fail(
            "interrupted; the working tree is at the best iteration so far", EXIT_CODES["cancelled"]
        )
    result = loop.result
    assert result is not None
    summary = (
        f"{iteration_table(result)}\n"
        f"best iteration {result.best_iteration}: score {result.best_score:.4f} "
        f"(threshold {threshold:.2f}, stopped: {result.stop_reason})\n"
        f"report: {result.report_path}"
    )
    sid = session_id() if session_id is not None else None
    printer.finish(
        {
            **result_object(sid, result.exit_code, summary, started, totals),
            "visual": {
                "mode": result.mode,
                "best_iteration": result.best_iteration,
                "best_score": result.best_score,
                "stop_reason": result.stop_reason,
                "report": str(result.report_path),
                "restored_files": result.restored_files,
                "scores": [r.score for r in result.iterations],
            },
        }
    )
    return result.exit_code


def fix_cli(inv: Invocation) -> int:
    """`kcode fix IMAGE [INSTRUCTIONS]`: the fix loop with the real agent (flags: kcode.cli.flags)."""
    from kcode.cli.main import load
    from kcode.cli.parse import root_of

    root = root_of(inv)
    config = load(inv, interactive=not inv["non_interactive"])
    if config.sources.get("approval", "default").startswith("default"):
        # The REPL's `ask` default does not apply: nobody is asked inside the loop, so it would
        # refuse the first edit (exit 4). `fix` edits under auto-edit unless told otherwise.
        config = config.overridden("default (kcode fix)", approval="auto-edit")
    runtime_box: dict[str, Any] = {}

    def edit_step_factory() -> Callable[[Any], AsyncIterator[Any]]:
        return lambda message: _agent_turn(config, root, runtime_box, message)

    async def cleanup() -> None:
        runtime = runtime_box.get("runtime")
        if runtime is not None:
            await runtime.aclose()

    def session_id() -> str | None:
        runtime = runtime_box.get("runtime")
        return None if runtime is None else str(runtime.session.session_id)

    return fix_command(
        inv["image_target"], inv["instructions"], inv["entry"], inv["url"], inv["max_iters"],
        inv["threshold"], workspace=root, edit_step_factory=edit_step_factory,
        output_format=config.output_format or "text", cleanup=cleanup, session_id=session_id,
    )  # fmt: skip


async def _agent_turn(
    config: Any, root: Path, runtime_box: dict[str, Any], message: Any
) -> AsyncIterator[Any]:
    """One turn of the real agent; the runtime (backend, session) is built on first use."""
    from kcode.backends.base import BackendError
    from kcode.config.loader import ConfigError
    from kcode.runtime import build_runtime
    from kcode.safety.approval import NonInteractiveApprover

    runtime = runtime_box.get("runtime")
    if runtime is None:
        try:
            runtime = build_runtime(
                config, root, NonInteractiveApprover(config.approval or "auto-edit"),
                interactive=False,
            )  # fmt: skip
        except (ConfigError, BackendError) as err:
            code = 3 if isinstance(err, BackendError) and err.kind != "config" else 2
            raise VisualError(getattr(err, "message", str(err)), code) from err
        runtime_box["runtime"] = runtime
    runtime.retire_images()  # the new message brings the current pictures
    async for event in runtime.run_turn(message):
        yield event
