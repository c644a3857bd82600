"""The sandbox for `shell` and `run_tests`: bubblewrap around the command, else Landlock.

Backends, in order: bubblewrap when installed and able to start; else Landlock applied in the child
by the kcode.safety.landlock launcher (no privileges needed, but no private /tmp and no secret-file
masking, see that module); else none. KCODE_SANDBOX_BACKEND=bwrap|landlock forces one (for tests).

Modes: `workspace-write` — the whole file system is read-only except the workspace (and --add-dir
directories), `.git` stays read-only, /tmp is a private tmpfs, and there is no network unless
`allow_network`; `read-only` — no writes anywhere but the private /tmp; `off` — nothing.

When no sandbox is configured the default is `workspace-write` if a backend can actually start here
(containers often forbid the namespaces bwrap needs) and `off` otherwise. A sandbox that was asked for
explicitly but cannot start is an error (exit 2): kcode never silently runs such commands unsandboxed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from kcode.safety import landlock, pidlimit, placeholder_journal
from kcode.safety.secrets import secret_file_reason
from kcode.tools.base import ToolContext, ToolError

if TYPE_CHECKING:
    from kcode.config.loader import Config

PROBE_TIMEOUT_S = 10.0
BACKEND_ENV = "KCODE_SANDBOX_BACKEND"
_SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", "target", "dist", "build"}


class SandboxUnavailable(ToolError):
    """A sandbox was asked for but cannot start; the command is not run."""


@functools.lru_cache(maxsize=1)
def bwrap_status() -> tuple[str | None, str]:
    """(path to a working bwrap, or None; why not)."""
    path = shutil.which("bwrap")
    if path is None:
        return None, "bubblewrap is not installed (apt-get install bubblewrap)"
    probe = [path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net"]
    try:
        done = subprocess.run(
            [*probe, "--unshare-pid", "--die-with-parent", "true"],
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"bubblewrap at {path} cannot start: {err}"
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
        return None, (
            f"bubblewrap at {path} cannot start here ({why}); user namespaces are probably "
            "disabled (e.g. in a container without --privileged or sysctl "
            "kernel.unprivileged_userns_clone=0)"
        )
    return path, ""


@functools.lru_cache(maxsize=1)
def landlock_status() -> tuple[int, str]:
    """(Landlock ABI version, or 0; why not)."""
    try:
        abi = landlock.abi_version()
    except OSError as err:
        return 0, f"Landlock cannot be probed: {err}"
    if abi < 1:
        return 0, "Landlock is not available in this kernel (or disabled at boot)"
    return abi, ""


def active_backend() -> tuple[str | None, str]:
    """("bwrap" or "landlock", where/what) for the backend to use, or (None, why none can start)."""
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced not in ("", "bwrap", "landlock"):
        return None, f"{BACKEND_ENV}={forced!r} is not a sandbox backend (use bwrap or landlock)"
    whys: list[str] = []
    if forced in ("", "bwrap"):
        bwrap, why = bwrap_status()
        if bwrap is not None:
            return "bwrap", bwrap
        whys.append(why)
    if forced in ("", "landlock"):
        abi, why = landlock_status()
        if abi:
            return "landlock", f"ABI {abi}"
        whys.append(why)
    return None, "; ".join(whys)


def default_mode() -> str:
    return "workspace-write" if active_backend()[0] else "off"


def effective_mode(configured: str | None) -> str:
    """The mode to run with; raises SandboxUnavailable when an explicit sandbox cannot start."""
    if configured is None:
        return default_mode()
    backend, why = active_backend()
    if configured != "off" and backend is None:
        raise SandboxUnavailable(
            f"--sandbox {configured} was asked for, but {why}. Install or enable bubblewrap "
            "(or a kernel with Landlock), or run with --sandbox off to accept running commands "
            "unsandboxed."
        )
    return configured


# The user's credential stores, hidden from sandboxed commands (relative to $HOME).
HOME_SECRETS = (
    ".ssh", ".aws", ".gnupg", ".config/kcode", ".kube", ".docker", ".netrc", ".git-credentials",
    ".config/gh", ".npmrc", ".pypirc", ".local/share/kcode", ".config/gcloud", ".azure",
    ".pgpass", ".password-store", ".vault-token", ".terraform.d", ".config/hub",
)  # fmt: skip
# Inside the writable workspace, re-bound read-only: history and kcode's own/agent config.
READ_ONLY_IN_WORKSPACE = landlock.READ_ONLY_IN_WORKSPACE  # .git, .kcode, .claude, .agents, ...


def bwrap_argv(
    bwrap: str,
    mode: str,
    root: Path,
    extra_dirs: tuple[Path, ...],
    allow_network: bool,
    allow_secrets: bool = False,
) -> list[str]:
    """The bwrap prefix. Every namespace is new (pid, ipc, uts, cgroup, user where possible, and
    net unless allow_network), all capabilities are dropped (kcode may run as root), the command
    gets a new session (no TIOCSTI into the user's terminal), and bwrap stays pid 1 of the pid
    namespace with --die-with-parent: when kcode kills bwrap, the kernel kills everything in the
    namespace, setsid'd daemons included. / is read-only; /proc, /dev, /tmp, /run are fresh, which
    also hides the user's tmux/ssh-agent/dbus/docker sockets. Bind mounts are nosuid."""
    args = [bwrap, "--unshare-all"]
    if allow_network:
        args.append("--share-net")
    args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for runtime in _runtime_dirs():
        args += ["--tmpfs", runtime]
    # The private /tmp would hide tools that live under /tmp (a checkout's .venv on PATH, this
    # interpreter): show those again, read-only.
    for shown in visible_under_tmp():
        args += ["--ro-bind", shown, shown]
    writable = mode == "workspace-write"
    bind = "--bind" if writable else "--ro-bind"
    # After the /tmp tmpfs, so a workspace under /tmp is visible (and writable when allowed).
    for directory in (root, *extra_dirs):
        args += [bind, str(directory), str(directory)]
    if writable:
        placeholder_journal.sweep_once()  # the placeholders a killed kcode left behind
        for directory in (root, *extra_dirs):
            for name in READ_ONLY_IN_WORKSPACE:
                kept = directory / name
                if kept.exists() and not kept.is_symlink():
                    args += ["--ro-bind", str(kept), str(kept)]
                elif not os.path.lexists(kept):
                    args += placeholder_args(kept)
    if not allow_secrets:
        for secret in find_secret_files((root, *extra_dirs)):
            args += ["--ro-bind", "/dev/null", str(secret)]  # reads as empty, cannot be replaced
        for hidden in home_secrets():
            if hidden.is_dir():
                args += ["--tmpfs", str(hidden)]
            else:
                args += ["--ro-bind", "/dev/null", str(hidden)]
        config = redacted_git_config(root)
        if config is not None:
            args += ["--ro-bind", str(config), str(root / ".git" / "config")]
    args += ["--chdir", str(root)]
    return args


def _runtime_dirs() -> list[str]:
    """Directories holding the user's live sockets (tmux, ssh-agent, dbus, docker): hidden."""
    found: list[str] = []
    candidates = ["/run", "/var/run", os.environ.get("XDG_RUNTIME_DIR", "")]
    sock = os.environ.get("SSH_AUTH_SOCK", "")
    if sock:
        candidates.append(os.path.dirname(sock))
    for entry in candidates:
        if not entry or os.path.islink(entry) or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if real in ("/", "/tmp") or any(real == f or real.startswith(f + "/") for f in found):
            continue
        if real.startswith("/tmp/"):
            continue  # under the private /tmp already
        found.append(real)
    return found


def home_secrets() -> list[Path]:
    """The existing credential stores in $HOME and in the account's home directory."""
    import pwd

    homes = {Path(os.path.expanduser("~"))}
    with contextlib.suppress(KeyError):
        homes.add(Path(pwd.getpwuid(os.getuid()).pw_dir))
    found: list[Path] = []
    for home in sorted(homes):
        for rel in HOME_SECRETS:
            path = home / rel
            if path.exists() and not path.is_symlink():
                found.append(path)
    return found


def redacted_git_config(root: Path) -> Path | None:
    """A copy of root's .git/config with URL credentials replaced, when it holds any; the sandbox
    shows it in place of the real one (git in the sandbox still works, the token is gone)."""
    from kcode.safety.secrets import git_config_secrets, redact

    config = root / ".git" / "config"
    secrets = git_config_secrets(root)
    if not secrets or not config.is_file():
        return None
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
        copy = Path(landlock.private_temp_dir(str(root))) / "git-config-redacted"
        copy.write_text(redact(text, secrets), encoding="utf-8")
    except OSError:
        return None
    return copy


def visible_under_tmp() -> list[str]:
    """Directories below /tmp that sandboxed commands need: PATH entries (a virtualenv whole, so
    its interpreter finds its packages) and this Python's own prefixes."""
    import sys

    wanted: set[str] = set()
    candidates = [*os.environ.get("PATH", "").split(os.pathsep), sys.prefix, sys.exec_prefix]
    for entry in candidates:
        if not entry:
            continue
        path = Path(os.path.realpath(entry))
        if not path.is_relative_to("/tmp") or path == Path("/tmp") or not path.is_dir():
            continue
        if path.name == "bin" and (path.parent / "pyvenv.cfg").is_file():
            path = path.parent
        wanted.add(str(path))
    return sorted(wanted)


def find_secret_files(roots: tuple[Path, ...], depth: int = 8) -> list[Path]:
    """Secret files in the workspace (.env at any depth, keys), hidden from sandboxed commands."""
    found: list[Path] = []

    def walk(directory: Path, level: int) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if level < depth and entry.name not in _SKIP_DIRS:
                    walk(Path(entry.path), level + 1)
            elif entry.is_file(follow_symlinks=False) and secret_file_reason(Path(entry.path)):
                found.append(Path(entry.path))

    for root in roots:
        walk(root, 0)
    return found


def wrap_command(argv: list[str], ctx: ToolContext) -> list[str]:
    """Called by kcode.tools.process for ctx.sandbox != "off"."""
    if ctx.sandbox == "off":
        return argv
    if ctx.sandbox not in ("workspace-write", "read-only"):
        raise SandboxUnavailable(f"unknown sandbox mode {ctx.sandbox!r}")
    backend, detail = active_backend()
    if backend is None:
        raise SandboxUnavailable(
            f"the {ctx.sandbox} sandbox cannot start ({detail}); the command was not run"
        )
    if backend == "landlock":
        extra = [str(d) for d in ctx.extra_dirs]
        wrapped = landlock.launcher_argv(argv, ctx.sandbox, str(ctx.root), extra, ctx.allow_network)
    else:
        prefix = bwrap_argv(
            detail, ctx.sandbox, ctx.root, ctx.extra_dirs, ctx.allow_network, ctx.allow_secrets
        )
        wrapped = [*prefix, "--", *argv]
    try:
        return pidlimit.limit_argv(wrapped, backend)  # a fork bomb stops at pids.max
    except OSError as err:
        raise SandboxUnavailable(f"the process limit cannot be set up ({err}); not run") from err


def describe_sandbox(config: Config) -> tuple[bool, str]:
    """For `kcode doctor`: which sandbox `shell` and `run_tests` will run in."""
    backend, detail = active_backend()
    configured = getattr(config, "sandbox", None)
    network = "network allowed" if getattr(config, "allow_network", False) else "no network"
    if backend is None:
        if configured in ("workspace-write", "read-only"):
            return False, f"--sandbox {configured} is configured but {detail}; commands will refuse"
        return False, f"no sandbox: {detail}; shell commands run unsandboxed"
    name = f"bubblewrap at {detail}" if backend == "bwrap" else f"Landlock ({detail})"
    mode = configured or default_mode()
    if mode == "off":
        return True, f"{name} works, but the sandbox is off (--sandbox off)"
    source = "" if configured else " (default)"
    limit = pidlimit.status()[1]
    if backend == "bwrap":
        return True, f"bubblewrap {mode}{source} at {detail}, {network}; {limit}"
    if not getattr(config, "allow_network", False) and landlock_status()[0] < 4:
        network = "network NOT blocked (Landlock ABI < 4)"
    forced = os.environ.get(BACKEND_ENV, "").strip().lower() == "landlock"
    why = f"forced by {BACKEND_ENV}" if forced else "bubblewrap unavailable"
    return True, f"Landlock {mode}{source} ({detail}, {why}), {network}; {limit}"


# A control dir/file that does not exist yet would be creatable by the command (a planted
# `.kcode/hooks.json` or `.mcp.json` runs outside the sandbox in the next trusted session). So
# it is covered by an empty read-only mount; bwrap creates the mount point (an empty dir, or an
# empty file for .mcp.json) on the real filesystem, and release_placeholders removes it when the
# last command using it ends (counted: concurrent commands share one mount point).
_PLACEHOLDERS: dict[str, int] = {}


@functools.cache
def _empty_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="kcode-empty-")  # 0700, stays empty, bound read-only


def placeholder_args(path: Path) -> list[str]:
    source = "/dev/null" if path.name == ".mcp.json" else _empty_dir()
    _PLACEHOLDERS[str(path)] = _PLACEHOLDERS.get(str(path), 0) + 1
    placeholder_journal.record(_PLACEHOLDERS)  # before bwrap creates it: a kill -9 cannot leak it
    return ["--ro-bind", source, str(path)]


def release_placeholders(argv: list[str]) -> None:
    """After a bwrap command: remove the mount points placeholder_args made, if still empty."""
    for i, arg in enumerate(argv[:-2]):
        target = argv[i + 2]
        if arg != "--ro-bind" or target not in _PLACEHOLDERS:
            continue
        _PLACEHOLDERS[target] -= 1
        if _PLACEHOLDERS[target] > 0:
            continue
        del _PLACEHOLDERS[target]
        with contextlib.suppress(OSError):  # not empty: someone put something there; keep it
            info = os.lstat(target)
            if stat.S_ISDIR(info.st_mode):
                os.rmdir(target)
            elif stat.S_ISREG(info.st_mode) and info.st_size == 0:
                os.unlink(target)
    placeholder_journal.record(_PLACEHOLDERS)
