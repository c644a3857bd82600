"""More attack families for issue #11 (registered in bench/attack_families.EXTRA_FAMILIES):
bounded fork bombs in the sandbox, hostile core.worktree values, special files named .gitignore.

Each attack returns True when it broke something: a bomb that forked past the limit, a file
outside the repository changed by a checkpoint or undo, a search that hung or missed a file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

LIMIT = 32
# Each shape forks (or starts threads) at most 150 times; children sleep, then are killed with
# the call. Written as Python so a refused fork fails at once (bash retries for seconds).
BOMBS = {
    "fork loop": "import os,time\nn=0\nfor _ in range(150):\n    try:\n        pid=os.fork()\n"
    "    except OSError:\n        break\n    if pid==0:\n        time.sleep(20); os._exit(0)\n"
    "    n+=1\nprint('FORKED', n)",
    "threads": "import threading,time\nn=0\nfor _ in range(150):\n    try:\n"
    "        threading.Thread(target=time.sleep, args=(20,), daemon=True).start()\n"
    "    except RuntimeError:\n        break\n    n+=1\nprint('FORKED', n)",
    "fork chain": "import os,time\nn=0\nfor _ in range(150):\n    try:\n        pid=os.fork()\n"
    "    except OSError:\n        break\n    if pid:\n        time.sleep(20); os._exit(0)\n"
    "    n+=1\nprint('FORKED', n, flush=True)",
}


def fork_bomb_family(base: Path) -> Iterator[Callable[[], bool]]:
    """A bounded fork bomb under each sandbox backend; broken when it got past the limit."""
    from kcode.safety.sandbox import bwrap_status, landlock_status
    from kcode.tools.base import ToolContext
    from tests.safety.helpers import call

    backends = [
        b for b, ok in (("bwrap", bwrap_status()[0]), ("landlock", landlock_status()[0])) if ok
    ]
    ws = base / "bomb-ws"
    ws.mkdir()
    saved = {k: os.environ.get(k) for k in ("KCODE_SANDBOX_PIDS_MAX", "KCODE_SANDBOX_BACKEND")}

    def attack(backend: str, code: str) -> bool:
        os.environ.update(KCODE_SANDBOX_PIDS_MAX=str(LIMIT), KCODE_SANDBOX_BACKEND=backend)
        try:
            (ws / "bomb.py").write_text(code)
            ctx = ToolContext(ws, sandbox="workspace-write")
            result = asyncio.run(call(ctx, "shell", command="python3 bomb.py", timeout_s=20))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        counts = [int(line.split()[1]) for line in result.content.splitlines() if "FORKED" in line]
        # The chain prints one line per generation; threads/forks one line in all.
        return not counts or max(counts) >= LIMIT + 8 or len(counts) >= LIMIT + 8

    for backend in backends:
        for code in BOMBS.values():
            yield lambda b=backend, c=code: attack(b, c)


WORKTREES = [
    "{parent}",
    "..",
    "../..",
    "/",
    "{home}",
    "{sibling}",
    "../{sibling_name}",
    "{nowhere}",
]


def worktree_family(base: Path) -> Iterator[Callable[[], bool]]:
    """core.worktree values for a repository inside the user's projects directory; broken when a
    checkpoint holds an outside file or undo touches one."""
    from kcode.vcs.checkpoints import GitCheckpoints

    for i, template in enumerate(WORKTREES):
        top = base / f"wt-{i}"
        parent = top / "projects"
        repo = parent / "repo"
        sibling = parent / "other"
        sibling.mkdir(parents=True)
        repo.mkdir()
        (sibling / "work.txt").write_text("mine\n")
        (parent / "precious.txt").write_text("keep\n")
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        (repo / "a.txt").write_text("one\n")
        value = template.format(
            parent=parent,
            home=top,
            sibling=sibling,
            sibling_name="other",
            nowhere=top / "missing",
        )
        subprocess.run(["git", "config", "core.worktree", value], cwd=repo, check=True)

        def attack(repo: Path = repo, parent: Path = parent, sibling: Path = sibling) -> bool:
            try:
                cps = GitCheckpoints(repo, f"bench-{time.monotonic_ns()}")
                cps.snapshot("turn")
                (repo / "made.txt").write_text("by the turn\n")
                (parent / "later.txt").write_text("user\n")
                (sibling / "later.txt").write_text("user\n")
                cps.undo(1)
            except Exception:  # refusing is not breaking, as long as nothing outside changed
                pass
            outside = [parent / "precious.txt", parent / "later.txt", sibling / "work.txt"]
            return not all(p.exists() for p in [*outside, sibling / "later.txt"])

        yield attack


SPECIAL_IGNORES = [
    "fifo",
    "fifo-in-subdir",
    "symlink-to-fifo",
    "symlink-to-dev-zero",
    "parent-fifo",
]


def special_file_family(base: Path) -> Iterator[Callable[[], bool]]:
    """FIFOs and devices named .gitignore where ripgrep and the walk would open them; broken
    when grep or glob hangs (over 10 s) or misses a file."""
    from kcode.tools.base import ToolContext
    from tests.safety.helpers import call

    for i, kind in enumerate(SPECIAL_IGNORES):
        top = base / f"special-{i}"
        ws = top / "ws"
        (ws / "sub").mkdir(parents=True)
        (ws / "a.md").write_text("needle\n")
        (ws / "sub" / "b.md").write_text("needle\n")
        if kind == "fifo":
            os.mkfifo(ws / ".gitignore")
        elif kind == "fifo-in-subdir":
            os.mkfifo(ws / "sub" / ".gitignore")
        elif kind == "symlink-to-fifo":
            os.mkfifo(top / "pipe")
            (ws / "sub" / ".gitignore").symlink_to(top / "pipe")
        elif kind == "symlink-to-dev-zero":
            (ws / ".gitignore").symlink_to("/dev/zero")
        else:
            os.mkfifo(top / ".gitignore")
        for backend in ("rg", "python") if shutil.which("rg") else ("python",):

            def attack(ws: Path = ws, backend: str = backend) -> bool:
                os.environ["KCODE_GREP_FALLBACK"] = "1" if backend == "python" else ""
                try:
                    started = time.monotonic()
                    ctx = ToolContext(ws)
                    grep = asyncio.run(call(ctx, "grep", pattern="needle")).content
                    glob = asyncio.run(call(ctx, "glob", pattern="*.md")).content
                    slow = time.monotonic() - started > 10
                finally:
                    os.environ.pop("KCODE_GREP_FALLBACK", None)
                found = all(f in text for f in ("a.md", "sub/b.md") for text in (grep, glob))
                return slow or not found

            yield attack
