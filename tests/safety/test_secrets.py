"""Secret files are refused by read_file and skipped by grep; secret values never reach logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcode.safety.approval import AllowAll
from kcode.safety.rules import RuleSet
from kcode.safety.secrets import secret_file_reason
from kcode.tools.base import ToolContext
from tests.safety.helpers import call

CANARY = "canary-secret-9c1e77"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        (".env", True),
        (".env.local", True),
        (".env.example", False),
        ("server.pem", True),
        ("tls.key", True),
        ("id_rsa", True),
        ("id_ed25519", True),
        ("id_rsa.pub", False),
        (".netrc", True),
        (".git-credentials", True),
        (".aws/credentials", True),
        ("main.py", False),
        ("keys.py", False),
        ("environment.md", False),
    ],
)
def test_secret_file_names(tmp_path: Path, name: str, secret: bool) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    assert (secret_file_reason(path) is not None) == secret


def test_npmrc_only_with_a_token(tmp_path: Path) -> None:
    (tmp_path / ".npmrc").write_text("registry=https://r.example\n")
    assert secret_file_reason(tmp_path / ".npmrc") is None
    (tmp_path / ".npmrc").write_text("//r.example/:_authToken=abc\n")
    assert secret_file_reason(tmp_path / ".npmrc") is not None


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / ".env").write_text(f"API_KEY={CANARY}\n")
    (tmp_path / "deploy.pem").write_text(f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n")
    (tmp_path / "app.py").write_text("# mentions canary-secret but not the value\nx = 1\n")
    return tmp_path


async def test_read_file_refuses_and_grep_skips_with_a_count(tmp_path: Path) -> None:
    ctx = ToolContext(root=_workspace(tmp_path))
    for name in (".env", "deploy.pem"):
        result = await call(ctx, "read_file", path=name)
        assert not result.ok and CANARY not in result.content and "allow_secrets" in result.content
    grep = await call(ctx, "grep", pattern="canary", path=".")
    assert CANARY not in grep.content and "app.py" in grep.content
    assert "1 secret file(s)" in grep.content  # deploy.pem (.env is hidden anyway)
    direct = await call(ctx, "grep", pattern="canary", path=".env")
    assert CANARY not in direct.content


async def test_allow_secrets_and_read_rules(tmp_path: Path) -> None:
    ctx = ToolContext(root=_workspace(tmp_path), allow_secrets=True)
    assert CANARY in (await call(ctx, "read_file", path=".env")).content
    approver = AllowAll()
    approver.rules = RuleSet.parse({"allow": ["read(.env)"], "deny": ["read(app.py)"]})  # type: ignore[attr-defined]
    ruled = ToolContext(root=tmp_path, approver=approver)
    assert CANARY in (await call(ruled, "read_file", path=".env")).content
    assert not (await call(ruled, "read_file", path="deploy.pem")).ok
    assert not (await call(ruled, "read_file", path="app.py")).ok
