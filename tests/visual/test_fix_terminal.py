"""`kcode fix target.png --entry index.html` exactly as the README shows it, in a terminal (issue #14
item 2): no -p, the model's flags after `fix`; the first edit must not need an approval nobody gives."""

from __future__ import annotations

import os
from pathlib import Path

import pexpect
import pytest
from PIL import Image

from tests.e2e.conftest import kcode_exe
from tests.fake_openai import FakeOpenAIServer, Reply
from tests.visual.pages import STYLES
from tests.visual.test_cli import repo

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


async def test_readme_fix_in_a_terminal_edits_and_exits_0(
    target_image: Image.Image, tmp_path: Path
) -> None:
    root = repo(tmp_path / "site")
    target_image.save(tmp_path / "target.png")
    replies = [
        Reply.tool_call("write_file", {"path": "styles.css", "content": STYLES}),
        Reply.text("Restored the Pro button colour."),
    ]
    env = {
        "PATH": str(Path(kcode_exe()).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "KCODE_API_KEY": "sk-test",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    with FakeOpenAIServer(replies) as srv:
        args = ["fix", str(tmp_path / "target.png"), "--entry", "index.html",
                "--base-url", srv.base_url, "--model", "fake-model"]  # fmt: skip
        child = pexpect.spawn(kcode_exe(), args, env=env, cwd=str(root), dimensions=(40, 120),
                              encoding="utf-8", timeout=150)  # fmt: skip
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0, child.before
    assert (root / "styles.css").read_text() == STYLES
