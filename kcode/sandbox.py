"""The sandbox for `shell` and `run_tests`: bubblewrap around the command.

Modes: `workspace-write` — the whole file system is read-only except the workspace (and --add-dir
directories), `.git` stays read-only, /tmp is a private tmpfs, and there is no network unless
`allow_network`; `read-only` — no writes anywhere but the private /tmp; `off` — nothing.

When no sandbox is configured the default is `workspace-write` if bubblewrap can actually start here
(containers often forbid the namespaces it needs) and `off` otherwise. A sandbox that was asked for
explicitly but cannot start is an error (exit 2): kcode never silently runs such commands unsandboxed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from kcode.secrets import secret_file_reason
from kcode.tools.base import ToolContext, ToolError

PROBE_TIMEOUT_S = 10.0
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


def default_mode() -> str:
    return "workspace-write" if bwrap_status()[0] else "off"


def effective_mode(configured: str | None) -> str:
    """The mode to run with; raises SandboxUnavailable when an explicit sandbox cannot start."""
    if configured is None:
        return default_mode()
    if configured != "off" and bwrap_status()[0] is None:
        raise SandboxUnavailable(
            f"--sandbox {configured} was asked for, but {bwrap_status()[1]}. Install or enable "
            "bubblewrap, or run with --sandbox off to accept running commands unsandboxed."
        )
    return configured


def bwrap_argv(
    bwrap: str,
    mode: str,
    root: Path,
    extra_dirs: tuple[Path, ...],
    allow_network: bool,
    allow_secrets: bool = False,
) -> list[str]:
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    # No --unshare-pid: its namespace-init helper can survive a process-group kill that lands
    # while bwrap is still starting, leaving an orphan; the group kill covers every child here.
    args += ["--die-with-parent", "--unshare-ipc", "--unshare-uts"]
    if not allow_network:
        args.append("--unshare-net")
    writable = mode == "workspace-write"
    bind = "--bind" if writable else "--ro-bind"
    # After the /tmp tmpfs, so a workspace under /tmp is visible (and writable when allowed).
    for directory in (root, *extra_dirs):
        args += [bind, str(directory), str(directory)]
    if writable:
        for directory in (root, *extra_dirs):
            git = directory / ".git"
            if git.exists():
                args += ["--ro-bind", str(git), str(git)]
    if not allow_secrets:
        for secret in find_secret_files((root, *extra_dirs)):
            args += ["--ro-bind", "/dev/null", str(secret)]  # reads as empty, cannot be replaced
    args += ["--chdir", str(root)]
    return args


def find_secret_files(roots: tuple[Path, ...], depth: int = 2) -> list[Path]:
    """Secret files near the top of the workspace (.env, keys), hidden from sandboxed commands."""
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
    bwrap, why = bwrap_status()
    if bwrap is None:
        raise SandboxUnavailable(
            f"the {ctx.sandbox} sandbox cannot start ({why}); the command was not run"
        )
    prefix = bwrap_argv(
        bwrap, ctx.sandbox, ctx.root, ctx.extra_dirs, ctx.allow_network, ctx.allow_secrets
    )
    return [*prefix, "--", *argv]


def describe_sandbox(config: Any) -> tuple[bool, str]:
    """For `kcode doctor`: which sandbox `shell` and `run_tests` will run in."""
    bwrap, why = bwrap_status()
    configured = getattr(config, "sandbox", None)
    network = "network allowed" if getattr(config, "allow_network", False) else "no network"
    if bwrap is None:
        if configured in ("workspace-write", "read-only"):
            return False, f"--sandbox {configured} is configured but {why}; commands will refuse"
        return False, f"no sandbox: {why}; shell commands run unsandboxed"
    mode = configured or default_mode()
    if mode == "off":
        return True, f"bubblewrap at {bwrap} works, but the sandbox is off (--sandbox off)"
    source = "" if configured else " (default)"
    return True, f"bubblewrap {mode}{source} at {bwrap}, {network}"
