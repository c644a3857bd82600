"""Secret files and secret values: what read_file/grep refuse, and what logs must never hold.

Secret files: `.env` (and `.env.local`, `.env.production`, … but not `.env.example`) at any depth,
`.envrc`, `*.tfvars`, private keys (`*.pem`, `*.key`, `id_rsa*` but not `*.pub`), and credential
files (`.netrc`, `.git-credentials`, `.aws/credentials`, `.pgpass`, `.pypirc`, an `.npmrc` that holds
a token, `credentials.json`, a Google service-account JSON, `.docker/config.json`, kubeconfig). The
user can allow them with `allow_secrets = true`, or one by one with a `read(...)` allow rule.

Environment: children of kcode (shell, run_tests) get only the variables on SAFE_ENV_NAMES /
SAFE_ENV_PREFIXES (`child_env`); redaction (`secret_env_values`) covers the value of every other
variable that looks like a secret, so the two use one definition. A token in a `.git/config`
remote URL (`https://user:TOKEN@host`) is added to the redaction list by `git_config_secrets`.
"""

from __future__ import annotations

import fnmatch
import os
import re
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
_CREDENTIAL_NAMES = (
    ".netrc",
    "_netrc",
    ".git-credentials",
    ".pgpass",
    ".pypirc",
    ".htpasswd",
    ".envrc",
    "credentials.json",
    "kubeconfig",
)
# The environment a child process may see: harmless names only (an allowlist, not a denylist, so
# DB_PASSWD, GITHUB_AUTH, DATABASE_URL, *_PAT and friends never reach the model's commands).
SAFE_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "LANG", "LANGUAGE", "TERM", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ",
        "PWD", "COLUMNS", "LINES", "VIRTUAL_ENV", "CI", "NO_COLOR", "FORCE_COLOR", "EDITOR",
        "VISUAL", "PAGER", "GIT_PAGER", "GIT_TERMINAL_PROMPT", "GOPATH", "GOROOT", "GOFLAGS",
        "GOCACHE", "CARGO_HOME", "RUSTUP_HOME", "JAVA_HOME", "CONDA_PREFIX", "HOSTNAME",
        "COLORTERM", "TERM_PROGRAM", "DISPLAY", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
        "XDG_CACHE_HOME", "XDG_STATE_HOME", "UV_CACHE_DIR", "PIP_CACHE_DIR", "NPM_CONFIG_CACHE",
        "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONWARNINGS", "PYTHONFAULTHANDLER", "SHLVL",
    }
)  # fmt: skip
SAFE_ENV_PREFIXES = ("LC_",)
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
        or lowered in ("credentials", ".npmrc", "config", "config.json")
        or lowered.endswith((".tfvars", ".json"))
    )


def secret_file_reason(path: Path) -> str | None:
    """Why `path` counts as a secret file, or None."""
    name = path.name
    lowered = name.lower()
    if lowered == ".env" or (lowered.startswith(".env.") and lowered not in _ENV_TEMPLATES):
        return "an environment file with secrets"
    if lowered.endswith(".tfvars") or lowered.endswith(".tfvars.json"):
        return "Terraform variables (often secrets)"
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
    if lowered == "config.json" and path.parent.name == ".docker":
        return "Docker registry credentials"
    if lowered == "config" and path.parent.name == ".kube":
        return "a kubeconfig"
    if lowered.endswith(".json") and _is_service_account(path):
        return "a service-account key"
    return None


def _is_service_account(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return b'"private_key"' in head and (b"service_account" in head or b'"client_email"' in head)


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


def is_safe_env_name(name: str) -> bool:
    """True for a variable a child process may see (see SAFE_ENV_NAMES)."""
    return name in SAFE_ENV_NAMES or name.startswith(SAFE_ENV_PREFIXES)


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowlisted part of `env` (default os.environ) for a child process."""
    source = os.environ if env is None else env
    return {name: value for name, value in source.items() if is_safe_env_name(name)}


def _looks_like_secret_value(value: str) -> bool:
    if len(value) < MIN_SECRET_VALUE or any(c.isspace() for c in value):
        return False
    if "://" in value and "@" in value:  # a URL with credentials: postgres://u:p@host
        return True
    if value.startswith(("/", "./", "~")) or os.pathsep in value:
        return False  # a path or a path list
    kinds = sum((any(c.isdigit() for c in value), any(c.isalpha() for c in value)))
    return kinds == 2 and len(value) >= 12


def secret_env_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values to redact: every variable NOT on the child allowlist whose name marks a credential,
    or whose value looks like a secret (long, mixed letters and digits, or a URL with a password).
    With env=None (the live process) the credentials in the current repo's .git/config remote
    URLs are included too, so a token there is redacted wherever it would show.
    """
    source = os.environ if env is None else env
    found: set[str] = set(git_config_secrets(Path.cwd())) if env is None else set()
    for name, value in source.items():
        if is_safe_env_name(name) or len(value) < MIN_SECRET_VALUE:
            continue
        if any(m in name.upper() for m in SECRET_NAME_MARKERS) or _looks_like_secret_value(value):
            found.add(value)
    return sorted(found, key=len, reverse=True)


_URL_CREDENTIALS = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://([^/\s:@]*)(?::([^/\s@]*))?@")


def url_secrets(text: str) -> list[str]:
    """Passwords/tokens in URLs such as https://user:TOKEN@host (a lone user part that is long
    enough counts too: https://TOKEN@github.com)."""
    found: set[str] = set()
    for match in _URL_CREDENTIALS.finditer(text):
        user, password = match.group(1), match.group(2)
        if password and len(password) >= 4:
            found.add(password)
        elif not password and user and len(user) >= MIN_SECRET_VALUE:
            found.add(user)
    return sorted(found, key=len, reverse=True)


def git_config_secrets(root: Path) -> list[str]:
    """Credentials in the remote URLs of root's .git/config (read directly: no git process)."""
    git = root / ".git"
    config = git / "config"
    if git.is_file():  # a worktree: "gitdir: PATH"
        try:
            target = git.read_text(encoding="utf-8").strip().removeprefix("gitdir:").strip()
        except OSError:
            return []
        config = (root / target).resolve().parent.parent / "config"
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return url_secrets(text)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


# Values the interactive renderer must not show (the API key from whichever layer set it); the
# runtime registers them (kcode.runtime.build_runtime), the REPL renderer reads them.
_display_secrets: list[str] | None = None


def register_display_secrets(values: list[str]) -> None:
    global _display_secrets
    found = {v for v in values if len(v) >= MIN_SECRET_VALUE}
    found.update(_display_secrets if _display_secrets is not None else secret_env_values())
    _display_secrets = sorted(found, key=len, reverse=True)


def display_secrets() -> list[str]:
    """What terminal output is redacted of: registered values and credential-like environment
    values, longest first (so a key that contains another is replaced whole). Computed once."""
    if _display_secrets is None:
        register_display_secrets([])
    return _display_secrets or []
