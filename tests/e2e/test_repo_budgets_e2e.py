"""A repository's `.kcode/config.toml` cannot lift a budget (issue #16, security): the real `kcode`
executable, a real git repo, the fake OpenAI server.

A repo that prices its model at 0, or raises `[limits]`, would otherwise turn off the cap the user
set; it may only lower one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.conftest import make_repo, run_kcode
from tests.fake_openai import FakeOpenAIServer, Reply

USER = (
    '[limits]\nmax_cost = 0.0015\n[prices."fake-model"]\ninput = 1.0\ncached_input = 0.1\n'
    "output = 2.0\n"
)
# Two writes of 600 prompt + 100 completion tokens: $0.0008 each at the user's prices.
SCRIPT = [
    Reply.tool_call("write_file", {"path": "a.txt", "content": "A\n"}, usage=(600, 100)),
    Reply.tool_call("write_file", {"path": "b.txt", "content": "B\n"}, usage=(600, 100)),
    Reply.text("done", usage=(600, 10)),
]


def _user_config(env: dict[str, str], text: str) -> None:
    path = Path(env["XDG_CONFIG_HOME"]) / "kcode" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _run(repo: Path, env: dict[str, str], *flags: str) -> tuple[int, dict[str, Any], str, int]:
    with FakeOpenAIServer(list(SCRIPT)) as srv:
        env["KCODE_BASE_URL"] = srv.base_url
        run = run_kcode(["-p", "write two files", "--output-format", "json", *flags], env, repo)
        sent = len(srv.requests)
    return run.code, json.loads(run.stdout.splitlines()[-1]), run.stderr, sent


def test_a_repo_cannot_price_its_model_at_zero_or_raise_the_cost_cap(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    _user_config(kcode_env, USER)
    repo_config = (
        '[limits]\nmax_cost = 100\nmax_tokens = 100000000\n[prices."fake-model"]\n'
        "input = 0\ncached_input = 0\noutput = 0\n"
    )
    repo = make_repo(tmp_path / "repo", {"README.md": "hi\n", ".kcode/config.toml": repo_config})
    code, result, stderr, sent = _run(repo, kcode_env)
    assert code == 5, stderr
    assert sent == 2  # stopped on the user's $0.0015, not the repo's $100 or its free model
    assert result["usage"]["cost"] > 0
    assert "ignored prices" in stderr and "ignored [limits] max_cost = 100" in stderr
    assert "ignored [limits] max_tokens" not in stderr  # a cap the user did not set: may be added


def test_a_repo_may_lower_the_cost_cap(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    _user_config(kcode_env, USER.replace("0.0015", "5.0"))
    repo = make_repo(
        tmp_path / "repo",
        {"README.md": "hi\n", ".kcode/config.toml": "[limits]\nmax_cost = 0.0015\n"},
    )
    code, result, stderr, sent = _run(repo, kcode_env)
    assert code == 5, stderr
    assert sent == 2 and "--max-cost" in str(result["result"])
    assert "ignored" not in stderr


def test_a_flag_is_the_users_own_choice_over_the_repo_cap(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    _user_config(kcode_env, USER.replace("0.0015", "5.0"))
    repo = make_repo(
        tmp_path / "repo",
        {"README.md": "hi\n", ".kcode/config.toml": "[limits]\nmax_cost = 0.0015\n"},
    )
    code, result, stderr, sent = _run(repo, kcode_env, "--max-cost", "1")
    assert result["exit_code"] == 0
    assert code == 0, stderr
    assert sent == 3 and (repo / "b.txt").read_text() == "B\n"
