"""Path confinement: hundreds of generated escape attempts across the file tools and the sandboxed
shell; a sentinel directory outside the workspace must come out byte-for-byte unchanged."""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from pathlib import Path

import pytest

from kcode.safety.sandbox import bwrap_status
from kcode.tools.base import ToolContext
from tests.safety.helpers import call

SENTINEL = "SENTINEL-OUTSIDE-3f9a"
HOME_TARGET = "kcode-escape-probe.txt"


def state(directory: Path) -> dict[str, tuple[str, bytes]]:
    out: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(directory).as_posix()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path).encode())
            elif path.is_dir():
                out[rel] = ("dir", b"")
            else:
                out[rel] = ("file", path.read_bytes())
    return out


def build_world(tmp_path: Path) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    outside = tmp_path / "outside"
    (ws / "dir" / "sub").mkdir(parents=True)
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text(SENTINEL + "\n")
    (outside / "sub" / "deep.txt").write_text(SENTINEL + "\n")
    (ws / "inside.txt").write_text("inside\n")
    os.symlink(outside, ws / "link_out")
    os.symlink(ws / "chain2", ws / "chain1")
    os.symlink("../outside", ws / "chain2")
    os.symlink(outside / "secret.txt", ws / "link_file")
    os.symlink("../..", ws / "dir" / "up")
    os.symlink("/", ws / "root_link")
    return ws, outside


def escape_paths(ws: Path, outside: Path) -> list[str]:
    rel_outside = str(outside).lstrip("/")
    names = ["secret.txt", "new.txt", "sub/deep.txt", "sub/new.py", "fresh/dir/new.txt"]
    paths: list[str] = []
    for name in names:
        paths += [
            f"../outside/{name}",
            f"./../outside/{name}",
            f"dir/sub/../../../outside/{name}",
            f"dir/../../outside/{name}",
            str(outside / name),
            f"/{rel_outside}//{name}",
            f"link_out/{name}",
            f"chain1/{name}",
            f"dir/up/outside/{name}",
            f"root_link/{rel_outside}/{name}",
            f"link_out/../outside/{name}",
            f"{ws}/../outside/{name}",
            f"{'../' * 8}{rel_outside}/{name}",
            f"..\uff0foutside\uff0f{name}",  # fullwidth solidus
            f"\uff0e\uff0e/outside/{name}",  # fullwidth full stops
            f"..\u2215outside\u2215{name}",  # division slash
            f"\u2024\u2024/outside/{name}",  # one dot leader
            f"%2e%2e/outside/{name}",
            f"..%2Foutside%2F{name}",
            f"..\\outside\\{name}",
            f"../outside/{name}\x00.txt",
            f"\x00../outside/{name}",
        ]
    paths += ["link_file", "link_out", "chain1", f"~/{HOME_TARGET}", "..", "/", str(outside)]
    return paths


def patch_for(path: str) -> list[str]:
    create = f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+ESCAPED\n"
    modify = f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{SENTINEL}\n+ESCAPED\n"
    return [create, modify]


async def test_file_tools_never_write_or_read_outside(tmp_path: Path) -> None:
    ws, outside = build_world(tmp_path)
    before = state(outside)
    ctx = ToolContext(root=ws)
    attempts = 0
    tools = ["read_file", "write_file", "edit_file", "apply_patch", "grep"]
    has_glob = importlib.util.find_spec("kcode.tools.glob_tool") is not None
    for path in escape_paths(ws, outside):
        results = [
            await call(ctx, "read_file", path=path),
            await call(ctx, "write_file", path=path, content="ESCAPED\n"),
            await call(
                ctx,
                "edit_file",
                path=path,
                edits=[{"old_string": SENTINEL, "new_string": "ESCAPED"}],
            ),
            *[await call(ctx, "apply_patch", patch=p) for p in patch_for(path)],
            await call(ctx, "grep", pattern="SENTINEL", path=path),
        ]
        if has_glob:
            results.append(await call(ctx, "glob", pattern="**/*", path=path))
        attempts += len(results)
        for result in results:
            assert SENTINEL not in result.content, (path, result.content)
    assert len(tools) and attempts >= 500
    assert state(outside) == before
    assert not (Path.home() / HOME_TARGET).exists()


async def test_a_symlink_swapped_after_the_check_cannot_redirect_a_write(tmp_path: Path) -> None:
    ws, outside = build_world(tmp_path)
    before = state(outside)
    ctx = ToolContext(root=ws)
    swap = ws / "swap"
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            tmp_link = ws / ".swap-link"
            try:
                os.symlink(outside, tmp_link)
                os.replace(tmp_link, swap)  # swap is now a symlink to outside
                os.unlink(swap)
                swap.mkdir()  # and now a real directory again
            except OSError:
                pass

    swap.mkdir()
    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        for i in range(150):
            await call(ctx, "write_file", path=f"swap/race{i}.txt", content="ESCAPED\n")
            await call(ctx, "apply_patch", patch=patch_for(f"swap/p{i}.txt")[0])
    finally:
        stop.set()
        flipper.join()
    assert state(outside) == before


@pytest.mark.skipif(bwrap_status()[0] is None, reason="bubblewrap cannot start here")
async def test_sandboxed_shell_cannot_write_outside(tmp_path: Path) -> None:
    ws, outside = build_world(tmp_path)
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("[core]\n")
    before = state(outside)
    git_before = state(ws / ".git")
    ctx = ToolContext(root=ws, sandbox="workspace-write")
    targets = [
        str(outside / "secret.txt"),
        str(outside / "new.txt"),
        str(outside / "sub" / "n"),
        "../outside/new.txt",
        "link_out/new.txt",
        "chain1/new.txt",
        "dir/up/outside/x",
        f"~/{HOME_TARGET}",
        ".git/config",
        ".git/hooks/pre-commit",
    ]
    commands = []
    for t in targets:
        commands += [
            f"echo ESCAPED > {t}",
            f"echo ESCAPED >> {t}",
            f"touch {t}",
            f"mkdir -p {t}.d",
            f"cp inside.txt {t}",
            f"ln -s /etc/passwd {t}.lnk",
            f"rm -rf {t}",
            f"python3 -c \"open('{t}'.replace('~', '{Path.home()}'), 'w').write('x')\"",
            f"cd .. && echo x > {t}",
            f"mv inside.txt {t}; mv {t} inside.txt",
            f"sh -c 'echo x > {t}'",
            f"(echo x | tee {t})",
        ]
    commands += [f"rm -rf {outside}", "chmod 000 link_out", f"truncate -s0 {outside}/secret.txt"]
    for command in commands:
        result = await call(ctx, "shell", command=command)
        assert SENTINEL not in result.content or "cat" in command
    assert len(commands) >= 100
    assert state(outside) == before
    assert state(ws / ".git") == git_before
    assert not (Path.home() / HOME_TARGET).exists()
    shutil.rmtree(ws)
