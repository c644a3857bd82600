"""Issue #12 item 5: a module that cannot be imported never silently changes what kcode does.

Each case runs in a subprocess whose imports of the named modules fail (tests/seam/blocker), as they
would in a broken install: the sandbox must refuse commands rather than run them unsandboxed, and
`kcode fix` must say the install is broken rather than "No such command 'fix'".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import kcode_exe

REPO = Path(__file__).parents[2]
BLOCKER = Path(__file__).with_name("blocker")

RUN_SHELL = """
import asyncio, json, sys
from pathlib import Path
from kcode.messages import ToolCall
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.registry import build_tools

ctx = ToolContext(root=Path(sys.argv[1]), sandbox=sys.argv[2])
call = ToolCall("call_1", "shell", {"command": "touch ran"})
result = asyncio.run(run_tool(build_tools(("shell",))["shell"], call, ctx))
print(json.dumps({"ok": result.ok, "content": result.content}))
"""


def _env(blocked: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCODE_", "OPENAI_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(BLOCKER), str(REPO)])
    env["KCODE_TEST_BLOCK_IMPORTS"] = blocked
    return env


def _shell(tmp_path: Path, sandbox: str, blocked: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_SHELL, str(tmp_path), sandbox],
        env=_env(blocked), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_a_sandbox_that_cannot_import_refuses_the_command(tmp_path: Path) -> None:
    result = _shell(tmp_path, "workspace-write", "kcode.safety.sandbox")
    assert result["ok"] is False
    assert "sandbox cannot load" in str(result["content"])
    assert "kcode.safety.sandbox" in str(result["content"]), "the message names what is broken"
    assert not (tmp_path / "ran").exists(), "the command ran unsandboxed"


def test_the_blocker_only_blocks_what_it_names(tmp_path: Path) -> None:
    result = _shell(tmp_path, "off", "kcode.safety.sandbox")  # sandbox off: nothing to import
    assert result["ok"] is True and (tmp_path / "ran").exists()


def test_a_broken_fix_command_says_the_install_is_broken(tmp_path: Path) -> None:
    (tmp_path / "ui.png").write_bytes(b"")
    proc = subprocess.run(
        [kcode_exe(), "fix", "ui.png"], cwd=tmp_path,
        env=_env("kcode.cli.commands.visual"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "No such command" not in proc.stderr
    assert "installation is broken" in proc.stderr and "kcode.cli.commands.visual" in proc.stderr
    assert proc.stderr.count("\n") == 1, "one clear line, not a traceback"


def test_the_doctor_reports_a_sandbox_that_cannot_import() -> None:
    code = (
        "from kcode.cli.commands.doctor import _check_sandbox\n"
        "from types import SimpleNamespace\n"
        "print(_check_sandbox(SimpleNamespace(sandbox='workspace-write')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env("kcode.safety.sandbox"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("(False,") and "sandbox module cannot load" in proc.stdout


def test_a_missing_gguf_package_is_named_not_called_a_damaged_file(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(64))
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from kcode.backends.base import BackendError\n"
        "from kcode.backends.llama.models import inspect_gguf\n"
        "try:\n"
        "    inspect_gguf(Path(sys.argv[1]))\n"
        "except BackendError as err:\n"
        "    print(err.message)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(model)], env=_env("gguf"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "needs the gguf package" in proc.stdout and "damaged" not in proc.stdout
