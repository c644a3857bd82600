"""`kcode fix` and `kcode visual compare` as a user runs them: the real executable, scripted model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.fake_openai import FakeOpenAIServer, Reply
from tests.visual.pages import DEFECTS, STYLES, write_defective

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

KCODE = [sys.executable, "-m", "kcode"]
# Edits that make the pricing page worse, one per model turn.
WORSE = [".card { display: none; }\n", "body { background: #000; }\n"]


def kcode(cwd: Path, *args: str, script: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    env["KCODE_SCRIPT"] = str(script) if script else ""
    env["HOME"] = str(cwd)  # no user config leaks in
    return subprocess.run(
        [*KCODE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def repo(root: Path) -> Path:
    write_defective(root, DEFECTS[0])
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "page"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True
        )
    return root


def write_script(path: Path, turns: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps(turns))
    return path


async def test_fix_with_a_model_that_makes_the_right_edit_exits_0(
    target_image: Image.Image, tmp_path: Path
) -> None:
    root = repo(tmp_path / "site")
    target_image.save(tmp_path / "target.png")
    script = write_script(
        tmp_path / "script.json",
        [
            {"tool_calls": [{"name": "write_file",
                             "arguments": {"path": "styles.css", "content": STYLES}}]},
            {"text": "Restored the Pro button colour."},
        ],
    )  # fmt: skip
    done = kcode(  # global flags before the command, its own after it (issue #12)
        root, "--backend", "scripted", "--output-format", "json", "fix",
        str(tmp_path / "target.png"), "--entry", "index.html", "--non-interactive", script=script,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    spec4 = {"result", "exit_code", "session_id", "files_changed", "tests", "usage", "duration_s",
             "steps", "critical_steps", "agents"}  # fmt: skip
    assert spec4 <= set(result) and result["session_id"] and result["steps"] >= 2
    assert result["files_changed"] == ["styles.css"] and result["usage"]["requests"] >= 2
    assert result["visual"]["best_score"] >= 0.95 and result["visual"]["scores"][-1] == 1.0
    report = Path(result["visual"]["report"])
    assert report.is_file() and 'id="iteration-1"' in report.read_text()
    assert (root / "styles.css").read_text() == STYLES


async def test_fix_with_a_model_that_makes_it_worse_restores_and_exits_1(
    target_image: Image.Image, tmp_path: Path
) -> None:
    root = repo(tmp_path / "site")
    original = (root / "styles.css").read_text()
    target_image.save(tmp_path / "target.png")
    bad = [original + extra for extra in WORSE]
    script = write_script(
        tmp_path / "script.json",
        [
            turn
            for content in bad
            for turn in (
                {"tool_calls": [{"name": "write_file",
                                 "arguments": {"path": "styles.css", "content": content}}]},
                {"text": "Changed the styles."},
            )
        ],
    )  # fmt: skip
    done = kcode(
        root, "fix", str(tmp_path / "target.png"), "--entry", "index.html", "-p",
        "--backend", "scripted", script=script,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert (root / "styles.css").read_text() == original
    assert "report:" in done.stdout and "← kept" in done.stdout


async def test_visual_compare_json_and_bad_input(target_image: Image.Image, tmp_path: Path) -> None:
    root = write_defective(tmp_path / "site", DEFECTS[0])
    target_image.save(tmp_path / "target.png")
    done = kcode(root, "visual", "compare", str(tmp_path / "target.png"), "--entry", "index.html",
                 "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert 0 < metrics["score"] < 0.95 and metrics["size"]["render"] == [1280, 800]
    element = metrics["regions"][0]["elements"][0]
    assert element["selector"] == "#plan-pro > button.buy" and element["source"] == "styles.css:24"
    assert Path(metrics["heatmap"]).is_file()

    (tmp_path / "notes.png").write_text("not an image")
    bad_image = kcode(
        root, "visual", "compare", str(tmp_path / "notes.png"), "--entry", "index.html"
    )
    assert bad_image.returncode == 2 and "not a readable image" in bad_image.stderr
    remote = kcode(root, "visual", "compare", str(tmp_path / "target.png"), "--url",
                   "https://example.com/")  # fmt: skip
    assert remote.returncode == 2 and "loopback" in remote.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = kcode(empty, "fix", str(tmp_path / "target.png"), "-p", "--backend", "scripted")
    assert nothing.returncode == 2 and "no page to render" in nothing.stderr
    Image.new("RGB", (300, 2000), "white").save(tmp_path / "tall.png")
    tall = kcode(root, "visual", "compare", str(tmp_path / "tall.png"), "--image",
                 str(tmp_path / "target.png"))  # fmt: skip
    assert tall.returncode == 2 and "too different" in tall.stderr


async def test_fix_sends_only_the_latest_iterations_images(
    target_image: Image.Image, tmp_path: Path
) -> None:
    # A real OpenAI-compatible server over HTTP: what the model receives each turn.
    root = repo(tmp_path / "site")
    original = (root / "styles.css").read_text()
    target_image.save(tmp_path / "target.png")
    replies = [
        reply
        for extra in WORSE
        for reply in (
            Reply.tool_call("write_file", {"path": "styles.css", "content": original + extra}),
            Reply.text("Changed the styles."),
        )
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCODE_", "OPENAI_"))}
    env.update(HOME=str(root), KCODE_API_KEY="sk-test", KCODE_MODEL="fake-model")
    with FakeOpenAIServer(replies) as server:
        env["KCODE_BASE_URL"] = server.base_url
        done = subprocess.run(
            [*KCODE, "fix", str(tmp_path / "target.png"), "--entry", "index.html", "-p"],
            cwd=root, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        requests = [r.body for r in server.requests if r.body and "messages" in r.body]
    assert done.returncode == 1, done.stderr
    assert len(requests) == 4  # two iterations, a tool call and an answer each

    def images_per_user_message(body: dict[str, object]) -> list[int]:
        counts = []
        for message in body["messages"]:  # type: ignore[attr-defined]
            if message["role"] == "user":
                content = message["content"]
                parts = content if isinstance(content, list) else []
                counts.append(sum(p.get("type") == "image_url" for p in parts))
        return counts

    assert [images_per_user_message(body) for body in requests] == [
        [3], [3], [0, 3], [0, 3]
    ]  # fmt: skip
    first_turn_text = requests[2]["messages"][1]["content"]  # type: ignore[index]
    assert "images of this earlier iteration were dropped" in str(first_turn_text)
    assert (root / "styles.css").read_text() == original
