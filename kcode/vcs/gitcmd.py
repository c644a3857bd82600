"""The one way kcode runs git: hardened so that no repository-controlled program ever executes.

kcode's own git calls (checkpoints, undo, worktrees, merges, --auto-commit) run on the host, outside
the sandbox, in a repository an attacker may have written (or a model may have edited .git/config
from inside the sandbox). Every call therefore:

- overrides with `-c` (command-line config wins over every file, includes too) each setting that names
  a program: fsmonitor, hooks, pager, editor, ssh, askpass, credential helpers, gpg signing,
  and every protocol; diff, log and show get --no-ext-diff --no-textconv;
- neutralises every `filter.<name>.*`, `merge.<name>.driver` and `diff.<name>.command/textconv` that
  the effective config defines (read after includes, with the same hardening), since git has no
  switch that turns .gitattributes drivers off;
- drops every GIT_* variable of the environment except the author/committer identity, and sets
  GIT_TERMINAL_PROMPT=0, GIT_NO_REPLACE_OBJECTS=1 and (by default) GIT_LITERAL_PATHSPECS=1, so a file
  named `:(glob)*` or `-x` is just a file name.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HARDENING = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.editor=false",
    "sequence.editor=false",
    "core.askPass=false",
    "core.sshCommand=false",
    "credential.helper=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "push.gpgSign=false",
    "protocol.allow=never",
    "uploadpack.packObjectsHook=false",
    "core.alternateRefsCommand=false",
)
# porcelain commands that would run diff.external / diff.<driver>.command / textconv
_PORCELAIN_DIFF = ("diff", "log", "show")
# identity variables are the user's own choice and run nothing; all other GIT_* are dropped.
_KEPT_ENV = re.compile(r"GIT_(AUTHOR|COMMITTER)_(NAME|EMAIL|DATE)")
# <section>.<subsection>.<key> settings that name a program run for paths (.gitattributes drivers).
_DRIVER_KEY = re.compile(
    r"(filter\..+\.(clean|smudge|process|required)"
    r"|merge\..+\.(driver|recursive)"
    r"|diff\..+\.(command|textconv))",
    re.IGNORECASE | re.DOTALL,
)

# ok_codes for a caller that reads the exit code itself.
ALL_CODES = range(-256, 256)
# git itself blocks forever reading a FIFO named .gitignore; kcode's own git calls are bounded.
GIT_TIMEOUT_S = 60.0
CONFIG_TIMEOUT_S = 10.0  # reading the config is instant unless an include waits on a FIFO


class GitError(Exception):
    """A git command failed; the message names the command and git's own explanation."""


# commit-tree needs an identity; a user (or CI checkout) without one configured must still get
# checkpoints and snapshots. Pass as `env=IDENTITY` to the calls that write commits.
IDENTITY = {
    "GIT_AUTHOR_NAME": "kcode",
    "GIT_AUTHOR_EMAIL": "kcode@localhost",
    "GIT_COMMITTER_NAME": "kcode",
    "GIT_COMMITTER_EMAIL": "kcode@localhost",
}


def git_env(
    extra: dict[str, str] | None = None, *, literal_pathspecs: bool = True
) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GIT_") or _KEPT_ENV.fullmatch(k)
    }
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_NO_REPLACE_OBJECTS": "1", "LC_ALL": "C"})
    if literal_pathspecs:
        env["GIT_LITERAL_PATHSPECS"] = "1"
    env.update(extra or {})
    return env


def _base_args() -> list[str]:
    out = ["git"]
    for setting in HARDENING:
        out += ["-c", setting]
    return out


