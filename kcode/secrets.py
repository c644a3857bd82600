"""Secret files and secret values: what read_file/grep refuse, and what logs must never hold.

Secret files: `.env` (and `.env.local`, `.env.production`, … but not `.env.example`), private keys
(`*.pem`, `*.key`, `id_rsa*` but not `*.pub`), and credential files (`.netrc`, `.git-credentials`,
`.aws/credentials`, `.pgpass`, `.pypirc`, an `.npmrc` that holds a token). The user can allow them
with `allow_secrets = true`, or one by one with a `read(...)` allow rule.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SECRET_NAME_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
_ENV_TEMPLATES = (".env.example", ".env.sample", ".env.template", ".env.dist", ".env.defaults")
_KEY_PATTERNS = (
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
)
_CREDENTIAL_NAMES = (".netrc", "_netrc", ".git-credentials", ".pgpass", ".pypirc", ".htpasswd")
# Values shorter than this are too common to redact without mangling ordinary text.
MIN_SECRET_VALUE = 8


_KEY_SUFFIXES = (".pem", ".key", ".p12", ".pfx")
_KEY_PREFIXES = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519")


def could_be_secret_name(name: str) -> bool:
    """A cheap first look at a file name: False means secret_file_reason is surely None.

    grep may see tens of thousands of files; this keeps the full check off almost all of them.
    """
    lowered = name.lower()
    return (
        lowered.startswith(".env")
        or lowered.endswith(_KEY_SUFFIXES)
        or lowered.startswith(_KEY_PREFIXES)
        or lowered in _CREDENTIAL_NAMES
        or lowered in ("credentials", ".npmrc")
    )


def secret_file_reason(path: Path) -> str | None:
    """Why `path` counts as a secret file, or None."""
    name = path.name
    lowered = name.lower()
    if lowered == ".env" or (lowered.startswith(".env.") and lowered not in _ENV_TEMPLATES):
        return "an environment file with secrets"
    if lowered.endswith(".pub"):
        return None
    if any(fnmatch.fnmatchcase(lowered, p) for p in _KEY_PATTERNS):
        return "a private key"
    if lowered in _CREDENTIAL_NAMES:
        return "a credential file"
    if lowered in ("credentials", "config") and path.parent.name == ".aws":
        return "AWS credentials" if lowered == "credentials" else None
    if lowered == ".npmrc" and _npmrc_has_token(path):
        return "an .npmrc holding a registry token"
    return None


def _npmrc_has_token(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(marker in text for marker in ("_authToken", "_auth", "_password"))


def _read_rules_verdict(ctx: Any, shown: str) -> str | None:
    rules = getattr(getattr(ctx, "approver", None), "rules", None)
    if rules is None:
        return None
    rule = rules.first("read", shown)
    return None if rule is None else str(rule.verdict)


def check_readable(ctx: Any, path: Path) -> None:
    """Raise ToolError when a tool may not read `path` (secret file, or a read deny/ask rule)."""
    from kcode.tools.base import ToolError

    shown = ctx.display(path)
    verdict = _read_rules_verdict(ctx, shown)
    if verdict in ("deny", "ask"):
        raise ToolError(f"reading {shown} is not allowed by a read({shown}) {verdict} rule")
    reason = secret_file_reason(path)
    if reason and verdict != "allow" and not ctx.allow_secrets:
        raise ToolError(
            f"{shown} is {reason}; kcode does not read secret files. The user can allow it with "
            f"`allow_secrets = true` or a rule `read({shown})` in the kcode config."
        )


def may_read(ctx: Any, path: Path) -> bool:
    from kcode.tools.base import ToolError

    try:
        check_readable(ctx, path)
    except ToolError:
        return False
    return True


def secret_env_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like credentials (for redaction)."""
    source = os.environ if env is None else env
    return sorted(
        {
            value
            for name, value in source.items()
            if any(m in name.upper() for m in SECRET_NAME_MARKERS)
            and len(value) >= MIN_SECRET_VALUE
        },
        key=len,
        reverse=True,
    )


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text
