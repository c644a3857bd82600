"""The Landlock sandbox backend, forced with KCODE_SANDBOX_BACKEND=landlock, through the shell tool."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kcode.safety.sandbox import describe_sandbox, effective_mode, landlock_status
from kcode.tools.base import ToolContext
from tests.safety.helpers import call, listening_port, make_repo

ABI = landlock_status()[0]
pytestmark = pytest.mark.skipif(
    ABI < 1, reason=f"Landlock is unavailable here: {landlock_status()[1]}"
)


@pytest.fixture(autouse=True)
def force_landlock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCODE_SANDBOX_BACKEND", "landlock")


def _repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "ws", {"top.txt": "top\n", "src/a.py": "a = 1\n"})


async def test_writes_inside_the_workspace_but_not_outside_or_into_git(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    head = (repo / ".git" / "HEAD").read_text()
    command = (
        "echo b > src/b.py; mkdir -p src/pkg && echo c > src/pkg/c.py; echo t2 > top.txt; "
        f"echo x > {outside}/x; echo y > ../outside/y; echo z > .git/HEAD; rm -f .git/config; "
        "echo tmp > $TMPDIR/scratch && cat $TMPDIR/scratch"
    )
    result = await call(ToolContext(root=repo, sandbox="workspace-write"), "shell", command=command)
    assert (repo / "src/b.py").read_text() == "b\n" and (repo / "src/pkg/c.py").exists()
    assert (repo / "top.txt").read_text() == "t2\n"  # an existing top-level file is rewritable
    assert list(outside.iterdir()) == []
    assert (repo / ".git" / "HEAD").read_text() == head and (repo / ".git" / "config").exists()
    assert "Permission denied" in result.content and "tmp\n" in result.content


async def test_a_workspace_without_git_cannot_grow_control_files_at_the_top(tmp_path: Path) -> None:
    """Granted entry by entry like a repo: existing files and directories stay writable, but no
    `.kcode/hooks.json` or `.mcp.json` can appear for a later run to trust."""
    (tmp_path / "src").mkdir()
    (tmp_path / "top.txt").write_text("top\n")
    ctx = ToolContext(root=tmp_path, sandbox="workspace-write")
    command = (
        "echo t2 > top.txt; echo b > src/b.py; mkdir -p src/pkg; "
        "mkdir .kcode; echo '{}' > .kcode/hooks.json; echo '{}' > .mcp.json; echo x > made.txt"
    )
    result = await call(ctx, "shell", command=command)
    assert (tmp_path / "top.txt").read_text() == "t2\n" and (tmp_path / "src/pkg").is_dir()
    assert (tmp_path / "src/b.py").read_text() == "b\n"
    assert "Permission denied" in result.content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "top.txt"]


async def test_symlinks_do_not_lead_out(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "out").symlink_to(outside)  # a top-level symlink is not granted
    (repo / "src" / "git").symlink_to(repo / ".git")  # Landlock checks the real path
    command = "echo a > out/a; echo b > src/git/b; ln -s .git g2; echo c > g2/c"
    await call(ToolContext(root=repo, sandbox="workspace-write"), "shell", command=command)
    assert list(outside.iterdir()) == []
    assert not (repo / ".git" / "b").exists() and not (repo / ".git" / "c").exists()


async def test_read_only_allows_no_writes_in_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    ctx = ToolContext(root=tmp_path, sandbox="read-only")
    result = await call(ctx, "shell", command="cat a.txt; echo b > a.txt; touch new; mkdir d")
    assert "a\n" in result.content and "Permission denied" in result.content
    assert (tmp_path / "a.txt").read_text() == "a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


@pytest.mark.skipif(ABI < 4, reason=f"Landlock ABI {ABI} < 4 cannot restrict TCP")
async def test_network_is_off_unless_allowed(tmp_path: Path) -> None:
    with listening_port() as port:
        probe = (
            f'{sys.executable} -c "import socket; '
            f"socket.create_connection(('127.0.0.1', {port}), 2); print('CONNECTED')\""
        )
        workspace = ToolContext(root=tmp_path, sandbox="workspace-write")
        off = await call(workspace, "shell", command=probe)
        assert "CONNECTED" not in off.content and "Permission denied" in off.content
        allowed = ToolContext(root=tmp_path, sandbox="workspace-write", allow_network=True)
        on = await call(allowed, "shell", command=probe)
        assert "CONNECTED" in on.content


async def test_children_get_no_secret_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_API_KEY", "canary-key-0001")
    monkeypatch.setenv("TZ", "visible")
    result = await call(ToolContext(root=tmp_path, sandbox="read-only"), "shell", command="env")
    assert "TZ=visible" in result.content and "canary" not in result.content


def test_doctor_names_landlock_and_explicit_modes_start() -> None:
    ok, text = describe_sandbox(type("C", (), {"sandbox": None, "allow_network": False})())
    assert ok and "Landlock workspace-write (default)" in text
    assert effective_mode("read-only") == "read-only"


def test_an_unknown_forced_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCODE_SANDBOX_BACKEND", "chroot")
    ok, text = describe_sandbox(type("C", (), {"sandbox": "workspace-write"})())
    assert not ok and "KCODE_SANDBOX_BACKEND" in text and "refuse" in text
