"""Issue #12 item 5: one image path. `kcode -i` in the REPL, `kcode -p -i` and the view_image tool
send the same image (size and format) to the model; it used to be 4000×3000 untouched in the REPL
and 1568×1176 elsewhere. The fake OpenAI server captures what each front end really sent."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pexpect
import pytest
from PIL import Image, ImageDraw

from kcode.images import MAX_SIDE_PX
from tests.e2e.conftest import kcode_exe, make_repo, run_kcode
from tests.fake_openai import FakeOpenAIServer, Reply

pytestmark = pytest.mark.slow  # three real kcode processes, one of them in a pseudo-terminal


def _big_png(path: Path) -> None:
    image = Image.new("RGB", (4000, 3000), "white")
    draw = ImageDraw.Draw(image)
    for i in range(0, 4000, 250):  # some structure, so resizing and encoding do real work
        draw.rectangle((i, i * 3 // 4, i + 120, i * 3 // 4 + 90), fill=(i % 255, 80, 160))
    image.save(path)


def _sent_images(server: FakeOpenAIServer) -> list[tuple[str, tuple[int, int]]]:
    """(mime, size) of every image part in every request, in order."""
    found = []
    for request in server.requests:
        for message in (request.body or {}).get("messages", []):
            content: Any = message.get("content")
            for part in content if isinstance(content, list) else []:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    header, data = url.split(",", 1)
                    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                        found.append((header.removeprefix("data:").split(";")[0], image.size))
    return found


def test_repl_print_mode_and_view_image_send_the_same_image(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "x\n"})
    _big_png(repo / "big.png")

    with FakeOpenAIServer([Reply.text("seen")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "describe it", "-i", "big.png"], kcode_env, repo)
        assert run.code == 0, run.stderr
        headless = _sent_images(srv)

    script = [Reply.tool_call("view_image", {"path": "big.png"}), Reply.text("seen")]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "look at big.png"], kcode_env, repo)
        assert run.code == 0, run.stderr
        tool = _sent_images(srv)[-1:]

    with FakeOpenAIServer([Reply.text("seen by the repl")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        env = {**kcode_env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
        child = pexpect.spawn(
            kcode_exe(), ["-i", "big.png", "describe it"], env=env, cwd=str(repo),
            dimensions=(40, 120), encoding="utf-8", timeout=30,
        )  # fmt: skip
        child.expect("seen by the repl")
        child.send("\x04")
        child.expect(pexpect.EOF)
        child.close()
        repl = _sent_images(srv)

    assert len(headless) == len(tool) == len(repl) == 1, (headless, tool, repl)
    assert headless == tool == repl
    mime, size = repl[0]
    assert mime == "image/png" and max(size) == MAX_SIDE_PX and size == (1568, 1176), size
