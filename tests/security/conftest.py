"""Attacks against the real `kcode` binary: a hostile repository, a scripted (prompt-injected) model.

Every test builds a throwaway repo in tmp_path, writes a model script, runs the installed `kcode`
executable as a subprocess and checks what a user would lose: files on disk outside the repo, what
reached the fake server, what was printed.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import VENV_BIN, kcode_exe

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

    def write(self, rel: str, text: str) -> Path:
        path = self.repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def commit(self) -> None:
        subprocess.run(["git", "add", "-A"], cwd=self.repo, check=True, capture_output=True)
        subprocess.run(
            [*GIT, "commit", "-qm", "attacker", "--allow-empty"],
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
        env = {**self.env, "KCODE_BACKEND": "scripted", "KCODE_SCRIPT": str(script)}
        proc = subprocess.run(
            [kcode_exe(), "-p", prompt, *args],
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
    v = Victim(home, repo, env)
    v.commit()
    return v
