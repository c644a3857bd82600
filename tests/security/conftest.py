"""Attacks against the real `kcode` binary: a hostile repository, a scripted (prompt-injected) model.

Every test builds a throwaway repo in tmp_path, writes a model script, runs the installed `kcode`
executable as a subprocess and checks what a user would lose: files on disk outside the repo, what
reached the fake server, what was printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import VENV_BIN, kcode_env, kcode_exe  # noqa: F401  (kcode_env: a fixture)

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]


@dataclass
class Attack:
    """One run of the real binary: its exit code and output."""

    code: int
    stdout: str
    stderr: str


@dataclass
class Victim:
    """The user's machine: a home with secrets, a repo the attacker wrote, an environment with a key."""

    home: Path
    repo: Path
    env: dict[str, str]
    # Set for a victim who is an unprivileged user while the tests run as root (the `as_user`
    # fixture): kcode and git run through setpriv as that uid, and files are handed to it.
    prefix: tuple[str, ...] = ()
    owner: int | None = None

    def write(self, rel: str, text: str) -> Path:
        path = self.repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.hand_over()
        return path

    def hand_over(self) -> None:
        if self.owner is not None:
            subprocess.run(["chown", "-R", f"{self.owner}:{self.owner}", str(self.home.parent)])

    def commit(self) -> None:
        self.hand_over()
        p = [*self.prefix]
        subprocess.run([*p, "git", "add", "-A"], cwd=self.repo, check=True, capture_output=True)
        subprocess.run(
            [*p, *GIT, "commit", "-qm", "attacker", "--allow-empty"],
            cwd=self.repo,
            check=True,
            capture_output=True,
        )

    def run(
        self,
        turns: list[dict[str, Any]],
        *args: str,
        prompt: str = "summarise this repo",
        timeout: float = 60,
    ) -> Attack:
        """Run `kcode -p PROMPT` with a scripted model that makes the given turns."""
        script = self.home / "script.json"
        script.write_text(json.dumps(turns))
        self.hand_over()
        env = {**self.env, "KCODE_BACKEND": "scripted", "KCODE_SCRIPT": str(script)}
        proc = subprocess.run(
            [*self.prefix, kcode_exe(), "-p", prompt, *args],
            env=env,
            cwd=self.repo,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Attack(proc.returncode, proc.stdout, proc.stderr)


SECRET_KEY = "sk-victim-0123456789abcdef"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nvictim-ssh-key-material\n"


@pytest.fixture()
def victim(tmp_path: Path) -> Victim:
    return make_victim(tmp_path)


UNPRIVILEGED_UID = 65534  # nobody: exists on every Debian/Ubuntu, owns nothing


@pytest.fixture(params=["current", "unprivileged"])
def as_user(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Victim]:
    """The victim as the user running the tests, and again as an unprivileged user: when the
    tests run as root, kcode runs as `nobody` through setpriv (the limits that do not hold for
    root, RLIMIT_NPROC, are exercised that way); when they already run unprivileged, the second
    run would repeat the first and is skipped."""
    if request.param == "current":
        yield make_victim(tmp_path)
        return
    if os.geteuid() != 0:
        pytest.skip("the tests already run as an unprivileged user (the 'current' case)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed; cannot run kcode as another user")
    # pytest's tmp_path sits in a root-only directory; the other user needs its own.
    base = Path(tempfile.mkdtemp(prefix="kcode-unpriv-"))
    uid = UNPRIVILEGED_UID
    prefix = (setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--")
    try:
        victim = make_victim(base, prefix=prefix, owner=uid)
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot switch to uid {uid}: {probe.stderr.decode().strip()}")
        yield victim
    finally:
        shutil.rmtree(base, ignore_errors=True)


def make_victim(base: Path, prefix: tuple[str, ...] = (), owner: int | None = None) -> Victim:
    tmp_path = base
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(SSH_KEY)
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = AWSSECRET\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "README.md").write_text("# a project\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KCODE_", "OPENAI_", "MOONSHOT_"))
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CONFIG_HOME=str(home / ".config"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        KCODE_API_KEY=SECRET_KEY,
    )
    v = Victim(home, repo, env, prefix, owner)
    v.commit()
    return v
