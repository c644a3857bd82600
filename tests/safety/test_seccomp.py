"""The Landlock sandbox's seccomp half: no IPv4/IPv6 socket (UDP included) unless network is on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kcode.safety.landlock import abi_version, launcher_argv
from kcode.safety.seccomp import ARCHES, inet_socket_filter

PROBE = """
import socket
for fam, typ in ((socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET6, socket.SOCK_DGRAM),
                 (socket.AF_INET, socket.SOCK_STREAM), (socket.AF_UNIX, socket.SOCK_STREAM)):
    try:
        socket.socket(fam, typ).close()
        print(fam.name, typ.name, "open")
    except OSError as err:
        print(fam.name, typ.name, "refused", err.errno)
"""

pytestmark = pytest.mark.skipif(
    abi_version() < 1 or os.uname().machine not in ARCHES,
    reason="needs Landlock in the kernel and a machine whose syscall numbers kcode.safety.seccomp knows",
)


def probe(workspace: Path, allow_network: bool) -> list[str]:
    argv = launcher_argv(
        [sys.executable, "-c", PROBE], "workspace-write", str(workspace), [], allow_network
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def test_without_network_no_internet_socket_opens(tmp_path: Path) -> None:
    assert probe(tmp_path, allow_network=False) == [
        "AF_INET SOCK_DGRAM refused 13",
        "AF_INET6 SOCK_DGRAM refused 13",
        "AF_INET SOCK_STREAM refused 13",
        "AF_UNIX SOCK_STREAM open",
    ]


def test_with_network_allowed_sockets_open(tmp_path: Path) -> None:
    assert all(line.endswith("open") for line in probe(tmp_path, allow_network=True))


def test_the_filter_is_whole_instructions() -> None:
    program = inet_socket_filter("x86_64")
    assert program is not None and len(program) == 11 * 8
    assert inet_socket_filter("sparc") is None


INT80 = """
import ctypes, mmap
code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20 (i386 getpid); int 0x80; ret
buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
print("32-bit call returned", ctypes.CFUNCTYPE(ctypes.c_int)(addr)(), flush=True)
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="int 0x80 is x86_64's 32-bit ABI")
def test_a_32_bit_syscall_kills_the_process(tmp_path: Path) -> None:
    argv = launcher_argv([sys.executable, "-c", INT80], "workspace-write", str(tmp_path), [], False)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert "returned" not in done.stdout and done.returncode == -31  # SIGSYS


def test_the_launched_command_has_no_capabilities(tmp_path: Path) -> None:
    read = "print(''.join(l for l in open('/proc/self/status') if l.startswith('Cap')))"
    argv = launcher_argv([sys.executable, "-c", read], "read-only", str(tmp_path), [], False)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    for line in done.stdout.split("\n"):
        if line.startswith("Cap"):
            assert line.split()[1] == "0000000000000000", line
