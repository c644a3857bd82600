"""Whether a repository's own extension files (hooks, commands, agents, MCP servers) may run.

A hook or an MCP server named in a cloned repository is a program that repository controls, so it
runs only once the user trusted the repository: listed in `trusted` in the user config, trusted
once in the REPL (stored in the user's data dir next to the per-project `rules.toml`, never in
the repository), or `--trust-project` for this run. A repository cannot trust itself: `trusted` and
`trust_project` are ignored in a repo's `.kcode/config.toml` (kcode.config.repo.REPO_NEVER_SETS).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kcode.config.loader import data_dir
from kcode.safety.json_input import loads_json

if TYPE_CHECKING:
    from kcode.config.loader import Config

TRUST_FILE = "trust.json"


def project_dir(root: Path) -> Path:
    """The per-project data dir, keyed like the history and rules.toml (kcode.ui.approval_prompt)."""
    key = hashlib.sha256(str(root.resolve()).encode("utf-8")).hexdigest()[:16]
    return data_dir() / "projects" / key


def trust_path(root: Path) -> Path:
    return project_dir(root) / TRUST_FILE


def stored_decision(root: Path) -> bool | None:
    """True/False once the user answered the REPL's question for this repository, else None."""
    try:
        data = loads_json(trust_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("root") != str(root.resolve()):
        return None  # a hash collision or a hand-edited file: ask again rather than guess
    value = data.get("trusted")
    return value if isinstance(value, bool) else None


def _configured(root: Path, config: Config) -> bool:
    if bool(getattr(config, "trust_project", False)):
        return True
    listed = getattr(config, "trusted", None) or []
    real = os.path.realpath(root)
    return any(
        isinstance(p, str) and os.path.realpath(os.path.expanduser(p)) == real for p in listed
    )


def is_project_trusted(root: Path, config: Config) -> bool:
    """Trusted if the repo is in the user config's `trusted` list, `--trust-project` was given, or
    the user trusted it once in the REPL."""
    return _configured(root, config) or stored_decision(root) is True


def record_decision(root: Path, trusted: bool) -> Path:
    """Store the user's answer (0600 file in a 0700 dir); returns the file's path."""
    path = trust_path(root)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {"root": str(root.resolve()), "trusted": trusted, "decided": time.strftime("%F %T")}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(body, f)
    os.replace(tmp, path)
    return path


def trust_project(root: Path) -> Path:
    return record_decision(root, True)


def distrust_project(root: Path) -> Path:
    return record_decision(root, False)


def needs_decision(root: Path, config: Config, has_project_files: bool) -> bool:
    """Whether the REPL should ask: the repo has files that need trust and nobody decided yet."""
    return has_project_files and not _configured(root, config) and stored_decision(root) is None
