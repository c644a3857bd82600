"""`kcode -p` end to end: the installed executable, a real git repo, the fake OpenAI server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from kcode.events import SCHEMA_VERSION
from tests.e2e.conftest import kcode_exe, make_repo, run_kcode
from tests.fake_openai import FakeOpenAIServer, Reply
from tests.waiting import wait_until

CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
JSON_FIELDS = {
    "result", "exit_code", "session_id", "files_changed", "tests", "usage", "duration_s",
    "steps", "critical_steps", "agents",
}  # fmt: skip


def fixing_script() -> list[Reply]:
    return [
        Reply.tool_call("grep", {"pattern": "def add"}),
        Reply.tool_call("read_file", {"path": "calc.py"}),
        Reply.tool_call(
            "edit_file",
            {"path": "calc.py", "edits": [{"old_string": "a - b", "new_string": "a + b"}]},
        ),
        Reply.tool_call("run_tests", {}),
        Reply.text("Fixed add() in calc.py:2; the test passes."),
    ]


def test_fixes_a_failing_test_and_reports_json(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC, "test_calc.py": TEST_CALC})
    with FakeOpenAIServer(fixing_script()) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(
            ["-p", "make the failing test pass", "--output-format", "json"], kcode_env, repo
        )
        requests = srv.requests
    assert run.code == 0, run.stderr
    out = json.loads(run.stdout)
    assert JSON_FIELDS <= set(out)
    assert out["exit_code"] == 0
    assert out["files_changed"] == ["calc.py"]
    assert out["tests"]["passed"] == 1 and out["tests"]["failed"] == 0
    assert out["steps"] == 5 and out["critical_steps"] == 5
    assert out["usage"]["requests"] == 5
    assert "calc.py" in out["result"]
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    check = subprocess.run(
        ["python", "-m", "pytest", "-q"], cwd=repo, env=kcode_env, capture_output=True
    )
    assert check.returncode == 0
    # the model saw every tool result: each request after the first carries one more tool message
    tool_msgs = [sum(m["role"] == "tool" for m in r.body["messages"]) for r in requests]
    assert tool_msgs == [0, 1, 2, 3, 4]
    # the session log exists and is valid JSON lines, without the API key
    log = Path(kcode_env["XDG_DATA_HOME"]) / "kcode" / "sessions" / f"{out['session_id']}.jsonl"
    text = log.read_text()
    assert all(json.loads(line) for line in text.splitlines())
    assert "sk-test-key" not in text


def test_stream_json_lines_parse_and_are_in_order(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC, "test_calc.py": TEST_CALC})
    with FakeOpenAIServer(fixing_script()) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "fix it", "--output-format", "stream-json"], kcode_env, repo)
    assert run.code == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert all({"type", "agent", "ts"} <= set(line) for line in lines)
    types = [line["type"] for line in lines]
    assert types[0] == "session_started" and lines[0]["schema_version"] == SCHEMA_VERSION == 2
    assert types[1] == "turn_started"
    assert types[-2:] == ["turn_finished", "result"]
    assert types.count("tool_call_started") == types.count("tool_call_finished") == 4
    # Issue #12: a consumer pairs each approval with the call that asked for it.
    calls = {line["call_id"]: line["name"] for line in lines if line["type"] == "tool_call_started"}
    approvals = [line for line in lines if line["type"].startswith("approval_")]
    assert approvals and all(calls.get(a["call_id"]) == a["tool"] for a in approvals)
    stamps = [line["ts"] for line in lines]
    assert stamps == sorted(stamps)
    assert JSON_FIELDS <= set(lines[-1])


def test_text_output_is_just_the_answer(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    with FakeOpenAIServer([Reply.text("OK")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "Say OK"], kcode_env, tmp_path)
    assert (run.code, run.stdout) == (0, "OK\n")


# ---- every exit code of SPEC §3 -------------------------------------------------------------


def test_exit_1_when_the_agent_reports_failure(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    with FakeOpenAIServer([Reply.text("FAILED: the bug is in a binary blob")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "fix it", "--output-format", "json"], kcode_env, tmp_path)
    assert run.code == 1 and json.loads(run.stdout)["exit_code"] == 1


def test_exit_1_when_tests_stay_red(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC, "test_calc.py": TEST_CALC})
    script = [Reply.tool_call("run_tests", {}), Reply.text("I ran the tests.")]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "fix it", "--output-format", "json"], kcode_env, repo)
    out = json.loads(run.stdout)
    assert run.code == 1 and out["tests"]["failed"] == 1


def test_exit_2_for_usage_and_configuration_errors(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    bad_flag = run_kcode(["--no-such-flag"], kcode_env, tmp_path)
    assert bad_flag.code == 2 and "no-such-flag" in bad_flag.stderr
    no_prompt = run_kcode(["-p"], kcode_env, tmp_path)
    assert no_prompt.code == 2 and "PROMPT" in no_prompt.stderr
    bad_image = run_kcode(["-p", "look", "-i", "missing.png"], kcode_env, tmp_path)
    assert bad_image.code == 2 and "missing.png" in bad_image.stderr
    env = {k: v for k, v in kcode_env.items() if k not in ("KCODE_API_KEY", "KCODE_MODEL")}
    no_model = run_kcode(["-p", "hello"], env, tmp_path)
    assert no_model.code == 2
    assert "MOONSHOT_API_KEY" in no_model.stderr and "OPENAI_API_KEY" in no_model.stderr
    bad_value = run_kcode(["-p", "x", "--approval", "yolo"], kcode_env, tmp_path)
    assert bad_value.code == 2 and "approval" in bad_value.stderr


def test_exit_3_when_the_backend_is_unreachable(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    kcode_env["KCODE_BASE_URL"] = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    run = run_kcode(["-p", "hello", "--output-format", "json"], kcode_env, tmp_path, timeout=120)
    assert run.code == 3
    assert "127.0.0.1:9" in run.stderr
    assert json.loads(run.stdout)["exit_code"] == 3


def test_exit_3_on_auth_failure_without_leaking_the_key(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    with FakeOpenAIServer([Reply.fault(401)]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "hello"], kcode_env, tmp_path)
    assert run.code == 3
    assert "sk-test-key" not in run.stderr + run.stdout


def test_exit_4_names_the_flag_that_would_allow_the_action(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    script = [Reply.tool_call("shell", {"command": "touch made-by-shell"}), Reply.text("done")]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "run it", "--output-format", "json"], kcode_env, tmp_path)
    assert run.code == 4
    assert "--approval auto" in run.stderr
    assert not (tmp_path / "made-by-shell").exists()
    read_only = [Reply.tool_call("write_file", {"path": "x.txt", "content": "x"}), Reply.text("")]
    with FakeOpenAIServer(read_only) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "write", "--approval", "read-only"], kcode_env, tmp_path)
    assert run.code == 4 and "--approval auto-edit" in run.stderr
    assert not (tmp_path / "x.txt").exists()


def test_exit_5_when_max_steps_is_hit(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    script = [Reply.tool_call("read_file", {"path": "a.txt"})] * 3
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "loop", "--max-steps", "2"], kcode_env, tmp_path)
    assert run.code == 5 and "--max-steps" in run.stderr


def test_exit_130_on_ctrl_c_and_the_session_resumes(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    with FakeOpenAIServer([Reply.text("slow answer", delay_s=30)]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        proc = subprocess.Popen(
            [kcode_exe(), "-p", "take your time", "--output-format", "json"],
            env=kcode_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: bool(srv.requests), "the request to reach the server")
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    out = json.loads(stdout)
    assert out["exit_code"] == 130 and out["session_id"]
    with FakeOpenAIServer([Reply.text("resumed fine")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "go on", "-c"], kcode_env, tmp_path)
        sent = srv.requests[0].body["messages"]
    assert run.code == 0 and run.stdout == "resumed fine\n"
    assert [m["content"] for m in sent if m["role"] == "user"][0] == "take your time"
