"""Running the real `kcode` executable as a subprocess against the fake OpenAI server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def kcode_exe() -> str:
    exe = VENV_BIN / "kcode"
    if exe.exists():
        return str(exe)
    found = shutil.which("kcode")
    if not found:
        pytest.skip("the kcode executable is not installed (run `make install`)")
    return found


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture()
def kcode_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KCODE_", "OPENAI_", "MOONSHOT_"))
    }
    env.update(
        XDG_DATA_HOME=str(tmp_path / "xdg-data"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        KCODE_API_KEY="sk-test-key",
        KCODE_MODEL="fake-model",
    )
    return env


def run_kcode(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60, stdin: str = ""
) -> Run:
    proc = subprocess.run(
        [kcode_exe(), *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=path, check=True)
    return path
