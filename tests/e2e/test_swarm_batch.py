"""`kcode -p` end to end for issue #16's swarm items: a prompt_template/items fan-out answered in item
order, and read-only shell calls of one reply running side by side (the installed executable, a
real git repo, the fake OpenAI server)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import make_repo, run_kcode
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply

MAIN = "survey the modules"
ITEMS = ["gamma.py", "alpha.py", "beta.py"]


def test_a_batch_fan_out_reports_its_agents_in_item_order(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {name: f"# {name}\n" for name in ITEMS})
    batch = {"prompt_template": "Describe {{item}} in one line.", "items": ITEMS, "role": "search"}
    scripts = {
        MAIN: [Reply.tool_call("spawn_agents", batch), Reply.text("surveyed")],
        # the first item answers last
        "Describe gamma.py": [
            Reply.text("RESULT: ok\nFINDINGS:\n- gamma\nNOTES: none", delay_s=0.3)
        ],
        "Describe alpha.py": [Reply.text("RESULT: ok\nFINDINGS:\n- alpha\nNOTES: none")],
        "Describe beta.py": [Reply.text("RESULT: ok\nFINDINGS:\n- beta\nNOTES: none")],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", MAIN, "--output-format", "stream-json"], kcode_env, repo)
    assert run.code == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    spawn = next(
        line
        for line in lines
        if line["type"] == "tool_call_finished" and line["name"] == "spawn_agents"
    )
    agents = spawn["data"]["agents"]
    assert [a["report"].split("- ")[1].split()[0] for a in agents] == ["gamma", "alpha", "beta"]
    assert all(a["ok"] for a in agents)


def test_read_only_shell_calls_of_one_reply_overlap(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"notes.txt": "needle\n"})
    command = "date +%s%N; sleep 0.5; grep -c needle notes.txt; date +%s%N"
    reply = Reply.multi_call(*[("shell", {"command": command}) for _ in range(4)])
    with FakeOpenAIServer([reply, Reply.text("done")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(
            ["-p", "grep", "--output-format", "stream-json", "--approval", "auto"], kcode_env, repo
        )
    assert run.code == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    spans = []
    for line in lines:
        if line["type"] == "tool_call_finished" and line["name"] == "shell":
            stamps = [int(x) for x in line["content"].split() if x.isdigit() and len(x) > 12]
            spans.append((stamps[0], stamps[1]))
    assert len(spans) == 4
    # every pair overlaps: each started before any other had ended
    assert max(s for s, _ in spans) < min(e for _, e in spans)
