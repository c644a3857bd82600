"""The shell sandbox: writes confined, read-only mode, no network, scrubbed env, clear refusals."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kcode.safety.sandbox import SandboxUnavailable, bwrap_status, describe_sandbox, effective_mode
from kcode.tools.base import ToolContext
from tests.safety.helpers import call, listening_port

needs_bwrap = pytest.mark.skipif(bwrap_status()[0] is None, reason="bubblewrap cannot start here")


@needs_bwrap
async def test_workspace_write_allows_the_workspace_and_a_private_tmp(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path, sandbox="workspace-write")
    result = await call(
        ctx, "shell", command="echo hi > made.txt && echo t > /tmp/kcode-x && ls /tmp"
    )
    assert result.ok and "[exit code 0]" in result.content
    assert (tmp_path / "made.txt").read_text() == "hi\n"
    assert not Path("/tmp/kcode-x").exists()  # /tmp inside is private


@needs_bwrap
async def test_read_only_allows_no_writes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    ctx = ToolContext(root=tmp_path, sandbox="read-only")
    result = await call(ctx, "shell", command="cat a.txt; echo b > a.txt; touch new")
    assert "a\n" in result.content and "Read-only file system" in result.content
    assert (tmp_path / "a.txt").read_text() == "a\n" and not (tmp_path / "new").exists()


@needs_bwrap
async def test_network_is_off_unless_allowed(tmp_path: Path) -> None:
    with listening_port() as port:
        probe = f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2); print('CONNECTED')\""
        workspace = ToolContext(root=tmp_path, sandbox="workspace-write")
        off = await call(workspace, "shell", command=probe)
        assert "CONNECTED" not in off.content
        on = await call(
            ToolContext(root=tmp_path, sandbox="workspace-write", allow_network=True),
            "shell",
            command=probe,
        )
        assert "CONNECTED" in on.content


@needs_bwrap
async def test_children_get_no_secret_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_API_KEY", "canary-key-0001")
    monkeypatch.setenv("GH_TOKEN", "canary-token-0002")
    monkeypatch.setenv("DB_PASSWD", "canary-pass-0003")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:canary-url-0004@db")
    monkeypatch.setenv("GITHUB_AUTH", "canary-auth-0005")
    monkeypatch.setenv("TZ", "visible")
    result = await call(
        ToolContext(root=tmp_path, sandbox="workspace-write"), "shell", command="env"
    )
    assert "TZ=visible" in result.content
    assert "canary" not in result.content


def test_an_explicit_sandbox_that_cannot_start_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import kcode.safety.sandbox as sandbox

    monkeypatch.setattr(sandbox, "bwrap_status", lambda: (None, "bubblewrap is not installed"))
    monkeypatch.setattr(sandbox, "landlock_status", lambda: (0, "no Landlock"))
    with pytest.raises(SandboxUnavailable, match="--sandbox off"):
        effective_mode("workspace-write")
    assert effective_mode(None) == "off"  # the default falls back, and doctor says so
    ok, text = describe_sandbox(type("C", (), {"sandbox": None})())
    assert not ok and "unsandboxed" in text


async def test_a_sandboxed_call_without_a_sandbox_does_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kcode.safety.sandbox as sandbox

    monkeypatch.setattr(sandbox, "bwrap_status", lambda: (None, "no bwrap"))
    monkeypatch.setattr(sandbox, "landlock_status", lambda: (0, "no Landlock"))
    ctx = ToolContext(root=tmp_path, sandbox="workspace-write")
    result = await call(ctx, "shell", command="touch ran")
    assert not result.ok and "not run" in result.content
    assert not (tmp_path / "ran").exists()


@needs_bwrap
def test_doctor_names_the_active_sandbox() -> None:
    ok, text = describe_sandbox(type("C", (), {"sandbox": None, "allow_network": False})())
    assert ok and "workspace-write (default)" in text and "no network" in text


@needs_bwrap
async def test_a_virtualenv_under_tmp_stays_usable_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The private /tmp must not hide a checkout's .venv on PATH (CI clones can live in /tmp)."""
    venv = tmp_path / "checkout" / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    tool = venv / "bin" / "venv-tool"
    tool.write_text("#!/bin/sh\necho venv tool ran\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{venv / 'bin'}:{os.environ['PATH']}")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    ctx = ToolContext(root=workspace, sandbox="workspace-write")
    result = await call(ctx, "shell", command="venv-tool")
    assert "venv tool ran" in result.content
