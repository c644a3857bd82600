"""The Landlock sandbox: a launcher that restricts itself, then execs the command.

Used by kcode.safety.sandbox when bubblewrap is missing or cannot start (containers often forbid the user
namespaces bwrap needs, while Landlock needs no privilege at all). Run as

    python -I -m kcode.safety.landlock --workspace W [--add-dir D]... --mode M [--allow-network] -- CMD...

The launcher sets no_new_privs, applies a Landlock ruleset to itself and execs CMD, which inherits
the restriction (and so does everything it starts). Reads are allowed everywhere; writes only:

* `workspace-write`: inside the workspace and the --add-dir directories, but never inside `.git`
  (nor `.kcode`, `.claude`, `.agents`, `.kimi-code`, `.mcp.json`: READ_ONLY_IN_WORKSPACE).
  Landlock rules grant rights on a whole tree and cannot carve a read-only hole in it, so when a
  directory holds `.git` (or one of the others) the rights are granted on each of its top-level entries except `.git`
  (and except symlinks, which could point anywhere): everything below them is writable and existing
  top-level files can be rewritten in place, but top-level entries cannot be created, removed or
  renamed (creating one would need a right on the directory itself, which `.git` would inherit).
  Entries are listed when each command starts, so one created by kcode's own file tools is
  writable by the next command. A directory without `.git` is granted whole.
* `read-only`: nowhere in the workspace.
* Always: a private temp directory (per user and workspace, exported as TMPDIR) and the harmless
  character devices (/dev/null, /dev/tty, ...). Unlike bubblewrap there is no private /tmp, so a
  command writing to a fixed /tmp path is refused.

With ABI >= 4 TCP bind and connect are refused unless --allow-network, and a seccomp filter
(kcode/safety/seccomp.py) refuses every IPv4/IPv6 socket, UDP included (Unix sockets stay allowed); with ABI >= 6 signals and abstract Unix sockets are scoped to the sandbox.
Landlock cannot hide single files from reads, so the secret-file masking bubblewrap does is absent.

Everything here is standard library + ctypes so the launcher starts fast and needs no build step.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Sequence

# Generic syscall numbers (the same on x86_64 and aarch64).
SYS_CREATE_RULESET = 444
SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAP_LAST_CAP_MAX = 63
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
CAPABILITY_VERSION_3 = 0x20080522

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2: without it handled, moving a file to another directory is refused
FS_TRUNCATE = 1 << 14  # ABI 3
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

# The rights that may be granted on a regular file (directory rights on a file are EINVAL).
FILE_WRITE_RIGHTS = FS_WRITE_FILE | FS_TRUNCATE
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", "/dev/pts")
REFUSED_EXIT = 125  # the launcher could not restrict itself; the command was not run


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockError(OSError):
    """Landlock is missing or refused the ruleset."""


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable or disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(int(version), 0)


def write_rights(abi: int) -> int:
    rights = (
        FS_WRITE_FILE
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_CHAR
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_BLOCK
        | FS_MAKE_SYM
    )
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    return rights


# Never writable by a sandboxed command: git's and the agents' control files (hooks, MCP servers,
# skills, commands, agent roles), which a later run executes or trusts.
READ_ONLY_IN_WORKSPACE = (".git", ".kcode", ".mcp.json", ".claude", ".agents", ".kimi-code")


def writable_paths(mode: str, dirs: Sequence[str]) -> list[str]:
    """The trees a command may write to, apart from the temp dir and devices."""
    if mode != "workspace-write":
        return []
    # Always entry by entry: Landlock cannot grant a directory minus some names, and granting the
    # root itself would let a command create a missing `.kcode/hooks.json` or `.mcp.json` that a
    # later run trusts. The cost: new files go into existing top-level directories, not the root.
    paths: list[str] = []
    for directory in dirs:
        with os.scandir(directory) as entries:
            paths += [
                e.path
                for e in entries
                if e.name not in READ_ONLY_IN_WORKSPACE and not e.is_symlink()
            ]
    return paths


def private_temp_dir(workspace: str) -> str:
    """A temp directory only this user can use, stable per workspace so it is not leaked per call."""
    digest = hashlib.sha256(workspace.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"kcode-sandbox-{os.getuid()}-{digest}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        info = os.lstat(path)
        mine = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
        if not mine or stat.S_IMODE(info.st_mode) & 0o077:
            return tempfile.mkdtemp(prefix="kcode-sandbox-")  # squatted: never reuse it
    return path


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"{what}: {os.strerror(err)}")
    return result


def _allow(ruleset_fd: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return  # gone or unreadable: nothing to grant
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_WRITE_RIGHTS
        attr = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        _check(
            _libc().syscall(
                SYS_ADD_RULE, ruleset_fd, RULE_PATH_BENEATH, ctypes.byref(attr), ctypes.c_uint32(0)
            ),
            f"landlock_add_rule({path})",
        )
    finally:
        os.close(fd)


def drop_capabilities() -> None:
    """Drop every capability (kcode may run as root): the bounding set, ambient, then
    effective/permitted/inheritable. With no_new_privs a setuid binary cannot regain any."""
    libc = _libc()
    for cap in range(CAP_LAST_CAP_MAX + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            if err == 22:  # EINVAL: past the kernel's last capability
                break
            if err != 1:  # EPERM: we had no CAP_SETPCAP, so there was nothing to drop
                raise LandlockError(err, f"PR_CAPBSET_DROP({cap}): {os.strerror(err)}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    number = SYS_CAPSET.get(os.uname().machine)
    if number is None:
        return
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable}, all zero
    _check(libc.syscall(number, ctypes.byref(header), ctypes.byref(data)), "capset")


def restrict_self(mode: str, dirs: Sequence[str], temp_dir: str, allow_network: bool) -> int:
    """Apply the sandbox to this process and its future children; returns the ABI used."""
    abi = abi_version()
    if abi < 1:
        raise LandlockError(0, "Landlock is not available in this kernel (or is disabled)")
    rights = write_rights(abi)
    attr = _RulesetAttr(handled_access_fs=rights)
    size = 8  # the struct grew over ABI versions; pass only what this kernel knows
    if abi >= 4:
        size = 16
        if not allow_network:
            attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
    if abi >= 6:
        size = 24
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    libc = _libc()
    ruleset_fd = _check(
        libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
        "landlock_create_ruleset",
    )
    try:
        for path in [*writable_paths(mode, dirs), temp_dir]:
            _allow(ruleset_fd, path, rights)
        for device in DEVICES:
            _allow(ruleset_fd, device, FS_WRITE_FILE)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(libc.syscall(SYS_RESTRICT_SELF, ruleset_fd, ctypes.c_uint32(0)), "restrict_self")
        drop_capabilities()
        if not allow_network:  # UDP too: no IPv4/IPv6 socket at all (kcode.safety.seccomp)
            from kcode.safety.seccomp import deny_inet_sockets

            deny_inet_sockets()
    finally:
        os.close(ruleset_fd)
    return abi


def launcher_argv(
    argv: Sequence[str],
    mode: str,
    workspace: str,
    extra_dirs: Sequence[str],
    allow_network: bool,
) -> list[str]:
    """The argv that runs `argv` under this launcher. -I: the workspace cannot shadow kcode."""
    args = [sys.executable, "-I", "-m", "kcode.safety.landlock", "--workspace", workspace]
    for directory in extra_dirs:
        args += ["--add-dir", directory]
    args += ["--mode", mode]
    if allow_network:
        args.append("--allow-network")
    return [*args, "--", *argv]


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kcode.safety.landlock", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--add-dir", action="append", default=[])
    parser.add_argument("--mode", choices=("workspace-write", "read-only"), required=True)
    parser.add_argument("--allow-network", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(args)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("no command given after --")
    try:
        temp_dir = private_temp_dir(options.workspace)
        restrict_self(
            options.mode, [options.workspace, *options.add_dir], temp_dir, options.allow_network
        )
    except OSError as err:
        sys.stderr.write(f"kcode sandbox: Landlock could not be applied ({err}); not run\n")
        return REFUSED_EXIT
    os.environ.update({"TMPDIR": temp_dir, "TMP": temp_dir, "TEMP": temp_dir})
    try:
        os.execvp(command[0], command)
    except OSError as err:
        sys.stderr.write(f"kcode sandbox: cannot run {command[0]}: {err}\n")
        return 127
    return 0  # not reached: execvp replaced this process


if __name__ == "__main__":
    sys.exit(main())
