"""The fix loop end to end with a real Chromium and fake edit steps that edit files directly."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from kcode.events import Event, TurnFinished, VisualIteration
from kcode.messages import Message
from kcode.visual.loop import FixLoop, FixOptions
from kcode.visual.page_render import PageRenderer
from tests.visual.pages import DEFECTS, STYLES, write_defective

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

WRONG_COLOUR = DEFECTS[0]


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def git_repo_with_defect(root: Path) -> Path:
    write_defective(root, WRONG_COLOUR)
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "page")
    return root


def css_edit(new_css: str, seen: list[Message]):  # type: ignore[no-untyped-def]
    async def edit_step(message: Message) -> AsyncIterator[Event]:
        seen.append(message)
        (root_of(message) / "styles.css").write_text(new_css)
        yield TurnFinished(reason="completed", result="edited styles.css")

    return edit_step


_ROOTS: dict[str, Path] = {}


def root_of(message: Message) -> Path:
    return _ROOTS["current"]


async def run(loop: FixLoop) -> list[Event]:
    return [event async for event in loop.run()]


async def test_right_css_edit_reaches_the_threshold(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    root = git_repo_with_defect(tmp_path / "repo")
    _ROOTS["current"] = root
    target = tmp_path / "design.png"
    target_image.save(target)
    status_before = git(root, "status", "--porcelain")
    seen: list[Message] = []
    loop = FixLoop(FixOptions(root, target), css_edit(STYLES, seen), renderer)
    events = await run(loop)

    result = loop.result
    assert result is not None and result.exit_code == 0 and result.stop_reason == "threshold"
    assert result.best_score >= 0.95 and result.best_iteration == 1
    iterations = [e for e in events if isinstance(e, VisualIteration)]
    assert [e.iteration for e in iterations] == [0, 1]
    assert iterations[0].metrics["score"] < 0.95 and iterations[1].score == 1.0
    assert set(iterations[0].metrics) >= {"score", "mismatch", "structure", "size", "regions",
                                          "blocked", "console_errors", "heatmap"}  # fmt: skip
    # The model saw the target, the render and the heatmap, and the located element with source.
    assert len(seen) == 1 and len(seen[0].images) == 3
    assert "#plan-pro > button.buy" in seen[0].text and "styles.css:24" in seen[0].text
    report = result.report_path.read_text()
    assert result.report_path.name == "report.html"
    for iteration in (0, 1):
        assert f'id="iteration-{iteration}"' in report
        assert (result.report_path.parent / f"iter-{iteration}-render.png").is_file()
        assert (result.report_path.parent / f"iter-{iteration}-diff.png").is_file()
    assert "<svg" in report and "-#plan-pro .buy { background: #16a34a; }" in report
    # The user's index and branch are untouched; checkpoints live on hidden refs.
    assert git(root, "diff", "--cached", "--name-only") == ""
    assert git(root, "status", "--porcelain") == status_before + " M styles.css\n"
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/kcode/visual/")
    assert len(refs.split()) == 2


async def test_edits_that_make_it_worse_are_rolled_back(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    root = git_repo_with_defect(tmp_path / "repo")
    _ROOTS["current"] = root
    original = (root / "styles.css").read_text()
    target = tmp_path / "design.png"
    target_image.save(target)
    worse = [".card { display: none; }\n", "body { background: black; }\n"]
    turns = 0

    async def edit_step(message: Message) -> AsyncIterator[Event]:
        nonlocal turns
        with (root / "styles.css").open("a") as css:
            css.write(worse[turns % 2])
        (root / "notes.txt").write_text("scratch file the model created")
        turns += 1
        yield TurnFinished(reason="completed", result="made it worse")

    loop = FixLoop(FixOptions(root, target, max_iters=6), edit_step, renderer)
    await run(loop)
    result = loop.result
    assert result is not None and result.exit_code == 1
    assert result.stop_reason == "no_improvement" and turns == 2
    assert result.best_iteration == 0
    assert (root / "styles.css").read_text() == original
    assert not (root / "notes.txt").exists()
    assert sorted(result.restored_files) == ["notes.txt", "styles.css"]
    assert len([r for r in result.iterations]) == 3


async def test_outside_git_the_best_iteration_is_restored_from_copies(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    root = write_defective(tmp_path / "plain", WRONG_COLOUR)
    _ROOTS["current"] = root
    target = tmp_path / "design.png"
    target_image.save(target)
    # The button fixed, a smaller defect left: better than the start, short of the threshold.
    half_fixed = STYLES + "#plan-pro .badge { visibility: hidden; }\n"
    answers = [half_fixed, STYLES + ".card { display: none; }\n", "body { color: red }\n"]

    async def edit_step(message: Message) -> AsyncIterator[Event]:
        (root / "styles.css").write_text(answers.pop(0))
        yield TurnFinished(reason="completed", result="")

    loop = FixLoop(FixOptions(root, target, threshold=1.0, max_iters=3), edit_step, renderer)
    await run(loop)
    result = loop.result
    assert result is not None and result.exit_code == 1
    assert result.best_iteration == 1
    assert (root / "styles.css").read_text() == half_fixed


async def test_circled_spot_goes_to_the_model_with_the_users_words(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    root = write_defective(tmp_path / "plain", WRONG_COLOUR)
    shot = target_image.copy()
    # The user circles the Pro plan's button (x 384..644, y ~392..429 on the 1280×800 render).
    ImageDraw.Draw(shot).ellipse((370, 380, 660, 440), outline=(230, 0, 0), width=4)
    shot.save(tmp_path / "bug.png")
    seen: list[Message] = []

    async def edit_step(message: Message) -> AsyncIterator[Event]:
        seen.append(message)
        (root / "styles.css").write_text(STYLES + "#plan-pro .buy { background: #7c3aed; }\n")
        yield TurnFinished(reason="completed", result="changed the button colour")

    options = FixOptions(root, tmp_path / "bug.png", instructions="this button should be purple")
    loop = FixLoop(options, edit_step, renderer)
    await run(loop)
    result = loop.result
    assert result is not None and result.mode == "annotation" and result.exit_code == 0
    assert len(seen) == 1 and "this button should be purple" in seen[0].text
    assert "#plan-pro > button.buy" in seen[0].text
    assert result.report_path.is_file()


async def test_a_turn_over_budget_stops_the_loop_with_the_shared_exit_code(
    renderer: PageRenderer, target_image: Image.Image, tmp_path: Path
) -> None:
    """Issue #12: the fix loop maps reasons through kcode.exit_codes like -p does; a run budget that
    is spent stops it (exit 5) instead of starting turn after turn that can only fail again."""
    root = git_repo_with_defect(tmp_path / "repo")
    original = (root / "styles.css").read_text()
    target = tmp_path / "design.png"
    target_image.save(target)
    turns = 0

    async def edit_step(message: Message) -> AsyncIterator[Event]:
        nonlocal turns
        turns += 1
        (root / "styles.css").write_text(original + "body { color: red }\n")
        yield TurnFinished(reason="budget_exceeded", result="--max-cost 0.01 reached")

    loop = FixLoop(FixOptions(root, target, max_iters=4), edit_step, renderer)
    await run(loop)
    result = loop.result
    assert result is not None and turns == 1
    assert result.exit_code == 5 and result.stop_reason == "budget_exceeded"
