"""Races and special files (issue #11 class 6): a directory swapped for a symlink between check and
use, FIFOs in the workspace, hard links, huge files, and --timeout as a hard limit."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kcode.messages import ToolResult
from kcode.tools.base import ToolContext
from tests.safety import helpers
from tests.security.conftest import Victim

SECRET = "OUTSIDE-SECRET-77"
# These tests check that nothing hangs (a FIFO opened for reading blocks until a writer comes;
# ripgrep's own bound is 60 s), not how fast it is: a bound far above a loaded machine's times.
HANG_BOUND_S = 30.0


def call(ctx: ToolContext, name: str, **arguments: object) -> ToolResult:
    return asyncio.run(helpers.call(ctx, name, **arguments))


def _swapper(ws: Path, outside: Path, stop: threading.Event) -> None:
    real = ws / "d"
    link = ws / "d.link"
    while not stop.is_set():
        try:
            os.rename(real, ws / "d.real")
            os.symlink(outside, link)
            os.rename(link, real)
            time.sleep(0)
            os.unlink(real)
            os.rename(ws / "d.real", real)
        except OSError:
            pass


@pytest.fixture()
def world(tmp_path: Path) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    outside = tmp_path / "outside"
    (ws / "d").mkdir(parents=True)
    outside.mkdir()
    (ws / "d" / "f.txt").write_text("inside\n")
    (outside / "f.txt").write_text(SECRET + "\n")
    return ws, outside


def test_read_file_race_never_reads_outside(world: tuple[Path, Path]) -> None:
    ws, outside = world
    ctx = ToolContext(ws)
    stop = threading.Event()
    swapper = threading.Thread(target=_swapper, args=(ws, outside, stop))
    swapper.start()
    try:
        for _ in range(200):
            result = call(ctx, "read_file", path="d/f.txt")
            assert SECRET not in result.content
    finally:
        stop.set()
        swapper.join()


def test_apply_patch_race_never_deletes_outside(world: tuple[Path, Path]) -> None:
    ws, outside = world
    ctx = ToolContext(ws)
    patch = "--- a/d/f.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-inside\n"
    stop = threading.Event()
    swapper = threading.Thread(target=_swapper, args=(ws, outside, stop))
    swapper.start()
    try:
        for _ in range(200):
            call(ctx, "apply_patch", patch=patch)
            target = ws / "d.real" if (ws / "d.real").exists() else ws / "d"
            if not (outside / "f.txt").exists():
                break
            if not (target / "f.txt").exists() and target.is_dir() and not target.is_symlink():
                (target / "f.txt").write_text("inside\n")
    finally:
        stop.set()
        swapper.join()
    assert (outside / "f.txt").read_text() == SECRET + "\n"


def test_write_race_never_writes_outside(world: tuple[Path, Path]) -> None:
    ws, outside = world
    ctx = ToolContext(ws)
    stop = threading.Event()
    swapper = threading.Thread(target=_swapper, args=(ws, outside, stop))
    swapper.start()
    try:
        for i in range(200):
            call(ctx, "write_file", path=f"d/new{i}.txt", content="x\n")
    finally:
        stop.set()
        swapper.join()
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt"]


@pytest.mark.parametrize("tool", ["read_file", "write_file", "grep", "edit_file", "view_image"])
def test_fifo_is_refused_quickly(tmp_path: Path, tool: str) -> None:
    os.mkfifo(tmp_path / "pipe")
    ctx = ToolContext(tmp_path)
    args: dict[str, object] = {"path": "pipe"}
    if tool == "write_file":
        args["content"] = "x"
    elif tool == "grep":
        args["pattern"] = "x"
    elif tool == "edit_file":
        args["edits"] = [{"old_string": "a", "new_string": "b"}]
    started = time.monotonic()
    result = call(ctx, tool, **args)
    assert time.monotonic() - started < HANG_BOUND_S
    assert not result.ok
    assert "FIFO" in result.content or "not a file" in result.content


def test_grep_over_tree_with_fifo_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a.txt").write_text("needle\n")
    ctx = ToolContext(tmp_path)
    started = time.monotonic()
    result = call(ctx, "grep", pattern="needle")
    assert time.monotonic() - started < HANG_BOUND_S
    assert "a.txt" in result.content
    if shutil.which("rg"):
        os.environ["KCODE_GREP_FALLBACK"] = "1"
        try:
            assert "a.txt" in call(ctx, "grep", pattern="needle").content
        finally:
            del os.environ["KCODE_GREP_FALLBACK"]


def test_hard_link_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret").write_text(SECRET)
    os.link(tmp_path / "secret", ws / "linked")
    ctx = ToolContext(ws)
    result = call(ctx, "read_file", path="linked")
    assert not result.ok and "hard link" in result.content
    result = call(ctx, "edit_file", path="linked", edits=[{"old_string": "O", "new_string": "X"}])
    assert not result.ok
    assert (tmp_path / "secret").read_text() == SECRET


def test_huge_file_read_is_streamed_and_edit_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(12 * 1024 * 1024)  # sparse, all NUL: binary
    (tmp_path / "big2.txt").write_bytes(b"line\n" * (3 * 1024 * 1024))
    ctx = ToolContext(tmp_path)
    result = call(ctx, "read_file", path="big2.txt", limit=3)
    assert result.ok and "     1\tline" in result.content and "too large" in result.content
    result = call(ctx, "edit_file", path="big2.txt", edits=[{"old_string": "x", "new_string": "y"}])
    assert not result.ok and "limit" in result.content


def test_fifo_read_in_a_real_run_comes_back_as_an_error(victim: Victim) -> None:
    os.mkfifo(victim.repo / "pipe")
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "pipe"}}]},
        {"text": "done"},
    ]
    # A read that blocked on the FIFO would end in the --timeout (exit 5), not in exit 0.
    attack = victim.run(turns, "--timeout", "20", timeout=60)
    assert attack.code == 0, attack.stderr


@pytest.mark.parametrize("where", ["top", "subdir", "symlink-to-fifo", "parent"])
@pytest.mark.parametrize("fallback", ["1", ""])
def test_fifo_gitignore_does_not_block_grep_or_glob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallback: str, where: str
) -> None:
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "README.md").write_text("# a project\n")
    (ws / "sub" / "notes.md").write_text("project notes\n")
    if where == "top":
        os.mkfifo(ws / ".gitignore")
    elif where == "subdir":
        os.mkfifo(ws / "sub" / ".gitignore")
    elif where == "symlink-to-fifo":
        os.mkfifo(tmp_path / "pipe")
        (ws / "sub" / ".gitignore").symlink_to(tmp_path / "pipe")
    else:  # ripgrep also reads the .gitignore of every directory above the searched one
        os.mkfifo(tmp_path / ".gitignore")
    monkeypatch.setenv("KCODE_GREP_FALLBACK", fallback)
    if not fallback and not shutil.which("rg"):
        pytest.skip("ripgrep is not installed")
    ctx = ToolContext(ws)
    started = time.monotonic()
    found = call(ctx, "glob", pattern="*.md").content
    assert "README.md" in found and "sub/notes.md" in found
    # ripgrep opens .gitignore files blocking: kcode sees the special file and answers with
    # its own search instead of waiting for ripgrep's 60 s bound.
    result = call(ctx, "grep", pattern="project")
    assert "README.md" in result.content and "sub/notes.md" in result.content
    assert time.monotonic() - started < HANG_BOUND_S


def _swap_dir_loop(ws: Path, outside: Path, stop: threading.Event) -> None:
    # d is a real directory, then a symlink to `outside`, then the directory again, and so on.
    while not stop.is_set():
        try:
            os.rename(ws / "d", ws / "d.real")
            os.symlink(outside, ws / "d")
            time.sleep(0.0005)
            os.unlink(ws / "d")
            os.rename(ws / "d.real", ws / "d")
            time.sleep(0.0005)
        except OSError:
            pass


@pytest.mark.slow  # chaos: a thread swaps a directory for a symlink while 1000-entry walks run
def test_glob_and_grep_walk_races_never_reach_outside(
    world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, outside = world
    monkeypatch.setenv("KCODE_GREP_FALLBACK", "1")  # the Python walk (ripgrep never follows)
    (outside / "OUTSIDE-ONLY.txt").write_text("x\n")
    (ws / "d" / "deeper").mkdir()
    (ws / "d" / "deeper" / "g.txt").write_text("inside\n")
    for i in range(1000):  # a long listing widens the window between listing d and entering it
        (ws / f"file{i:04}.dat").write_text("")
    ctx = ToolContext(ws)
    stop = threading.Event()
    swapper = threading.Thread(target=_swap_dir_loop, args=(ws, outside, stop))
    swapper.start()
    seen_inside = 0
    try:
        for i in range(80):
            result = call(ctx, "glob", pattern="**/*.txt")
            assert "OUTSIDE-ONLY" not in result.content
            seen_inside += "d/f.txt" in result.content
            if i % 4:
                continue
            grep = call(ctx, "grep", pattern=".")
            assert "OUTSIDE-ONLY" not in grep.content and SECRET not in grep.content
    finally:
        stop.set()
        swapper.join()
    assert seen_inside  # the walk did see the real directory while the race ran


def test_timeout_is_hard_when_a_tool_runs_long(victim: Victim) -> None:
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "shell", "arguments": {"command": "sleep 60", "timeout_s": 120}}]},
        {"text": "done"},
    ]
    # Not hard, the call would run its 60 s: the run's own bound (40 s) fails the test first.
    attack = victim.run(turns, "--timeout", "2", "--approval", "auto", timeout=40)
    assert attack.code == 5, (attack.stdout, attack.stderr)


def test_add_dir_is_an_allowed_root(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    extra = tmp_path / "extra"
    ws.mkdir()
    extra.mkdir()
    ctx = ToolContext(ws, extra_dirs=(extra,))
    assert call(ctx, "write_file", path=str(extra / "a" / "b.txt"), content="hi\n").ok
    assert (extra / "a" / "b.txt").read_text() == "hi\n"
    assert call(ctx, "read_file", path=str(extra / "a" / "b.txt")).ok
    result = call(ctx, "read_file", path=".")
    assert not result.ok and "directory" in result.content
