"""When llama.cpp itself dies (SIGSEGV, SIGBUS, SIGILL, SIGFPE, or an abort from a GGML_ASSERT),
the user gets a message and exit code 3, not a bare "Segmentation fault".

While a local model is loaded, a C-level handler for those signals is installed (through libc's
`sigaction`, since Python's own `signal` module only flags a signal for later, and returning
from a SIGSEGV handler re-runs the faulting instruction forever). The handler is a ctypes
callback: it takes the GIL (the faulting thread is inside a ctypes call into llama.cpp, which
released it), writes one line naming the model and the signal plus a Python traceback of every
thread to stderr, and ends the process with `os._exit(3)` without returning into the dead native
frame. The session log needs no last write: it is flushed and fsynced after every event
(kcode/session.py), so everything up to the crash is on disk and `kcode -c` resumes it.

Exit code 3 is the "backend error" class of the README's table.

`KCODE_TEST_NATIVE_CRASH=1` (a test hook, read by engine.py) makes the first generated
token write through a null pointer inside a native call, so the tests can check all of this on the
real binary.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import sys
import threading
from typing import Any

CRASH_EXIT_CODE = 3
TEST_CRASH_ENV = "KCODE_TEST_NATIVE_CRASH"
_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT")
    if hasattr(signal, name)
)
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int)
_lock = threading.Lock()
_models: list[str] = []  # models loaded now; the handler is installed while this is not empty
_handler: Any = None  # keeps the ctypes callback alive
_previous: dict[int, Any] = {}


class _SigAction(ctypes.Structure):
    # glibc x86-64/aarch64 layout: handler, mask (1024 bits), flags, restorer.
    _fields_ = (
        ("sa_handler", ctypes.c_void_p),
        ("sa_mask", ctypes.c_ulong * 16),
        ("sa_flags", ctypes.c_int),
        ("sa_restorer", ctypes.c_void_p),
    )


def _on_fatal_signal(signum: int) -> None:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    model = _models[-1] if _models else "the local model"
    message = (
        f"\nkcode: llama.cpp crashed ({name}) while running {model}. The session is saved "
        f"(`kcode -c` resumes it); exit code {CRASH_EXIT_CODE}. Try another quantisation of the "
        "model, n_gpu_layers = 0, or report it with the traceback below.\n"
    )
    try:
        os.write(2, message.encode("utf-8", "replace"))
        faulthandler.dump_traceback(file=sys.__stderr__ or 2, all_threads=True)
    finally:
        os._exit(CRASH_EXIT_CODE)


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _install() -> None:
    global _handler
    libc = _libc()
    if libc is None:
        return
    _handler = _HANDLER_TYPE(_on_fatal_signal)
    for signum in _SIGNALS:
        action = _SigAction()
        action.sa_handler = ctypes.cast(_handler, ctypes.c_void_p)
        # SA_ONSTACK: run on faulthandler's alternate stack when one is set (stack overflows).
        action.sa_flags = 0x08000000
        old = _SigAction()
        if libc.sigaction(signum, ctypes.byref(action), ctypes.byref(old)) == 0:
            _previous[signum] = old


def _uninstall() -> None:
    libc = _libc()
    if libc is None:
        return
    for signum, old in _previous.items():
        libc.sigaction(signum, ctypes.byref(old), None)
    _previous.clear()


def guard_model(model: str) -> None:
    """A model was loaded: report a native crash while it is, naming it."""
    with _lock:
        if not _models:
            _install()
        _models.append(model)


def release_model(model: str) -> None:
    with _lock:
        if model in _models:
            _models.remove(model)
            if not _models:
                _uninstall()


def crash_for_test() -> None:
    """The test hook: a write through a null pointer inside a native call (GIL released), the way
    a llama.cpp bug would fault."""
    ctypes.memset(0, 0, 1)
