"""`fix_command` refuses bad input before launching anything, and leaves the tree as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from kcode.cli.commands.visual import fix_command
from kcode.events import Event, TurnFinished
from kcode.messages import Message
from tests.visual.pages import write_page


def never_called() -> object:
    async def edit_step(message: Message) -> AsyncIterator[Event]:
        raise AssertionError("the model must not run on bad input")
        yield TurnFinished(reason="completed")

    return edit_step


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not an image", "not a readable image"),
        ("missing image", "does not exist"),
        ("remote url", "not a loopback address"),
        ("no page", "no page to render"),
        ("bad threshold", "must be in (0, 1]"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    root = write_page(tmp_path / "site")
    image = tmp_path / "target.png"
    Image.new("RGB", (640, 400), "white").save(image)
    kwargs: dict[str, object] = {}
    if case == "not an image":
        image.write_text("<html>")
    elif case == "missing image":
        image = tmp_path / "nope.png"
    elif case == "remote url":
        kwargs["url"] = "http://203.0.113.5:3000/"
    elif case == "no page":
        (root / "index.html").unlink()
    elif case == "bad threshold":
        kwargs["threshold"] = 1.5
    before = snapshot(root)
    code = fix_command(
        image,
        workspace=root,
        edit_step_factory=never_called,
        **kwargs,  # type: ignore[arg-type]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert snapshot(root) == before


def test_no_model_and_zero_iterations_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "target.png"
    Image.new("RGB", (640, 400), "white").save(image)
    assert fix_command(image, workspace=tmp_path) == 2
    assert "no model" in capsys.readouterr().err
    assert fix_command(image, max_iters=0, workspace=tmp_path, edit_step_factory=never_called) == 2
    assert "--max-iters" in capsys.readouterr().err


def test_a_json_error_is_the_spec_result_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    code = fix_command(
        tmp_path / "nope.png", workspace=tmp_path, edit_step_factory=never_called,
        output_format="json",
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["exit_code"] == 2 and "nope.png" in out["error"]
    for key in ("result", "session_id", "files_changed", "tests", "usage", "duration_s", "steps",
                "critical_steps", "agents"):  # fmt: skip
        assert key in out, key
