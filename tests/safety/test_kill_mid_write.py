"""kill -9 while the file tools write: no half-written file and no temp file left in the workspace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kcode.tools.fileio import atomic_write
from tests.waiting import wait_until

# Writes new files (20 MB each, fsynced) one after another until killed: most of its time is spent
# inside atomic_write, where a named temp file used to exist.
WRITER = """
import sys
from pathlib import Path
from kcode.tools.fileio import atomic_write
ws = Path(sys.argv[1])
data = b"x" * 20_000_000
for i in range(1000):
    atomic_write(ws / f"f{i:04d}.txt", data)
"""


def test_a_kill_9_in_the_middle_of_writes_leaves_only_whole_files(tmp_path: Path) -> None:
    repo_root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
    )
    try:
        # Two files done: the writer is past its start-up and inside the third write (or later).
        wait_until(lambda: (tmp_path / "f0001.txt").exists(), "two files written")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(name.startswith("f") and name.endswith(".txt") for name in names), names
    assert all((tmp_path / name).stat().st_size == 20_000_000 for name in names)


def test_a_replaced_file_keeps_its_mode_and_a_new_one_gets_the_default(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o755)
    assert atomic_write(script, b"echo new\n") is True
    assert script.read_bytes() == b"echo new\n" and script.stat().st_mode & 0o777 == 0o755
    fresh = tmp_path / "new.txt"
    assert atomic_write(fresh, b"hello\n") is False
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt", "run.sh"]
