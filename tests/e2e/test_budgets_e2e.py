"""Issue #16 end to end: the real `kcode` executable, a real git repo, the fake OpenAI server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import make_repo, run_kcode
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply

PRICES = '[prices."fake-model"]\ninput = 1.0\ncached_input = 0.1\noutput = 2.0\n'


def _prices(env: dict[str, str]) -> None:
    path = Path(env["XDG_CONFIG_HOME"]) / "kcode" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PRICES)


def test_a_run_over_max_cost_exits_5_and_keeps_its_work(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hi\n"})
    _prices(kcode_env)
    script = [
        Reply.tool_call("write_file", {"path": "a.txt", "content": "A\n"}, usage=(600, 100)),
        # Its usage takes the run over $0.0015; the reply is complete and paid for, so its call runs.
        Reply.tool_call("write_file", {"path": "b.txt", "content": "B\n"}, usage=(600, 100)),
        Reply.text("never asked for"),
    ]
    with FakeOpenAIServer(script) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(
            ["-p", "write two files", "--max-cost", "0.0015", "--output-format", "json"],
            kcode_env,
            repo,
        )
        sent = len(srv.requests)
    assert run.code == 5, run.stderr
    result = json.loads(run.stdout)
    assert result["exit_code"] == 5 and "--max-cost" in result["result"]
    assert sent == 2
    assert (repo / "a.txt").read_text() == "A\n" and (repo / "b.txt").read_text() == "B\n"
    assert result["usage"]["cost"] == pytest.approx(0.0016)
    assert sorted(result["files_changed"]) == ["a.txt", "b.txt"]
    assert "80%" in run.stderr or "budget used" in run.stderr  # the warning, on stderr
    shown = run_kcode(["sessions", "show", result["session_id"]], kcode_env, repo)
    assert shown.code == 0 and "write two files" in shown.stdout  # the session was saved


def test_cost_and_cached_tokens_per_agent_in_json_and_stream_json(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "A = 1\n"})
    _prices(kcode_env)
    report = "RESULT: ok\nFINDINGS:\n- a.py:1 A\nNOTES: none"
    scripts = {
        "find A": [
            Reply.tool_call(
                "spawn_agents",
                {"tasks": [{"role": "search", "prompt": "task S: where is A"}]},
                usage=(1_000, 50),
            ),
            Reply.text("A is in a.py", usage=(2_000, 40), cached_tokens=1_000, reasoning_tokens=7),
        ],
        "task S": [Reply.text(report, usage=(500, 100), cached_tokens=400)],
    }
    for fmt in ("json", "stream-json"):
        with FakeOpenAIServer(ByConversation(scripts)) as srv:
            kcode_env["KCODE_BASE_URL"] = srv.base_url
            run = run_kcode(["-p", "find A", "--output-format", fmt], kcode_env, repo)
        assert run.code == 0, run.stderr
        lines = [json.loads(line) for line in run.stdout.splitlines()]
        result = lines[-1]
        main, sub = result["agents"]
        assert (main["cached_tokens"], main["reasoning_tokens"]) == (1_000, 7)
        assert main["cost"] == pytest.approx(2_280e-6)
        assert sub["agent"] == "search-1" and sub["cached_tokens"] == 400
        assert sub["cost"] == pytest.approx(340e-6)
        assert result["usage"]["cost"] == pytest.approx(2_620e-6)
        assert result["usage"]["cache_hit_rate"] == pytest.approx(0.4)
        if fmt == "stream-json":
            usage = [line for line in lines if line["type"] == "usage"]
            by_agent = {line["agent"]: line for line in usage if line["cached_tokens"]}
            assert by_agent["search-1"]["cost"] == pytest.approx(340e-6)
            assert by_agent["main"]["reasoning_tokens"] == 7


@pytest.mark.parametrize(
    "flags, word",
    [
        (["--max-tokens", "-5"], "--max-tokens"),
        (["--max-tokens", "lots"], "--max-tokens"),
        (["--max-cost", "abc"], "--max-cost"),
        (["--max-cost", "-1"], "--max-cost"),
        (["--effort", "max"], "--effort"),
    ],
)
def test_bad_budget_flags_exit_2_with_one_line(
    tmp_path: Path, kcode_env: dict[str, str], flags: list[str], word: str
) -> None:
    run = run_kcode(["-p", "hi", *flags], kcode_env, tmp_path)
    assert run.code == 2
    assert len(run.stderr.strip().splitlines()) == 1 and word in run.stderr


def test_max_cost_for_a_model_without_a_price_exits_2(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    with FakeOpenAIServer([Reply.text("hi")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "hi", "--max-cost", "1"], kcode_env, tmp_path)
        sent = len(srv.requests)
    assert run.code == 2 and '[prices."fake-model"]' in run.stderr and sent == 0


def test_a_price_entry_that_does_not_parse_exits_2(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    path = Path(kcode_env["XDG_CONFIG_HOME"]) / "kcode" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[prices."fake-model"]\ninput = "cheap"\noutput = 1\n')
    run = run_kcode(["-p", "hi"], kcode_env, tmp_path)
    assert run.code == 2 and "not a number" in run.stderr


def test_a_bad_limits_table_in_the_config_exits_2_and_sends_nothing(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    path = Path(kcode_env["XDG_CONFIG_HOME"]) / "kcode" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[limits]\nmax_tokens = -5\n")
    with FakeOpenAIServer([Reply.text("hi")]) as srv:
        kcode_env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "hi"], kcode_env, tmp_path)
        sent = len(srv.requests)
    assert run.code == 2 and sent == 0
    assert len(run.stderr.strip().splitlines()) == 1 and "max_tokens" in run.stderr
