"""Approval rules: deny beats ask beats allow, compound commands split, repo config cannot loosen."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kcode.config.loader import ConfigError, load_config
from kcode.safety.approval import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalRequired,
    InteractiveApprover,
    NonInteractiveApprover,
)
from kcode.safety.rules import RuleSet, split_command

RULES = RuleSet.parse(
    {
        "allow": ["shell(git diff*)", "shell(ls*)", "shell(echo *)", "edit(src/**)", "shell(rm *)"],
        "ask": ["shell(curl*)", "edit(src/secret/**)"],
        "deny": ["shell(rm -rf*)", "edit(*.lock)", "read(.env)"],
    }
)


def shell(command: str) -> ApprovalRequest:
    return ApprovalRequest(action="shell", tool="shell", summary=command)


def edit(path: str) -> ApprovalRequest:
    return ApprovalRequest(action="edit", tool="edit_file", summary=f"edit {path}")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (shell("git diff HEAD"), "allow"),
        (shell("git diff && ls -la | echo ok"), "allow"),
        (shell("rm -rf build"), "deny"),  # deny wins over the broader allow rm *
        (shell("git diff; rm -rf /"), "deny"),
        (shell("git diff || rm -rf /"), "deny"),
        (shell("ls | rm -rf /"), "deny"),
        (shell("echo $(rm -rf /)"), "deny"),
        (shell("echo `rm -rf /`"), "deny"),
        (shell("(cd x && rm -rf /)"), "deny"),
        (shell("bash -c 'ls; rm -rf ~'"), "deny"),
        (shell("sudo rm -rf /"), "deny"),
        (shell("git diff > src/out.txt"), "allow"),
        (shell("git diff > Cargo.lock"), "deny"),  # a redirect is checked as an edit
        (shell("ls && curl http://x"), "ask"),
        (shell("curl x; rm -rf y"), "deny"),  # deny beats ask
        (shell("git status"), "ask"),  # no rule: the mode (ask) decides
        (shell('eval "$X"'), "ask"),  # cannot be checked part by part
        (shell("echo 'unterminated"), "ask"),
        (edit("src/app.py"), "allow"),
        (edit("src/secret/k.py"), "ask"),
        (edit("poetry.lock"), "deny"),
        (edit("README.md"), "ask"),
    ],
)
async def test_interactive_matrix(request_: ApprovalRequest, expected: str) -> None:
    asked: list[ApprovalRequest] = []

    async def ask(request: ApprovalRequest) -> ApprovalDecision:
        asked.append(request)
        return ApprovalDecision(True, "human said yes")

    decision = await InteractiveApprover("ask", ask, rules=RULES).decide(request_)
    if expected == "allow":
        assert decision.allowed and not asked
    elif expected == "deny":
        assert not decision.allowed and not asked and "deny rule" in decision.reason
    else:
        assert decision.allowed and asked == [request_]


async def test_non_interactive_deny_answers_the_model_and_ask_stops_with_exit_4() -> None:
    approver = NonInteractiveApprover("auto", rules=RULES)
    assert (await approver.decide(shell("ls"))).allowed
    denied = await approver.decide(shell("ls; rm -rf /"))
    assert not denied.allowed and "rm -rf /" in denied.reason
    with pytest.raises(ApprovalRequired, match="curl"):
        await approver.decide(shell("ls && curl x"))
    with pytest.raises(ApprovalRequired):  # unparseable is asked → exit 4 in CI
        await approver.decide(shell('echo "$(ls'))


async def test_chains_of_many_subcommands_are_checked_one_by_one() -> None:
    rng = random.Random(7)
    approver = NonInteractiveApprover("auto", rules=RULES)
    operators = [" && ", " || ", "; ", " | ", " & "]
    for _ in range(20):
        parts = [rng.choice(["ls -l", "git diff", "echo hi", "echo $(ls)"]) for _ in range(60)]
        command = "".join(p + rng.choice(operators) for p in parts[:-1]) + parts[-1]
        assert len(split_command(command)[0]) >= 60
        assert (await approver.decide(shell(command))).allowed
        bad = rng.randrange(60)
        parts[bad] = rng.choice(["rm -rf /", "(rm -rf ~)", "echo `rm -rf x`"])
        command = "".join(p + rng.choice(operators) for p in parts[:-1]) + parts[-1]
        assert not (await approver.decide(shell(command))).allowed, command


async def test_read_only_mode_is_not_loosened_by_allow_rules() -> None:
    decision = await InteractiveApprover("read-only", _never, rules=RULES).decide(shell("ls"))
    assert not decision.allowed


async def _never(request: ApprovalRequest) -> ApprovalDecision:
    raise AssertionError("must not ask")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_repo_config_adds_deny_rules_but_cannot_allow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    _write(tmp_path / "cfg" / "kcode" / "config.toml", '[rules]\nallow = ["shell(make*)"]\n')
    repo = tmp_path / "repo"
    _write(
        repo / ".kcode" / "config.toml",
        '[rules]\nallow = ["shell(*)"]\ndeny = ["shell(make deploy*)"]\n'
        "allow_secrets = true\n".replace("allow_secrets = true\n", ""),
    )
    config = load_config(repo, {}, env={})
    assert config.rules.allow == ["shell(make*)"]
    assert config.rules.deny == ["shell(make deploy*)"]
    assert any("allow rules" in w for w in config.warnings)
    # Once the user trusts the repository, its allow rules count (its deny rules always do).
    _write(
        tmp_path / "cfg" / "kcode" / "config.toml",
        f'trusted = ["{repo}"]\n[rules]\nallow = ["shell(make*)"]\n',
    )
    assert load_config(repo, {}, env={}).rules.allow == ["shell(make*)", "shell(*)"]


def test_repo_config_cannot_turn_on_secrets_or_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    repo = tmp_path / "repo"
    _write(repo / ".kcode" / "config.toml", "allow_secrets = true\nallow_network = true\n")
    config = load_config(repo, {}, env={})
    assert not config.allow_secrets and not config.allow_network
    assert len(config.warnings) == 2


def test_a_rule_that_does_not_parse_names_the_file_and_the_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    path = tmp_path / "cfg" / "kcode" / "config.toml"
    _write(path, '[rules]\ndeny = ["shel(rm*)"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path, {}, env={})
    assert str(path) in str(err.value) and "shel(rm*)" in str(err.value)


def test_a_changed_runner_config_makes_the_test_run_untrusted(tmp_path: Path) -> None:
    import subprocess

    from kcode.tools.run_tests import changed_runner_configs

    assert changed_runner_configs(tmp_path) is None  # not a git repo: cannot tell, so not trusted
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    _write(tmp_path / "tests" / "test_a.py", "def test_a(): pass\n")
    assert changed_runner_configs(tmp_path) == []  # test files alone do not void trust
    _write(tmp_path / "tests" / "conftest.py", "import os\n")
    _write(tmp_path / "package.json", "{}\n")
    assert sorted(changed_runner_configs(tmp_path) or []) == ["package.json", "tests/conftest.py"]
