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
from typing import Annotated, Any

import typer

from kcode.exit_codes import EXIT_CODES
from kcode.visual.errors import VisualError

visual_app = typer.Typer(
    rich_markup_mode=None, no_args_is_help=True, help="Render, compare and locate (no model)."
)
fix_app = typer.Typer(rich_markup_mode=None)

EditStepFactory = Callable[[], Any]  # () -> edit_step(message) -> AsyncIterator[Event]


def _error(message: str) -> None:
    sys.stderr.write(f"kcode: {message}\n")


async def compare_once(
    target: Path, workspace: Path, entry: str | None, url: str | None, image: Path | None
) -> dict[str, Any]:
    """One render (or a given image) + compare + locate: the §7 object."""
    from kcode.visual.compare import compare_images, heatmap
    from kcode.visual.images import detect_viewport, load_image
    from kcode.visual.locate import SourceIndex
    from kcode.visual.pipeline import check_sizes, inspect_page, metrics_object
    from kcode.visual.render import Renderer
    from kcode.visual.sources import resolve_page_source

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
    async with Renderer() as renderer:
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


@visual_app.command("compare")
def compare_command(
    target: Annotated[Path, typer.Argument(help="the design / expected screenshot (PNG)")],
    entry: Annotated[str | None, typer.Option("--entry", help="HTML file to render")] = None,
    url: Annotated[str | None, typer.Option("--url", help="loopback dev-server URL")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="compare with this PNG")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
    cwd: Annotated[Path | None, typer.Option("-C", "--cwd", help="workspace directory")] = None,
) -> None:
    """Render the page (or take --image), compare with TARGET, print score and regions."""
    workspace = (cwd or Path.cwd()).resolve()
    try:
        metrics = asyncio.run(compare_once(target, workspace, entry, url, image))
    except VisualError as err:
        _error(err.message)
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_CODES["cancelled"]) from None
    sys.stdout.write(
        json.dumps(metrics, ensure_ascii=False) if as_json else format_metrics(metrics)
    )
    sys.stdout.write("\n")


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
) -> int:
    """Run the fix loop; print progress/result in `output_format`; return the exit code."""
    from kcode.events import VisualIteration
    from kcode.ui.printers import make_printer
    from kcode.visual.loop import FixLoop, FixOptions

    printer = make_printer(output_format, sys.stdout, sys.stderr)
    started = time.monotonic()
    if edit_step_factory is None:
        _error("no model is connected to the fix loop (configure a backend: see `kcode doctor`)")
        return 2
    if max_iters < 1:
        _error(f"--max-iters {max_iters} must be at least 1")
        return 2
    options = FixOptions(
        workspace=(workspace or Path.cwd()).resolve(), image=image, instructions=instructions,
        entry=entry, url=url, max_iters=max_iters, threshold=threshold,
    )  # fmt: skip
    loop = FixLoop(options, edit_step_factory())

    progress = output_format == "text" and sys.stderr.isatty()

    async def drive() -> None:
        try:
            async for event in loop.run():
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
        _error(err.message)
        return err.exit_code
    except KeyboardInterrupt:
        _error("interrupted; the working tree is at the best iteration so far")
        return EXIT_CODES["cancelled"]
    result = loop.result
    assert result is not None
    summary = (
        f"{iteration_table(result)}\n"
        f"best iteration {result.best_iteration}: score {result.best_score:.4f} "
        f"(threshold {threshold:.2f}, stopped: {result.stop_reason})\n"
        f"report: {result.report_path}"
    )
    printer.finish(
        {
            "result": summary,
            "exit_code": result.exit_code,
            "duration_s": round(time.monotonic() - started, 3),
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


@fix_app.command("fix")
def fix_cli(
    image: Annotated[Path, typer.Argument(help="target design, or a screenshot with a red circle")],
    instructions: Annotated[str, typer.Argument(help="what is wrong / what to do")] = "",
    entry: Annotated[str | None, typer.Option("--entry", help="HTML file to render")] = None,
    url: Annotated[str | None, typer.Option("--url", help="loopback dev-server URL")] = None,
    max_iters: Annotated[int, typer.Option("--max-iters", help="model turns at most")] = 6,
    threshold: Annotated[float, typer.Option("--threshold", help="score to reach")] = 0.95,
    non_interactive: Annotated[
        bool, typer.Option("-p", "--non-interactive", help="run unattended")
    ] = False,
    output_format: Annotated[
        str | None, typer.Option("--output-format", help="text | json | stream-json")
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="openai | llama-cpp | scripted")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="model name or PATH.gguf")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible URL")
    ] = None,
    approval: Annotated[
        str | None, typer.Option("--approval", help="auto-edit (default) | auto")
    ] = None,
    sandbox: Annotated[str | None, typer.Option("--sandbox", help="off | workspace-write")] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="model calls per turn")
    ] = None,
    max_parallel: Annotated[int | None, typer.Option("--max-parallel", help="sub-agents")] = None,
    thinking: Annotated[bool | None, typer.Option("--thinking/--no-thinking")] = None,
    cwd: Annotated[Path | None, typer.Option("-C", "--cwd", help="workspace directory")] = None,
) -> None:
    """Visual fix loop: render, compare with IMAGE, let the model edit, repeat (exit 0 = threshold).

    Edits are approved by the `auto-edit` policy unless --approval says otherwise (the loop runs
    unattended in both modes; shell commands need --approval auto).
    """
    from kcode.config import ConfigError, load_config

    root = (cwd or Path.cwd()).resolve()
    if not root.is_dir():
        _error(f"--cwd {cwd}: not a directory")
        raise typer.Exit(2)
    flags = {
        k: v
        for k, v in dict(
            backend=backend, model=model, base_url=base_url, approval=approval, sandbox=sandbox,
            max_steps=max_steps, max_parallel=max_parallel, output_format=output_format,
            thinking=thinking,
        ).items()
        if v is not None
    }  # fmt: skip
    try:
        config = load_config(root, flags, interactive=not non_interactive)
    except ConfigError as err:
        _error(str(err))
        raise typer.Exit(2) from None
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

    code = fix_command(
        image, instructions, entry, url, max_iters, threshold,
        workspace=root, edit_step_factory=edit_step_factory,
        output_format=config.output_format or "text", cleanup=cleanup,
    )  # fmt: skip
    raise typer.Exit(code)


async def _agent_turn(
    config: Any, root: Path, runtime_box: dict[str, Any], message: Any
) -> AsyncIterator[Any]:
    """One turn of the real agent; the runtime (backend, session) is built on first use."""
    from kcode.approval import NonInteractiveApprover
    from kcode.backends.base import BackendError
    from kcode.config import ConfigError
    from kcode.runtime import build_runtime
    from kcode.visual.prompt import retire_images

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
    retire_images(runtime.agent.history)  # the new message brings the current pictures
    async for event in runtime.agent.run_turn(message):
        runtime.session.log_event(event)
        yield event
