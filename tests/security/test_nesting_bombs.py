"""Input nested thousands of levels deep (`[[[[…`) is refused with a message, never a crash: the real
binary, with a hostile model and a hostile repository.

Python's JSON, TOML and YAML parsers recurse once per level; before kcode.safety.json_input, one
tool call whose arguments were 200,000 `[` (or valid JSON 900 levels deep, which parsed and then
crashed the event printer) ended the run with "internal error", and so did such a file in a
repository.
"""

from __future__ import annotations

import json

import pytest

from tests.security.conftest import Victim

DEEP_TEXT = "[" * 200_000
DEEP_VALID = '{"path": ' + "[" * 900 + "]" * 900 + "}"


def assert_no_crash(attack: object) -> None:
    stderr = getattr(attack, "stderr", "")
    assert "internal error" not in stderr and "RecursionError" not in stderr, stderr


@pytest.mark.parametrize("arguments", [DEEP_TEXT, DEEP_VALID], ids=["unparseable", "900-deep"])
def test_deeply_nested_tool_arguments_are_an_error_the_model_reads(
    victim: Victim, arguments: str
) -> None:
    turns = [
        {"tool_calls": [{"name": "read_file", "arguments": arguments}]},
        {"text": "done"},
    ]
    attack = victim.run(turns, "--output-format", "stream-json")
    assert_no_crash(attack)
    assert attack.code == 0, attack.stderr
    results = [
        event
        for event in map(json.loads, attack.stdout.splitlines())
        if event.get("type") == "tool_call_finished"
    ]
    assert len(results) == 1 and not results[0]["ok"]
    assert "not valid JSON" in results[0]["content"]


def test_a_deeply_nested_repository_config_is_a_config_error(victim: Victim) -> None:
    """As for any unreadable config.toml: exit 2 with the file named, nothing run."""
    victim.write(".kcode/config.toml", "max_steps = " + "[" * 100_000 + "\n")
    victim.commit()
    attack = victim.run([{"text": "done"}])
    assert_no_crash(attack)
    assert attack.code == 2 and "config.toml: nested too deeply" in attack.stderr


def test_deeply_nested_repository_files_are_reported_and_skipped(victim: Victim) -> None:
    """Every other file kcode reads from a (trusted) repository: MCP servers, hooks, skills,
    agents, package.json (run_tests)."""
    victim.write(".mcp.json", DEEP_TEXT)
    victim.write(".claude/settings.json", DEEP_TEXT)
    victim.write(".claude/skills/deep/SKILL.md", "---\nname: " + "[" * 100_000 + "\n---\nbody\n")
    victim.write(".claude/agents/deep.md", "---\nname: " + "{a: " * 5_000 + "\n---\nbody\n")
    victim.write("package.json", DEEP_TEXT)
    victim.commit()
    turns = [
        {"tool_calls": [{"name": "run_tests", "arguments": {}}]},
        {"text": "done"},
    ]
    attack = victim.run(turns, "--trust-project", timeout=120)
    assert_no_crash(attack)
    assert attack.code == 0, attack.stderr
    for name in (".mcp.json", "settings.json", "SKILL.md", "deep.md"):
        assert name in attack.stderr, (name, attack.stderr)


def test_mcp_add_beside_a_deeply_nested_project_file(victim: Victim) -> None:
    """`kcode mcp add` reads the project's MCP file to refuse clashing names: a bomb there is a
    file it cannot read, not a crash."""
    victim.write(".mcp.json", DEEP_TEXT)
    import subprocess

    from tests.e2e.conftest import kcode_exe

    proc = subprocess.run(
        [*victim.prefix, kcode_exe(), "mcp", "add", "ghost", "--", "true"],
        env=victim.env,
        cwd=victim.repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_no_crash(proc)
    assert proc.returncode == 0, proc.stderr
