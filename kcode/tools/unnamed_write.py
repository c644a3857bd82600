"""Writing a file whole without a named temp file that a kill -9 could leave behind.

A temp file written under a name and then renamed into place is left in the workspace when kcode is
killed between the two (the whole write and fsync of the data, often milliseconds). Linux can create
the file unnamed (O_TMPFILE): it gets a name only once complete — its final name directly for a new
file (one atomic link), or a temp name for the instant between link and rename when it replaces one.
Where the filesystem or /proc cannot do this, the caller falls back to its named temp file.
"""

from __future__ import annotations

import contextlib
import os
import secrets


def write_unnamed(dir_fd: int, name: str, data: bytes, mode: int, *, replace: bool) -> bool:
    """Write `data` as `name` in the directory `dir_fd` (never following a symlink at `name`).

    False when nothing was written because unnamed files are not supported here; errors of the
    write itself propagate (then nothing is left behind)."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return False
    try:
        fd = os.open(".", flag | os.O_WRONLY, 0o600, dir_fd=dir_fd)
    except OSError:  # the filesystem does not support it (EOPNOTSUPP, EISDIR on old kernels)
        return False
    with os.fdopen(fd, "wb") as tmp:
        source = f"/proc/self/fd/{fd}"
        if not os.path.exists(source):
            return False  # no /proc to give it a name through: it vanishes with its descriptor
        tmp.write(data)
        tmp.flush()
        os.fsync(fd)
        os.fchmod(fd, mode)
        if not replace:
            try:
                os.link(source, name, dst_dir_fd=dir_fd, follow_symlinks=True)
                return True
            except FileExistsError:
                pass  # created meanwhile: replace it, as the named temp file would
        tmp_name = temp_name(name)
        os.link(source, tmp_name, dst_dir_fd=dir_fd, follow_symlinks=True)
        try:
            os.replace(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name, dir_fd=dir_fd)
            raise
    return True


def temp_name(name: str) -> str:
    """The name of the temp file a write of `name` goes through, in the same directory. Only the
    start of `name` is kept: with the whole of a 250-byte name it was longer than the 255 bytes a
    name may have, and such a file could never be written (or restored by undo)."""
    return f".{name[:40]}.{secrets.token_hex(4)}.kcode-tmp"
