"""Keys typed before prompt_toolkit is ready are kept: the instant prompt of plain `kcode`."""

from __future__ import annotations

from pathlib import Path

import pexpect
import pytest

from tests.e2e.conftest import kcode_exe
from tests.fake_openai import FakeOpenAIServer, Reply

pytestmark = pytest.mark.slow


def test_text_typed_at_launch_reaches_the_model(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    with FakeOpenAIServer([Reply.text("Got your early words.")]) as srv:
        env = {**kcode_env, "KCODE_BASE_URL": srv.base_url, "PROMPT_TOOLKIT_NO_CPR": "1"}
        child = pexpect.spawn(
            kcode_exe(), [], env=env, cwd=str(tmp_path), dimensions=(40, 120),
            encoding="utf-8", timeout=30,
        )  # fmt: skip
        child.send("typed early\x7fY")  # sent at once, before any prompt is drawn
        child.expect("›")
        child.send(" and late\r")
        child.expect("Got your early words.")
        child.expect("›")  # the next prompt
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
        users = [m["content"] for m in srv.requests[0].body["messages"] if m["role"] == "user"]
    assert users[-1] == "typed earlY and late"
