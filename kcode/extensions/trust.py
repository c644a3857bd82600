"""Whether a repository's own extension files (MCP servers, hooks, commands) may run.

Minimal version written for the MCP client (issue #15); the extensions package owns the full trust
store (the REPL's "trust this project?" answer kept in the user's data dir). A repository is trusted
when the user lists it in `trusted` in their own config, when `--trust-project` was given, or when
the user trusted it once (`$XDG_DATA_HOME/kcode/trusted-projects.json`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def trust_store_path() -> Path:
    from kcode.config import data_dir

    return data_dir() / "trusted-projects.json"


def is_project_trusted(root: Path, config: Any) -> bool:
    real = os.path.realpath(root)
    if getattr(config, "trust_project", False) is True:
        return True
    listed = getattr(config, "trusted", None) or []
    if any(os.path.realpath(os.path.expanduser(str(p))) == real for p in listed):
        return True
    try:
        stored = json.loads(trust_store_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    projects = stored.get("projects", []) if isinstance(stored, dict) else []
    return isinstance(projects, list) and real in projects
