"""The file tools never write inside .git or kcode's own control files (issue #11), and a patch's
mode change never sets setuid/setgid/sticky bits."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from kcode.messages import ToolResult
from kcode.tools.base import ToolContext
from kcode.tools.confine import control_file_rule
from tests.safety import helpers


def call(ctx: ToolContext, name: str, **arguments: object) -> ToolResult:
    return asyncio.run(helpers.call(ctx, name, **arguments))


CONTROL = [
    ".git/config",
    ".git/hooks/pre-commit",
    ".GIT/config",
    "sub/.Git/hooks/post-checkout",
    ".git",
    ".kcode/config.toml",
    ".kcode/permissions.toml",
    ".kcode/mcp.json",
    ".mcp.json",
    ".kcode/hooks.toml",
    ".kcode/hooks/pre.sh",
    ".kcode/commands/x.md",
    ".kcode/agents/a.md",
    ".kcode/skills/s/SKILL.md",
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".KCODE/CONFIG.TOML",
    ".kcode/hooks.json",
    ".claude/skills/s/SKILL.md",
    ".claude/commands/c.md",
    ".claude/agents/a.md",
    ".agents/skills/s/SKILL.md",
    ".agents/agents/a.md",
    ".kimi-code/skills/s/SKILL.md",
    "sub/.Agents/Skills/s/SKILL.md",
]


@pytest.mark.parametrize("rel", CONTROL)
def test_write_file_refuses_control_files(tmp_path: Path, rel: str) -> None:
    ctx = ToolContext(tmp_path)
    result = call(ctx, "write_file", path=rel, content="[core]\nhooksPath = /tmp/evil\n")
    assert not result.ok
    assert "refused to write" in result.content
    assert not (tmp_path / rel).exists()


@pytest.mark.parametrize("rel", ["AGENTS.md", ".kcode/runs/out.txt", "src/git/x.py", ".gitignore"])
def test_ordinary_files_are_writable(tmp_path: Path, rel: str) -> None:
    ctx = ToolContext(tmp_path)
    assert call(ctx, "write_file", path=rel, content="ok\n").ok
    assert (tmp_path / rel).read_text() == "ok\n"


def test_edit_and_patch_refuse_existing_git_config(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    config = tmp_path / ".git" / "config"
    config.write_text("[core]\n")
    ctx = ToolContext(tmp_path)
    edit = call(
        ctx, "edit_file", path=".git/config", edits=[{"old_string": "[core]", "new_string": "x"}]
    )
    assert not edit.ok
    patch = "--- a/.git/config\n+++ /dev/null\n@@ -1 +0,0 @@\n-[core]\n"
    assert not call(ctx, "apply_patch", patch=patch).ok
    rename = (
        "diff --git a/x b/.git/hooks/pre-commit\nrename from x\nrename to .git/hooks/pre-commit\n"
    )
    (tmp_path / "x").write_text("#!/bin/sh\n")
    assert not call(ctx, "apply_patch", patch=rename).ok
    assert config.read_text() == "[core]\n"
    assert not (tmp_path / ".git" / "hooks").exists()


def test_rule_names_the_reason() -> None:
    from pathlib import PurePosixPath

    assert "git" in (control_file_rule(PurePosixPath(".git/config")) or "")
    assert control_file_rule(PurePosixPath("AGENTS.md")) is None


def test_patch_mode_never_sets_setuid(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("echo hi\n")
    os.chmod(tmp_path / "run.sh", 0o644)
    ctx = ToolContext(tmp_path)
    patch = (
        "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 104755\n"
        "--- a/run.sh\n+++ b/run.sh\n@@ -1 +1 @@\n-echo hi\n+echo ho\n"
    )
    result = call(ctx, "apply_patch", patch=patch)
    assert result.ok, result.content
    mode = (tmp_path / "run.sh").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)
    assert mode & 0o111
    new = (
        "diff --git a/new.sh b/new.sh\nnew file mode 106777\n"
        "--- /dev/null\n+++ b/new.sh\n@@ -0,0 +1 @@\n+x\n"
    )
    assert call(ctx, "apply_patch", patch=new).ok
    new_mode = (tmp_path / "new.sh").stat().st_mode
    assert not new_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | 0o002)


@pytest.mark.parametrize(
    "rel",
    [
        ".config/kcode/config.toml",
        ".config/kcode/hooks.json",
        ".config/kcode/mcp.json",
        ".local/share/kcode/projects/0123456789abcdef/trust.json",
        ".local/share/kcode/projects/0123456789abcdef/rules.toml",
    ],
)
def test_kcode_run_in_home_cannot_rewrite_the_users_own_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str
) -> None:
    """The workspace is the home dir: the user config and the trust/rules store are refused."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / ".local/share"))
    ctx = ToolContext(tmp_path)
    result = call(ctx, "write_file", path=rel, content='trusted = ["/"]\n')
    assert not result.ok
    assert "refused to write" in result.content
    assert not (tmp_path / rel).exists()
