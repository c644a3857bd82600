"""A fork bomb in `shell` must stop at the sandbox's process limit (issue #11 class 8).

The bomb is bounded (at most 200 forks, children sleep 30 s and are killed with the call) and the
limit is lowered to 32 through KCODE_SANDBOX_PIDS_MAX, so the test never loads the machine. It
runs as the current user and, when that is root, again as an unprivileged user (the `as_user`
fixture): root is limited by a pids cgroup, anyone else by RLIMIT_NPROC (kcode/safety/pidlimit.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kcode.safety import pidlimit
from kcode.safety.sandbox import bwrap_status, landlock_status
from tests.security.conftest import Victim
from tests.waiting import wait_until

LIMIT = 32
BOMB = (
    'python3 -c "\nimport os, sys, time\nn = 0\nfor _ in range(200):\n'
    "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
    "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    n += 1\n"
    "open('out.txt', 'w').write(f'forked {n}')\n\" MARKER"
)


def _limit_holds_here(victim: Victim) -> bool:
    # Root is only limited through a writable pids cgroup; everyone else by RLIMIT_NPROC.
    return victim.owner is not None or os.geteuid() != 0 or pidlimit.cgroup_parent()[0] is not None


def _bomb(victim: Victim, backend: str) -> int:
    marker = f"kcode-bomb-{os.getpid()}-{time.monotonic_ns()}"
    victim.env.update(KCODE_SANDBOX_PIDS_MAX=str(LIMIT), KCODE_SANDBOX_BACKEND=backend)
    out = victim.write("out.txt", "")
    turns = [
        {
            "tool_calls": [
                {"name": "shell", "arguments": {"command": BOMB.replace("MARKER", marker)}}
            ]
        },
        {"text": "ok"},
    ]
    attack = victim.run(turns, "--approval", "auto", "--sandbox", "workspace-write")
    got = out.read_text()
    assert got.startswith("forked "), f"the bomb did not run: {attack}"
    # Nothing the bomb forked outlives the call (its children sleep 30 s: the bound is below).
    wait_until(lambda: not _running(marker), "the forked processes to be gone", 15)
    return int(got.split()[1])


def _cgroups() -> set[str]:
    base = pidlimit.cgroup_parent()[0]
    if base is None:
        return set()
    return {p.name for p in Path(base).iterdir() if p.name.startswith(f"kcode-{os.getpid()}-")}


@pytest.mark.skipif(bwrap_status()[0] is None, reason="bubblewrap cannot start here")
def test_fork_bomb_stops_at_the_limit_under_bubblewrap(as_user: Victim) -> None:
    if not _limit_holds_here(as_user):
        pytest.skip("root without a writable pids cgroup: no limit holds (documented)")
    forked = _bomb(as_user, "bwrap")
    assert 0 < forked < LIMIT, forked


@pytest.mark.skipif(not landlock_status()[0], reason="Landlock is not available")
def test_fork_bomb_stops_at_the_limit_under_landlock(as_user: Victim) -> None:
    if not _limit_holds_here(as_user):
        pytest.skip("root without a writable pids cgroup: no limit holds (documented)")
    if as_user.prefix:
        # The launcher is this interpreter; the other user must be able to exec it by that path.
        probe = [*as_user.prefix, "bash", "-c", f'exec "{sys.executable}" -c ""']
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            pytest.skip(f"uid {as_user.owner} cannot run {sys.executable} (in a root-only dir)")
    forked = _bomb(as_user, "landlock")
    assert 0 < forked < LIMIT + 8, forked  # + the user's own tasks counted while it ran


@pytest.mark.skipif(pidlimit.cgroup_parent()[0] is None, reason="no writable pids cgroup here")
@pytest.mark.skipif(not landlock_status()[0], reason="Landlock is not available")
def test_cgroup_ends_setsid_daemons_under_landlock_and_is_removed(victim: Victim) -> None:
    # Landlock has no pid namespace; the per-command cgroup is what ends an escaped daemon.
    marker = f"kcode-daemon-{os.getpid()}-{time.monotonic_ns()}"
    victim.env["KCODE_SANDBOX_BACKEND"] = "landlock"
    victim.write("out.txt", "")
    command = f"setsid sh -c 'exec -a {marker} sleep 30' & echo started > out.txt"
    turns = [
        {"tool_calls": [{"name": "shell", "arguments": {"command": command}}]},
        {"text": "ok"},
    ]
    victim.run(turns, "--approval", "auto", "--sandbox", "workspace-write")
    assert (victim.repo / "out.txt").read_text().strip() == "started"
    wait_until(lambda: not _running(marker), "the sandboxed processes to be gone", 15)


def test_the_shim_joins_the_cgroup_and_release_removes_it() -> None:
    if pidlimit.cgroup_parent()[0] is None:
        pytest.skip(f"no writable pids cgroup here: {pidlimit.cgroup_parent()[1]}")
    before = _cgroups()
    argv = pidlimit.limit_argv(["sh", "-c", "cat /proc/self/cgroup"], "landlock")
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    group = Path(argv[3]).parent
    assert f"/{group.name}" in done.stdout
    assert (group / "pids.max").read_text().strip() == str(pidlimit.pids_max())
    pidlimit.release(argv)
    assert not group.exists() and _cgroups() == before


def test_doctor_names_the_limit() -> None:
    holds, line = pidlimit.status()
    if os.geteuid() == 0 and pidlimit.cgroup_parent()[0] is None:
        assert not holds and "NO process limit" in line
    else:
        assert holds and str(pidlimit.pids_max()) in line


def test_cgroups_of_a_killed_kcode_are_swept() -> None:
    base = pidlimit.cgroup_parent()[0]
    if base is None:
        pytest.skip(f"no writable pids cgroup here: {pidlimit.cgroup_parent()[1]}")
    stale = Path(base) / "kcode-99999999-0"  # no such pid: its kcode was killed
    stale.mkdir()
    pidlimit.cgroup_parent.cache_clear()
    try:
        assert pidlimit.cgroup_parent()[0] == base
        assert not stale.exists()
    finally:
        if stale.exists():
            stale.rmdir()


def _running(marker: str) -> bool:
    return marker in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
