"""`kcode -p` end to end against a server that leaves Hermes tool-call markup in `content`
(as llama.cpp's server does without --jinja): the call runs and the markup is never shown."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import make_repo, run_kcode
from tests.fake_openai import FakeOpenAIServer, Reply

CALC = "def add(a, b):\n    return a - b\n"
EDIT = {
    "name": "edit_file",
    "arguments": {"path": "calc.py", "edits": [{"old_string": "a - b", "new_string": "a + b"}]},
}
MARKUP = f"I'll fix the sign.\n<tool_call>\n{json.dumps(EDIT)}\n</tool_call>"


def script() -> list[Reply]:
    pieces = [MARKUP[i : i + 5] for i in range(0, len(MARKUP), 5)]  # markers split mid-way
    return [Reply.pieces(*pieces), Reply.text("Fixed add() in calc.py.")]


def test_hermes_markup_in_content_runs_the_tool(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC})
    with FakeOpenAIServer(script()) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "fix add", "--output-format", "json"], kcode_env, repo)
        requests = srv.requests
    assert run.code == 0, run.stderr
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    out = json.loads(run.stdout)
    assert out["files_changed"] == ["calc.py"]
    assert "<tool_call>" not in run.stdout and "<tool_call>" not in run.stderr
    # The history sent back holds a real tool call and its result, not the markup as text.
    messages = requests[1].body["messages"]
    assistant = next(m for m in messages if m["role"] == "assistant")
    assert "<tool_call>" not in json.dumps(assistant)
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["edit_file"]
    tool = next(m for m in messages if m["role"] == "tool")
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    log = Path(kcode_env["XDG_DATA_HOME"]) / "kcode" / "sessions" / f"{out['session_id']}.jsonl"
    assert "<tool_call>" not in log.read_text()


def test_tool_format_none_shows_the_markup_and_runs_nothing(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC})
    config = Path(kcode_env["XDG_CONFIG_HOME"]) / "kcode" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('tool_format = "none"\n')
    with FakeOpenAIServer(script()) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "fix add"], kcode_env, repo)
        requests = srv.requests
    assert run.code == 0, run.stderr
    assert "<tool_call>" in run.stdout  # what the server sent, verbatim
    assert (repo / "calc.py").read_text() == CALC
    assert len(requests) == 1
