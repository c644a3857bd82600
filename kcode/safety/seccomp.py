"""A seccomp filter that refuses IPv4/IPv6 sockets: the network half of the Landlock sandbox.

Landlock (ABI >= 4) refuses TCP bind/connect but not UDP; this filter makes socket(AF_INET or
AF_INET6, ...) fail with EACCES, so no Internet-domain socket can be opened at all, while Unix
sockets (which local tools need) keep working. It is a classic BPF program installed with
prctl(PR_SET_SECCOMP); the caller must have set no_new_privs first. Standard library + ctypes only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
X32_SYSCALL_BIT = 0x40000000
AF_INET, AF_INET6 = 2, 10
# (audit arch, socket syscall number) per machine; seccomp_data: nr @0, arch @4, args[0] @16.
ARCHES = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}
LD_ABS_W, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06


class _Filter(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def inet_socket_filter(machine: str) -> bytes | None:
    """The BPF program for this machine, or None when its syscall numbers are not known here."""
    if machine not in ARCHES:
        return None
    arch, sys_socket = ARCHES[machine]
    deny = SECCOMP_RET_ERRNO | errno.EACCES
    # Syscalls of another ABI (int 0x80 on x86_64, aarch32 on aarch64) have other numbers and
    # would slip past the socket() check: they kill the process. So do x32 calls (nr with bit 30).
    program = [
        (LD_ABS_W, 0, 0, 4),  # 0: arch
        (JEQ_K, 1, 0, arch),  # 1: native: go on
        (RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),  # 2: another ABI
        (LD_ABS_W, 0, 0, 0),  # 3: syscall number
        (JGE_K, 5, 0, X32_SYSCALL_BIT),  # 4: x32: deny
        (JEQ_K, 0, 3, sys_socket),  # 5: not socket(): allow
        (LD_ABS_W, 0, 0, 16),  # 6: socket()'s domain
        (JEQ_K, 2, 0, AF_INET),  # 7: AF_INET: deny
        (JEQ_K, 1, 0, AF_INET6),  # 8: AF_INET6: deny
        (RET_K, 0, 0, SECCOMP_RET_ALLOW),  # 9
        (RET_K, 0, 0, deny),  # 10
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def deny_inet_sockets() -> bool:
    """Install the filter on this process (inherited across fork/exec). False: not supported."""
    program = inet_socket_filter(os.uname().machine)
    if program is None:
        return False
    prog = _Filter(len(program) // 8, program)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"seccomp filter refused: {os.strerror(code)}")
    return True
