"""Issue #14 items 6, 7, 9 and the smaller ones, through the real `kcode` executable."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kcode.backends.openai.discovery import discover_model
from tests.e2e.conftest import make_repo, run_kcode
from tests.fake_openai import FakeOpenAIServer, Reply

pytestmark = pytest.mark.slow


def test_a_bad_flag_names_the_command_as_typed(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    run = run_kcode(["--no-such-flag"], kcode_env, tmp_path)
    assert run.code == 2 and run.stderr.count("\n") == 1  # one line (issue #12)
    assert "kcode chat" not in run.stderr and "`kcode --help`" in run.stderr
    fix = run_kcode(["fix"], kcode_env, tmp_path)
    assert fix.code == 2 and "kcode fix [OPTIONS] IMAGE" in fix.stderr


def test_errors_honour_json_output(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    run = run_kcode(["-p", "x", "--output-format", "json", "--no-such-flag"], kcode_env, tmp_path)
    assert run.code == 2
    result = json.loads(run.stdout)
    assert result["exit_code"] == 2 and "no-such-flag" in result["error"]
    stream = run_kcode(["-p", "x", "--output-format=stream-json", "--approval", "yolo"],
                       kcode_env, tmp_path)  # fmt: skip
    line = json.loads(stream.stdout.strip().splitlines()[-1])
    assert stream.code == 2 and line["type"] == "result" and line["exit_code"] == 2


def test_config_show_has_no_python_reprs(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    run = run_kcode(["config", "show", "--base-url", "http://127.0.0.1:9/v1"], kcode_env, tmp_path)
    assert run.code == 0
    assert "[]" not in run.stdout and "{" not in run.stdout and "None" not in run.stdout
    assert "True" not in run.stdout and "False" not in run.stdout
    assert "strict_tools" in run.stdout and "false" in run.stdout


def test_doctor_gives_the_key_hint_when_nothing_is_configured(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    env = {k: v for k, v in kcode_env.items() if k not in ("KCODE_API_KEY", "KCODE_MODEL")}
    run = run_kcode(["doctor"], env, tmp_path)
    words = " ".join(run.stdout.split())
    assert "llama-cpp backend without" not in words
    assert "MOONSHOT_API_KEY=" in words or "local default" in words


def test_only_a_base_url_asks_the_server_for_its_model(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    kcode_env.pop("KCODE_MODEL")
    with FakeOpenAIServer([Reply.text("done")], models=["served-1", "served-2"]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "hi", "--output-format", "stream-json"], kcode_env, tmp_path)
        assert run.code == 0, run.stderr
        assert [r.body["model"] for r in srv.requests] == ["served-1"]
        first = json.loads(run.stdout.splitlines()[0])
        assert first["type"] == "session_started" and first.get("model") == "served-1"
        doctor = run_kcode(["doctor"], kcode_env, tmp_path)
        words = " ".join(doctor.stdout.split())  # doctor wraps its lines at words
        assert "using served-1, the first of the 2 models" in words


def test_discovery_is_bounded_and_says_nothing_without_a_listing() -> None:
    started = time.monotonic()
    assert discover_model("http://127.0.0.1:9/v1", timeout_s=1.0) is None  # nothing listens
    assert time.monotonic() - started < 30  # bounded (a hang, not a speed, is what fails)
    with FakeOpenAIServer(models=[]) as srv:
        assert discover_model(srv.base_url) is None
    with FakeOpenAIServer(models=["only-one"]) as srv:
        found = discover_model(srv.base_url)
        assert found is not None and found.model == "only-one" and found.listed == 1


def test_a_refused_loopback_connection_fails_after_one_retry(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    kcode_env["KCODE_BASE_URL"] = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    run = run_kcode(["-p", "hello", "--output-format", "stream-json"], kcode_env, tmp_path)
    assert run.code == 3
    retries = [json.loads(line) for line in run.stdout.splitlines() if '"retrying"' in line]
    assert len(retries) <= 1


def test_an_empty_launch_leaves_no_session_and_undo_says_one_thing(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    with FakeOpenAIServer([Reply.text("hi")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        from tests.e2e.screen import Terminal

        term = Terminal([], kcode_env, repo)
        term.wait_for("›")
        term.pump(0.5)  # let the background set-up create what it creates
        assert term.close() == 0
    listed = run_kcode(["sessions", "list"], kcode_env, repo)
    assert "no sessions yet" in listed.stdout
    with FakeOpenAIServer([Reply.text("nothing changed")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        assert run_kcode(["-p", "say hi"], kcode_env, repo).code == 0
    undo = run_kcode(["undo"], kcode_env, repo)
    assert undo.stdout.strip().count("\n") == 0, undo.stdout  # one line, not two contradicting


def test_json_agents_time_and_the_approval_wording(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    with FakeOpenAIServer([Reply.text("done", delay_s=0.3)]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "hi", "--output-format", "json"], kcode_env, tmp_path)
    result = json.loads(run.stdout)
    assert result["agents"][0]["duration_s"] >= 0.3  # was 0.0: counted after the result was built
    with FakeOpenAIServer([Reply.tool_call("shell", {"command": "echo hi"})]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        denied = run_kcode(["-p", "run it"], kcode_env, tmp_path)
    assert denied.code == 4
    assert "needs approval to run a command: echo hi" in denied.stderr