def _driver_overrides(cwd: Path, env: dict[str, str]) -> list[str]:
    """`-c key=` for every driver setting the effective config holds (includes already followed)."""
    try:
        proc = subprocess.run(
            [*_base_args(), "config", "-z", "--list"],
            cwd=cwd,
            env=env,
            capture_output=True,
            check=False,
            timeout=CONFIG_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        # A FIFO named by `include.path` makes git wait for ever; unread config may hold drivers
        # that run programs, so no git call may go ahead without it.
        raise GitError(
            f"git could not read the repository's config in {CONFIG_TIMEOUT_S:.0f} s in {cwd}: "
            "an include.path names a FIFO or device? Check `git config --show-origin --list`"
        ) from None
    except OSError:
        return []
    out: list[str] = []
    seen: set[str] = set()
    for entry in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        key = entry.split("\n", 1)[0]
        if _DRIVER_KEY.fullmatch(key) and key.lower() not in seen:
            seen.add(key.lower())
            value = "false" if key.lower().endswith(".required") else ""
            out += ["-c", f"{key}={value}"]
    return out


def git_command(
    cwd: Path, args: Sequence[str], env: dict[str, str] | None = None, *, literal: bool = True
) -> tuple[list[str], dict[str, str]]:
    """The full argv and environment for one hardened git call."""
    full_env = git_env(env, literal_pathspecs=literal)
    args = list(args)
    if args and args[0] in _PORCELAIN_DIFF:
        # An empty diff.external makes git try to run "", so the switch is the only safe way.
        args[1:1] = ["--no-ext-diff", "--no-textconv"]
    overrides = _driver_overrides(cwd, full_env)
    return [*_base_args(), *work_tree_args(cwd), *overrides, *args], full_env


def work_tree_args(cwd: Path) -> list[str]:
    """`--work-tree=<the directory holding .git>` for a call run in `cwd`.

    core.worktree (in .git/config, an include, or a `.git` file's gitdir) can name any directory,
    e.g. a parent of the workspace: checkpoints would then snapshot it and undo would delete files
    there. The command line wins over the config, so every call names the work tree kcode found by
    walking up from cwd to the first `.git` (a directory or a worktree's `.git` file)."""
    here = Path(os.path.abspath(cwd))
    for candidate in (here, *here.parents):
        if os.path.lexists(candidate / ".git"):
            return [f"--work-tree={candidate}"]
    return []


def run_git(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    ok_codes: Sequence[int] = (0,),
    literal: bool = True,
    timeout: float | None = GIT_TIMEOUT_S,
    fail_as: Callable[[str], Exception] = GitError,
) -> subprocess.CompletedProcess[bytes]:
    """Run one hardened git command; raise `fail_as(message)` unless its exit code is in `ok_codes`.

    `fail_as` lets a package raise its own error type (CheckpointError, VisualError) without
    wrapping this runner in a private helper of its own."""
    try:
        argv, full_env = git_command(cwd, args, env, literal=literal)
    except GitError as err:
        raise fail_as(str(err)) from None
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=full_env,
            input=input,
            capture_output=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        raise fail_as(
            f"`git {' '.join(args[:3])}` did not finish in {timeout:.0f} s in {cwd}; a FIFO or"
            " device named .gitignore/.gitattributes in the tree makes git wait forever"
        ) from err
    except OSError as err:
        raise fail_as(f"cannot run git: {err}") from err
    if proc.returncode not in ok_codes:
        why = proc.stderr.decode("utf-8", "replace").strip() or f"exit code {proc.returncode}"
        raise fail_as(f"`git {' '.join(args[:3])}` failed in {cwd}: {why}")
    return proc


def git_text(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    literal: bool = True,
    fail_as: Callable[[str], Exception] = GitError,
) -> str:
    """`run_git`'s standard output as text, surrounding whitespace stripped."""
    proc = run_git(cwd, *args, env=env, input=input, literal=literal, fail_as=fail_as)
    return proc.stdout.decode("utf-8", "replace").strip()


async def run_git_async(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    ok_codes: Sequence[int] = (0,),
    literal: bool = True,
    fail_as: Callable[[str], Exception] = GitError,
) -> subprocess.CompletedProcess[bytes]:
    """`run_git` in a worker thread, for the event loop."""
    return await asyncio.to_thread(
        run_git,
        cwd,
        *args,
        env=env,
        input=input,
        ok_codes=ok_codes,
        literal=literal,
        fail_as=fail_as,
    )


@dataclass(frozen=True)
class Git:
    """`run_git` bound to one directory and one error type, for a module that makes many calls.

    `Git(top, fail_as=CheckpointError).text("write-tree", env=env)`; `literal=False` for callers
    that pass pathspec magic on purpose (the visual loop's `:(exclude,glob)`)."""

    cwd: Path
    fail_as: Callable[[str], Exception] = GitError
    literal: bool = True

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: bytes | None = None,
        ok_codes: Sequence[int] = (0,),
    ) -> subprocess.CompletedProcess[bytes]:
        return run_git(
            self.cwd,
            *args,
            env=env,
            input=input,
            ok_codes=ok_codes,
            literal=self.literal,
            fail_as=self.fail_as,
        )

    def text(self, *args: str, env: dict[str, str] | None = None) -> str:
        return git_text(self.cwd, *args, env=env, literal=self.literal, fail_as=self.fail_as)

    async def run_async(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return await asyncio.to_thread(self.run, *args, env=env)

    async def text_async(self, *args: str, env: dict[str, str] | None = None) -> str:
        return await asyncio.to_thread(self.text, *args, env=env)


def _beyond_symlink(work_tree: Path, name: bytes) -> bool:
    """Whether a directory on the way to `name` (relative to `work_tree`) is a symlink."""
    parts = Path(os.fsdecode(name)).parts[:-1]
    return any(os.path.islink(work_tree.joinpath(*parts[: i + 1])) for i in range(len(parts)))


def stage_all_but_secrets(
    work_tree: Path, env: dict[str, str], skip_dirs: frozenset[bytes] = frozenset()
) -> None:
    """`git add -A` of `work_tree` (cwd) into the index of `env`, minus untracked secret files
    (and anything under a directory named in `skip_dirs`, e.g. the fix loop's own `.kcode`).

    The secret files are never hashed, so no .env or private key ends up in .git/objects where a
    sandboxed `git show` could read it. Tracked files are updated as usual, except a tracked secret
    file whose content changed: its index entry (what the repository already holds) is kept and the
    new content is not hashed, so undo neither restores nor overwrites it.
    """
    from kcode.safety.secrets import could_be_secret_name, secret_file_reason

    def is_secret(name: bytes) -> bool:
        if skip_dirs and not skip_dirs.isdisjoint(name.split(b"/")[:-1]):
            return True
        path = work_tree / os.fsdecode(name)
        return (
            could_be_secret_name(path.name)
            and os.path.lexists(path)
            and secret_file_reason(path) is not None
        )

    # Modified or deleted tracked files (stat compared, content hashed in memory only).
    changed = run_git(work_tree, "diff-files", "-z", "--name-only", "--relative", env=env).stdout
    tracked = [name for name in changed.split(b"\0") if name and not is_secret(name)]
    # A tracked file whose directory became a symlink (`mv .claude x; ln -s x .claude`) is gone
    # from git's point of view, and `git add` refuses the path ("beyond a symbolic link").
    hidden = [name for name in tracked if _beyond_symlink(work_tree, name)]
    if hidden:
        tracked = [name for name in tracked if name not in set(hidden)]
        run_git(
            work_tree,
            "update-index",
            "--force-remove",
            "-z",
            "--stdin",
            env=env,
            input=b"\0".join(hidden) + b"\0",
        )
    if tracked:
        run_git(
            work_tree,
            "add",
            "-u",
            "--ignore-errors",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            env=env,
            input=b"\0".join(tracked) + b"\0",
        )
    listing = run_git(
        work_tree, "ls-files", "-z", "--others", "--exclude-standard", "--", ".", env=env
    ).stdout
    keep = [name for name in listing.split(b"\0") if name and not is_secret(name)]
    if keep:
        run_git(
            work_tree,
            "add",
            "-A",
            "--ignore-errors",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            env=env,
            input=b"\0".join(keep) + b"\0",
        )


def holds(top: str | Path, path: Path) -> bool:
    """Whether the work tree git reports (`--show-toplevel`) really holds `path`.

    A hostile `core.worktree` (or `.git` file) makes git report another directory, e.g. the user's
    home; checkpoints and undo there would overwrite and delete files outside the workspace.
    """
    real_top = Path(os.path.realpath(top))
    real_path = Path(os.path.realpath(path))
    return real_path == real_top or real_top in real_path.parents
