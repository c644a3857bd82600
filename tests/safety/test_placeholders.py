"""A kcode killed mid-command leaves no empty `.kcode` / `.git` / `.mcp.json` behind for long.

The sandbox covers missing control dirs with read-only mounts whose mount points bwrap creates in
the workspace (kcode.safety.sandbox.placeholder_args). A kill -9 during the command skips their removal;
the next kcode's first sandboxed command removes them (kcode.safety.placeholder_journal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kcode.safety import placeholder_journal
from kcode.safety.landlock import READ_ONLY_IN_WORKSPACE
from kcode.safety.sandbox import bwrap_status
from kcode.tools.base import ToolContext
from tests.safety.helpers import call
from tests.waiting import wait_until

needs_bwrap = pytest.mark.skipif(bwrap_status()[0] is None, reason="bubblewrap cannot start here")

CHILD = """
import asyncio, sys
from pathlib import Path
from kcode.tools.base import ToolContext
from tests.safety.helpers import call
ctx = ToolContext(root=Path(sys.argv[1]), sandbox="workspace-write")
asyncio.run(call(ctx, "shell", command="sleep 120", timeout_s=120))
"""


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("KCODE_SANDBOX_BACKEND", "bwrap")
    placeholder_journal.sweep_once.cache_clear()
    placeholder_journal._own_journal.cache_clear()


def _placeholders(ws: Path) -> list[str]:
    return sorted(name for name in READ_ONLY_IN_WORKSPACE if os.path.lexists(ws / name))


@needs_bwrap
async def test_placeholders_left_by_a_kill_9_are_removed_by_the_next_command(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text("print(1)\n")
    repo_root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ws)],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
    )
    try:
        wait_until(lambda: len(_placeholders(ws)) == len(READ_ONLY_IN_WORKSPACE), "the mounts")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    # bwrap dies with its parent (--die-with-parent); its mount points stay: the leak.
    assert _placeholders(ws) == sorted(READ_ONLY_IN_WORKSPACE)
    result = await call(ToolContext(root=ws, sandbox="workspace-write"), "shell", command="true")
    assert result.ok, result.content
    assert _placeholders(ws) == []
    assert sorted(p.name for p in ws.iterdir()) == ["app.py"]
    assert not list(placeholder_journal.journal_dir().iterdir())  # no journal left either


def _journal_of_a_gone_process(paths: list[Path]) -> Path:
    journal = placeholder_journal.journal_dir() / f"{os.getpid()}-not-this-process"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("".join(f"{p}\n" for p in paths))
    return journal


def test_the_sweep_keeps_anything_with_content_and_what_a_live_kcode_uses(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / ".kcode").mkdir(parents=True)
    (ws / ".kcode" / "hooks.json").write_text("{}")  # made by the user since: kept
    (ws / ".claude").mkdir()  # still an empty placeholder: removed
    (ws / ".mcp.json").write_text('{"mcpServers": {}}')  # has content: kept
    (ws / ".agents").mkdir()  # also in a live process's journal: kept
    gone = _journal_of_a_gone_process(
        [ws / ".kcode", ws / ".claude", ws / ".mcp.json", ws / ".agents"]
    )
    placeholder_journal.record([str(ws / ".agents")])  # this (live) process uses it
    assert placeholder_journal.sweep() == [str(ws / ".claude")]
    assert _placeholders(ws) == [".agents", ".kcode", ".mcp.json"]
    assert not gone.exists()
    placeholder_journal.record([])
    assert not list(placeholder_journal.journal_dir().iterdir())


def test_an_empty_file_placeholder_is_removed(tmp_path: Path) -> None:
    (tmp_path / ".mcp.json").touch()
    _journal_of_a_gone_process([tmp_path / ".mcp.json"])
    assert placeholder_journal.sweep() == [str(tmp_path / ".mcp.json")]
