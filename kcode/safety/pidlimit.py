"""A limit on the number of processes a sandboxed command may create (a fork bomb must not take
the machine down).

Two mechanisms, the first that holds here is used:

* **A pids cgroup** (cgroup v2 with the `pids` controller available, or the cgroup v1 `pids`
  hierarchy) that kcode can write: one child cgroup per command with `pids.max` set. The command
  joins it before it starts (a tiny `sh` shim writes to `cgroup.procs`, then execs), so everything
  it forks is counted, whatever its uid. This is the only mechanism that holds for root. When the
  command ends, whatever is still in the cgroup (a `setsid` daemon under the Landlock backend) is
  killed and the cgroup removed.
* **RLIMIT_NPROC** for a user other than root. The kernel counts it per user (per user namespace
  level), and exempts uid 0 of the initial namespace even inside a user namespace, so it never holds
  for root. Under bubblewrap it is set *inside* the new user namespace, where only the sandbox's own
  processes count; under Landlock (no user namespace) it is the user's current task count plus the
  budget.

Where neither holds — kcode runs as root and no pids cgroup is writable (e.g. a container with a
read-only /sys/fs/cgroup) — there is no limit; `kcode doctor` says so (status()).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import time
from pathlib import Path

PIDS_MAX_ENV = "KCODE_SANDBOX_PIDS_MAX"
DEFAULT_PIDS_MAX = 2048  # tasks (threads count): room for parallel builds, far from pid_max
_SHIM_MARK = "kcode-pids"
_JOIN_SCRIPT = 'echo 0 > "$0" || exit 125; exec "$@"'
_counter = itertools.count()
_created: dict[str, Path] = {}  # cgroup.procs path -> cgroup directory, for release()


def pids_max() -> int:
    raw = os.environ.get(PIDS_MAX_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return DEFAULT_PIDS_MAX


def _mounts() -> tuple[Path | None, Path | None]:
    """(cgroup2 mount point, cgroup v1 mount point of the pids hierarchy)."""
    v2 = v1 = None
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup2" and v2 is None:
            v2 = Path(fields[1])
        elif fields[2] == "cgroup" and "pids" in fields[3].split(",") and v1 is None:
            v1 = Path(fields[1])
    return v2, v1


def _own_cgroups() -> tuple[str | None, str | None]:
    """(our cgroup v2 path, our pids v1 path), relative to their hierarchy roots."""
    v2 = v1 = None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        ident, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if ident == "0" and controllers == "":
            v2 = path
        elif "pids" in controllers.split(","):
            v1 = path
    return v2, v1


@functools.lru_cache(maxsize=1)
def cgroup_parent() -> tuple[Path | None, str]:
    """(a directory under which kcode can create pids-limited cgroups, or None; why not)."""
    mount2, mount1 = _mounts()
    own2, own1 = _own_cgroups()
    whys: list[str] = []
    if mount2 is not None and own2 is not None:
        base = mount2 / own2.lstrip("/")
        try:
            if "pids" not in (base / "cgroup.controllers").read_text().split():
                raise OSError("the pids controller is not available in our cgroup v2")
            if "pids" not in (base / "cgroup.subtree_control").read_text().split():
                # pids is a threaded controller: enabling it needs no empty parent.
                (base / "cgroup.subtree_control").write_text("+pids")
            if _probe(base):
                return base, ""
        except OSError as err:
            whys.append(f"cgroup v2 at {base}: {err.strerror or err}")
    if mount1 is not None and own1 is not None:
        base = mount1 / own1.lstrip("/")
        try:
            if _probe(base):
                return base, ""
        except OSError as err:
            whys.append(f"cgroup v1 pids at {base}: {err.strerror or err}")
    if not whys:
        whys.append("no pids cgroup controller is mounted")
    return None, "; ".join(whys)


def _probe(base: Path) -> bool:
    """Create, limit and remove a child cgroup; raises OSError when that is not allowed."""
    _sweep(base)
    probe = base / f"kcode-probe-{os.getpid()}"
    probe.mkdir()
    try:
        (probe / "pids.max").write_text("1")
        return (probe / "pids.max").read_text().strip() == "1"
    finally:
        probe.rmdir()


def _sweep(base: Path) -> None:
    """Remove the empty cgroups a killed kcode left behind (kcode-<pid>-<n>, pid gone)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            parts = entry.name.split("-")
            ours = len(parts) == 3 and parts[0] == "kcode" and parts[1].isdigit()
            if ours and not os.path.exists(f"/proc/{parts[1]}"):
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)  # fails while a process is still inside


def _is_init_root() -> bool:
    # RLIMIT_NPROC is not enforced for the initial namespace's root (nor with CAP_SYS_RESOURCE).
    return os.getuid() == 0


def status() -> tuple[bool, str]:
    """(a limit holds, a one-line description) for `kcode doctor`."""
    base, why = cgroup_parent()
    if base is not None:
        return True, f"pids cgroup under {base} (pids.max {pids_max()})"
    if not _is_init_root():
        return True, f"RLIMIT_NPROC ({pids_max()} processes); no writable pids cgroup: {why}"
    return False, f"NO process limit: kcode runs as root and {why}"


def user_task_count() -> int:
    """Tasks (threads) whose real uid is ours: what RLIMIT_NPROC counts outside a user ns."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def limit_argv(argv: list[str], backend: str) -> list[str]:
    """argv (the sandbox launcher + command) wrapped so that the pids limit applies.

    backend "bwrap": the RLIMIT_NPROC form goes inside, after bwrap made the user namespace, so it
    is spliced in after the `--` that ends bwrap's options."""
    base, _ = cgroup_parent()
    limit = pids_max()
    if base is not None:
        group = base / f"kcode-{os.getpid()}-{next(_counter)}"
        group.mkdir()
        (group / "pids.max").write_text(str(limit))
        procs = str(group / "cgroup.procs")
        _created[procs] = group
        return ["/bin/sh", "-c", _JOIN_SCRIPT, procs, *argv]
    if _is_init_root():
        return argv  # nothing holds; status() reports it
    if backend == "bwrap" and "--" in argv:
        cut = argv.index("--") + 1
        return [*argv[:cut], *_ulimit_shim(limit), *argv[cut:]]
    return [*_ulimit_shim(user_task_count() + limit), *argv]


def _ulimit_shim(limit: int) -> list[str]:
    # bash's `ulimit -u` sets the soft and the hard limit: the command cannot raise it again.
    return ["bash", "-c", f'ulimit -u {limit} || exit 125; exec "$@"', _SHIM_MARK]


def release(argv: list[str]) -> None:
    """After the command: kill what is left in its cgroup (setsid'd daemons) and remove it."""
    if len(argv) < 4 or argv[:3] != ["/bin/sh", "-c", _JOIN_SCRIPT]:
        return
    group = _created.pop(argv[3], None)
    if group is None:
        return
    for _ in range(100):
        try:
            members = (group / "cgroup.procs").read_text().split()
        except OSError:
            return
        if not members:
            break
        for pid in members:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.01)
    with contextlib.suppress(OSError):
        group.rmdir()
