"""The model's shell commands try to leave the sandbox; the real binary must stop every attempt.

Each command writes what it got into the workspace (the one place it may write), and the test
reads that file: nothing of the key, the user's secrets or the host must be in it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from kcode.safety.sandbox import bwrap_status
from tests.security.conftest import SECRET_KEY, Victim
from tests.waiting import wait_until

needs_bwrap = pytest.mark.skipif(bwrap_status()[0] is None, reason="bubblewrap cannot start here")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the capability escapes need root")


def shell(victim: Victim, command: str, *args: str) -> str:
    turns = [{"tool_calls": [{"name": "shell", "arguments": {"command": command}}]}, {"text": "ok"}]
    out = victim.write("out.txt", "")  # an existing file: writable under Landlock too
    attack = victim.run(
        turns,
        "--approval",
        "auto",
        "--sandbox",
        "workspace-write",
        "--output-format",
        "stream-json",
        *args,
    )
    assert out.read_text(), f"the command did not run: {attack}"
    return out.read_text()


@needs_bwrap
@root_only
def test_root_cannot_remount_or_use_capabilities(victim: Victim) -> None:
    got = shell(
        victim,
        "(mount -o remount,rw / && echo REMOUNTED; touch /escaped && echo WROTE-ROOT;"
        " grep CapEff /proc/self/status) > out.txt 2>&1",
    )
    assert "REMOUNTED" not in got and "WROTE-ROOT" not in got and not Path("/escaped").exists()
    assert "CapEff:\t0000000000000000" in got


@needs_bwrap
def test_proc_of_kcode_is_out_of_reach(as_user: Victim) -> None:
    victim = as_user  # as the current user, and as an unprivileged one when that is root
    got = shell(
        victim,
        "(cat /proc/*/environ | tr '\\0' '\\n' | grep -a KCODE_API_KEY; ls /proc/1/root/home;"
        f" ls /proc/*/cwd/ | grep -c home; env) > out.txt 2>&1; ls {victim.home} >> out.txt 2>&1",
    )
    assert "PATH=" in got
    assert SECRET_KEY not in got and "id_rsa" not in got and "script.json" not in got


@needs_bwrap
def test_home_secrets_and_secret_variables_are_hidden(as_user: Victim) -> None:
    victim = as_user
    victim.env.update(DB_PASSWD="canary-db-0001", GITHUB_AUTH="canary-gh-0002")
    victim.env["DATABASE_URL"] = "postgres://u:canary-url-0003@db/x"
    got = shell(
        victim,
        f"(cat {victim.home}/.ssh/id_rsa ~/.ssh/id_rsa {victim.home}/.aws/credentials; env)"
        " > out.txt 2>&1",
    )
    assert "victim-ssh-key-material" not in got and "AWSSECRET" not in got
    assert "canary" not in got and SECRET_KEY not in got


@needs_bwrap
def test_a_setuid_binary_cannot_be_planted(victim: Victim) -> None:
    shell(victim, "cp /bin/true ./suid && chmod 4755 ./suid; echo done > out.txt")
    planted = victim.repo / "suid"
    if planted.exists():
        # The bit may be stored, but the workspace bind is nosuid: show it does not take effect.
        probe = victim.repo / "id.txt"
        shell(victim, "cp /usr/bin/id ./sid && chmod 4755 ./sid; runuser -u nobody -- ./sid -u"
              " > out.txt 2>&1 || setpriv --reuid=65534 ./sid -u > out.txt 2>&1")  # fmt: skip
        got = (victim.repo / "out.txt").read_text()
        assert got.strip() != "0", got
        assert not probe.exists()


@needs_bwrap
def test_setsid_daemons_die_with_the_call(as_user: Victim) -> None:
    victim = as_user
    marker = f"kcode-daemon-{os.getpid()}-{time.monotonic_ns()}"
    shell(victim, f"setsid sh -c 'exec -a {marker} sleep 30' & echo started > out.txt")
    # The daemon sleeps 30 s: a bound below that still catches one that survived the call.
    wait_until(
        lambda: (
            marker not in subprocess.run(["ps", "-eo", "args"], capture_output=True).stdout.decode()
        ),
        "the setsid daemon to be gone",
        15,
    )


@needs_bwrap
def test_git_and_kcode_config_are_read_only(as_user: Victim) -> None:
    victim = as_user
    (victim.repo / ".kcode").mkdir()
    before = (victim.repo / ".git" / "config").read_text()
    shell(
        victim,
        "(echo '[core] fsmonitor = touch /tmp/pwn' >> .git/config; echo x > .kcode/config.toml;"
        " echo '{}' > .mcp.json) > out.txt 2>&1",
    )
    assert (victim.repo / ".git" / "config").read_text() == before
    assert not (victim.repo / ".kcode" / "config.toml").exists()


@needs_bwrap
def test_a_token_in_the_git_remote_is_not_visible(victim: Victim) -> None:
    token = "ghp_victimtoken0123456789"
    subprocess.run(
        ["git", "remote", "add", "origin", f"https://u:{token}@github.com/v/r"],
        cwd=victim.repo,
        check=True,
    )
    got = shell(victim, "(cat .git/config; git remote -v) > out.txt 2>&1")
    assert token not in got and "github.com" in got


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="int 0x80 is x86_64's 32-bit ABI")
def test_int_0x80_under_landlock_is_stopped(victim: Victim) -> None:
    victim.env["KCODE_SANDBOX_BACKEND"] = "landlock"
    script = victim.repo / "int80.py"
    script.write_text(
        "import ctypes, mmap\n"
        "code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])\n"
        "buf = mmap.mmap(-1, 4096, prot=7)\nbuf.write(code)\n"
        "addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))\n"
        "print('RETURNED', ctypes.CFUNCTYPE(ctypes.c_int)(addr)(), flush=True)\n"
    )
    got = shell(victim, "python3 int80.py > out.txt 2>&1; echo rc=$? >> out.txt")
    assert "RETURNED" not in got and "rc=" in got


CONTROL_DIRS = (".kcode", ".claude", ".agents", ".kimi-code")
PLANT = (
    "(echo '{}' > .kcode/hooks.json; mkdir -p .claude/skills/x .agents/skills/x "
    ".kimi-code/skills/x; echo pwn > .agents/skills/x/SKILL.md; "
    "echo pwn > .kimi-code/skills/x/SKILL.md; echo pwn > .claude/skills/x/SKILL.md; "
    "echo '{}' > .claude/settings.local.json) > out.txt 2>&1; echo done >> out.txt"
)


def _planted(victim: Victim) -> list[str]:
    names = [
        ".kcode/hooks.json",
        ".claude/skills/x",
        ".agents/skills/x",
        ".kimi-code/skills/x",
        ".claude/settings.local.json",
    ]
    return [n for n in names if (victim.repo / n).exists()]


@needs_bwrap
def test_existing_skill_and_hook_dirs_are_read_only_under_bwrap(as_user: Victim) -> None:
    """The model must not plant hooks/skills a later (trusted) run executes or trusts."""
    for name in CONTROL_DIRS:
        (as_user.repo / name).mkdir()
    shell(as_user, PLANT)
    assert _planted(as_user) == []


def _launcher_is_this_tree() -> bool:
    """The Landlock launcher runs `python -I -m kcode.safety.landlock`, which ignores PYTHONPATH: in a
    worktree it imports the installed kcode, not the code under test."""
    import sys

    import kcode

    found = subprocess.run(
        [sys.executable, "-I", "-c", "import kcode; print(kcode.__file__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return found == kcode.__file__


@pytest.mark.skipif(not _launcher_is_this_tree(), reason="the -I launcher imports another kcode")
def test_existing_skill_and_hook_dirs_are_read_only_under_landlock(victim: Victim) -> None:
    victim.env["KCODE_SANDBOX_BACKEND"] = "landlock"
    for name in CONTROL_DIRS:
        (victim.repo / name).mkdir()
    shell(victim, PLANT)
    assert _planted(victim) == []


@needs_bwrap
def test_missing_control_files_cannot_be_created_under_bwrap(as_user: Victim) -> None:
    """No .kcode/.claude/.agents/.kimi-code/.mcp.json yet: the command must not create them, and
    the read-only placeholders kcode mounts over them are gone afterwards."""
    for name in CONTROL_DIRS:
        assert not (as_user.repo / name).exists()
    out = shell(
        as_user,
        "(mkdir -p .kcode .claude .agents/skills/x .kimi-code/skills/x; echo '{}' > .mcp.json; "
        "echo '{}' > .kcode/hooks.json; ln -s x .agents/y) > out.txt 2>&1; echo done >> out.txt",
    )
    assert _planted(as_user) == [], out
    for name in (*CONTROL_DIRS, ".mcp.json"):
        assert not os.path.lexists(as_user.repo / name), name


def test_landlock_never_grants_control_dirs(tmp_path: Path) -> None:
    """Without .git too: a workspace holding .kcode is granted entry by entry, .kcode excluded."""
    from kcode.safety.landlock import writable_paths

    for name in (".kcode", ".agents", ".kimi-code", ".claude", "src"):
        (tmp_path / name).mkdir()
    (tmp_path / ".mcp.json").write_text("{}")
    assert writable_paths("workspace-write", [str(tmp_path)]) == [str(tmp_path / "src")]
