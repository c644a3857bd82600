"""Path confinement at the moment of use, shared by every file tool.

`ToolContext.resolve` checks a path with realpath, but a directory can be swapped for a symlink after
that check. So every open, write and delete walks from a descriptor of the allowed root, one component
at a time, with O_NOFOLLOW: a symlink that appears later makes the walk fail instead of leaving the
workspace. Files are opened with O_NONBLOCK and fstat'ed, so FIFOs, sockets and devices are refused
instead of hanging; files with more than one hard link are refused (the other link may be outside);
reads are capped. Writes into `.git` and into kcode's own control files are refused
(`check_writable`), because a later run (or git) would trust what a prompt-injected model put there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from kcode.tools.base import ToolError

O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_DIR_FLAGS = O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# edit_file / apply_patch / write_file load the whole file; bigger files are refused.
MAX_EDIT_BYTES = 10 * 1024 * 1024


def _root_of(path: Path, roots: Iterable[Path]) -> Path:
    best: Path | None = None
    for root in roots:
        if (path == root or path.is_relative_to(root)) and (
            best is None or len(root.parts) > len(best.parts)
        ):
            best = root
    if best is None:
        raise ToolError(f"{path} is outside the workspace; nothing was done")
    return best


def open_parent(path: Path, roots: Iterable[Path], create: bool = False) -> int:
    """An O_PATH descriptor of `path`'s parent directory, reached without following any symlink.

    `path` is absolute and already resolved (ctx.resolve). With `create`, missing directories are
    made on the way (mkdir relative to the pinned descriptor, so they land where they were meant to).
    """
    root = _root_of(path, roots)
    if path == root:
        raise ToolError(f"{path} is a directory, not a file")
    fd = os.open(root, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in path.relative_to(root).parts[:-1]:
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except (NotADirectoryError, OSError) as err:
                if isinstance(err, FileNotFoundError | PermissionError):
                    raise
                raise ToolError(
                    f"{path}: the path component {name!r} is not a plain directory (a symlink "
                    "swapped in, or a file); refused so nothing outside the workspace is touched"
                ) from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


LIST_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_dir(path: Path, roots: Iterable[Path]) -> int:
    """A listable descriptor of the directory `path`, reached without following any symlink
    (for walks: glob, grep; continue them with os.open(name, LIST_DIR_FLAGS, dir_fd=...))."""
    root = _root_of(path, roots)
    if path == root:
        return os.open(root, LIST_DIR_FLAGS & ~os.O_NOFOLLOW)
    parent = open_parent(path, roots)
    try:
        return os.open(path.name, LIST_DIR_FLAGS, dir_fd=parent)
    except OSError as err:
        if isinstance(err, FileNotFoundError | PermissionError):
            raise
        raise ToolError(
            f"{path} is not a plain directory (a symlink swapped in?); refused"
        ) from None
    finally:
        os.close(parent)


def _check_regular(st: os.stat_result, shown: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"{shown} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a device"
        )
        raise ToolError(f"{shown} is {kind}, not a regular file; the file tools only handle files")
    if st.st_nlink > 1:
        raise ToolError(
            f"{shown} has {st.st_nlink} hard links; kcode does not read or write hard-linked files "
            "(another link may be a file outside the workspace)"
        )


def open_file(path: Path, roots: Iterable[Path], shown: str | None = None) -> int:
    """A read descriptor of a regular, singly linked file at `path`; ToolError otherwise."""
    shown = shown or str(path)
    parent = open_parent(path, roots)
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(path.name, flags, dir_fd=parent)
        except OSError as err:
            if err.errno == 40:  # ELOOP: the last component is a symlink now
                raise ToolError(f"{shown} became a symlink; refused") from None
            if isinstance(err, IsADirectoryError):
                raise ToolError(f"{shown} is a directory, not a file") from None
            raise
    finally:
        os.close(parent)
    try:
        _check_regular(os.fstat(fd), shown)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def file_size(fd: int) -> int:
    return os.fstat(fd).st_size


def read_head(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_file_bytes(
    path: Path, roots: Iterable[Path], shown: str | None = None, max_bytes: int = MAX_EDIT_BYTES
) -> bytes:
    """The whole content of a regular file, refusing files over `max_bytes`."""
    shown = shown or str(path)
    fd = open_file(path, roots, shown)
    try:
        size = file_size(fd)
        if size > max_bytes:
            raise ToolError(
                f"{shown} is {size} bytes, over the {max_bytes} byte limit for editing; "
                "change it with the shell tool (e.g. sed) instead"
            )
        data = read_head(fd, max_bytes + 1)
        if len(data) > max_bytes:
            raise ToolError(f"{shown} grew past the {max_bytes} byte limit while being read")
        return data
    finally:
        os.close(fd)


def read_if_regular(path: Path, roots: Iterable[Path], max_bytes: int = MAX_EDIT_BYTES) -> bytes:
    """Like read_file_bytes but FileNotFoundError for anything that is not there."""
    return read_file_bytes(path, roots, None, max_bytes)


def unlink_file(path: Path, roots: Iterable[Path]) -> None:
    parent = open_parent(path, roots)
    try:
        st = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise ToolError(f"{path} is a directory; refused to delete it")
        os.unlink(path.name, dir_fd=parent)
    finally:
        os.close(parent)


# ---------------------------------------------------------------- control files

_CONTROL_DIRS = ("commands", "agents", "skills")
# Where kcode.extensions reads skills/commands/agents from (besides .kcode): the other agents' dirs.
_CONTROL_PARENTS = (".claude", ".agents", ".kimi-code")


def control_file_rule(rel: PurePosixPath) -> str | None:
    """Why a path (relative to its allowed root) must not be written by a tool, or None."""
    parts = [p.casefold() for p in rel.parts]
    if any(p == ".git" for p in parts):
        return "files inside .git (hooks, config) are git's control files"
    if not parts:
        return None
    name = parts[-1]
    if name == ".mcp.json":
        return ".mcp.json configures the MCP servers a later run starts"
    for i, part in enumerate(parts[:-1]):
        rest = parts[i + 1 :]
        if part == ".kcode":
            if len(rest) == 1 and (rest[0].endswith(".toml") or rest[0] == "mcp.json"):
                return f".kcode/{rest[0]} is kcode's own configuration"
            if rest[0].startswith("hooks"):
                return ".kcode/hooks* run commands in later sessions"
            if rest[0] in _CONTROL_DIRS:
                return f".kcode/{rest[0]} holds instructions a later run trusts"
        settings = len(rest) == 1 and rest[0].startswith("settings") and rest[0].endswith(".json")
        if part == ".claude" and settings:
            return ".claude/settings*.json is a control file a later run trusts"
        if part in _CONTROL_PARENTS and rest[0] in _CONTROL_DIRS:
            return f"{part}/{rest[0]} holds instructions a later run trusts"
    return None


def _user_dir_rule(path: Path) -> str | None:
    """A workspace that holds the user's own kcode dirs (kcode run in ~): the user config (hooks,
    `trusted`, MCP servers) and the data dir (trust decisions, approval rules) stay the user's."""
    from kcode.config.loader import data_dir, user_config_path

    for base, what in (
        (user_config_path().parent, "your kcode config dir (hooks, trusted, MCP servers)"),
        (data_dir(), "kcode's data dir (trust decisions, approval rules)"),
    ):
        real = Path(os.path.realpath(base))
        if path == real or path.is_relative_to(real):
            return f"it is in {what}"
    return None


def check_writable(path: Path, roots: Iterable[Path], shown: str | None = None) -> None:
    """Refuse writes (and deletes, renames, mode changes) of control files, naming the rule."""
    root = _root_of(path, roots)
    reason = control_file_rule(PurePosixPath(path.relative_to(root).as_posix())) or _user_dir_rule(
        path
    )
    if reason:
        raise ToolError(
            f"refused to write {shown or path}: {reason}; the file tools never change them "
            "(edit them yourself if you mean to)"
        )


def patch_mode(new_mode: int, existing: int | None, umask: int) -> int:
    """A patch's `new mode` only toggles the executable bits; setuid/setgid/sticky never come in."""
    base = (existing if existing is not None else 0o666 & ~umask) & 0o777
    if new_mode & 0o111:
        return base | ((base & 0o444) >> 2)
    return base & ~0o111
