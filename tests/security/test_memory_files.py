"""Memory files (AGENTS.md, KIMI.md, CLAUDE.md) a hostile repo commits never pull outside files,
FIFOs or huge files into the system prompt (issue #11 class 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kcode.agents.prompts import memory_warnings, project_memory
from kcode.config.loader import load_config
from tests.security.conftest import SSH_KEY, Victim


def test_a_symlink_to_the_ssh_key_is_not_read(
    victim: Victim, capsys: pytest.CaptureFixture[str]
) -> None:
    (victim.repo / "AGENTS.md").symlink_to(victim.home / ".ssh" / "id_rsa")
    (victim.repo / "CLAUDE.md").write_text("use tabs\n")
    memory = project_memory(victim.repo)
    assert "victim-ssh-key-material" not in memory and "use tabs" in memory
    # The core never prints: the reason travels in the config's warnings (shown by the front end).
    assert capsys.readouterr() == ("", "")
    (warning,) = memory_warnings(victim.repo)
    assert "AGENTS.md" in warning and "outside the workspace" in warning
    assert warning in load_config(victim.repo, env={}).warnings


def test_fifo_and_huge_files_are_skipped(
    victim: Victim, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(victim.repo / "AGENTS.md")
    (victim.repo / "KIMI.md").write_bytes(b"x" * (2 * 1024 * 1024))
    assert project_memory(victim.repo) == ""  # and it did not block on the FIFO
    assert capsys.readouterr() == ("", "")
    warnings = " ".join(memory_warnings(victim.repo))
    assert "not a regular file" in warnings and "byte limit" in warnings


def test_a_symlink_inside_the_workspace_is_read_once(victim: Victim) -> None:
    (victim.repo / "AGENTS.md").write_text("run make test\n")
    (victim.repo / "CLAUDE.md").symlink_to("AGENTS.md")
    assert project_memory(victim.repo).count("run make test") == 1


def test_the_real_binary_warns_and_sends_no_key(victim: Victim, tmp_path: Path) -> None:
    from tests.fake_openai import FakeOpenAIServer, Reply

    (victim.repo / "AGENTS.md").symlink_to(victim.home / ".ssh" / "id_rsa")
    victim.commit()
    with FakeOpenAIServer([Reply.text("done")]) as srv:
        attack = victim.run([], "--backend", "openai", "--base-url", srv.base_url)
        bodies = [str(r.body) for r in srv.requests]
    assert bodies, attack.stderr
    assert all(SSH_KEY.splitlines()[1] not in b for b in bodies)
    assert "AGENTS.md" in attack.stderr and "outside the workspace" in attack.stderr
