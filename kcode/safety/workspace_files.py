"""Reading a file that a repository commits (its config, memory files, extension files).

Whoever wrote the repository chose what the file is: a symlink to ~/.ssh/id_rsa, a FIFO that blocks
the run, a device that never ends, a huge file. `read_workspace_file` refuses each with a reason.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFile(Exception):
    """A workspace file kcode will not read: outside the workspace, not a regular file, too big."""


def read_workspace_file(
    root: Path, rel: str, max_bytes: int, *, control: bool = False
) -> bytes | None:
    """The bytes of `root/rel`, or None when there is no such file.

    A file a repository commits must stay what it looks like: it must resolve inside `root` (a
    symlink to ~/.ssh/id_rsa is refused), be a regular file (a FIFO would block the run, a device
    never ends) and be at most `max_bytes` long. Anything else raises UnsafeFile saying why.
    `control`: a file kcode executes or trusts (hooks, MCP servers, commands, skills, agents) must
    be reached with no symlink at all: `.kcode -> src` would let the model, which may write `src`
    but never `.kcode`, plant what the next run runs."""
    path = root / rel
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UnsafeFile(f"cannot inspect it ({err.strerror})") from err
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise UnsafeFile(f"it resolves outside the workspace (to {real})")
    if control:
        step = root
        for part in Path(rel).parts:
            step = step / part
            if os.path.islink(step):
                raise UnsafeFile(
                    f"{step.relative_to(root)} is a symlink; a control file must not be"
                )
    try:  # O_NOFOLLOW: the resolved path must not have become a symlink since; O_NONBLOCK: FIFOs
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # a dangling symlink that points inside the workspace
    except OSError as err:
        raise UnsafeFile(f"cannot open it ({err.strerror})") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile("it is not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeFile(f"it is {info.st_size} bytes, over the {max_bytes}-byte limit")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:  # st_size can lie (a file growing under us, /proc-like files)
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise UnsafeFile(f"it is over the {max_bytes}-byte limit")
        return b"".join(chunks)
    except OSError as err:
        raise UnsafeFile(f"cannot read it ({err.strerror})") from err
    finally:
        os.close(fd)
