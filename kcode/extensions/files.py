"""Reading extension files: project files as untrusted input, YAML front matter, warnings.

Project files are read through kcode.safety.workspace_files.read_workspace_file (must resolve inside the workspace,
be a regular file, be small), so a committed symlink to ~/.ssh or a FIFO is refused with a warning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcode.safety.workspace_files import UnsafeFile, read_workspace_file

MAX_FILE_BYTES = 256 * 1024


@dataclass
class Warnings:
    """Problems found while loading; each names the file and, where there is one, the field."""

    items: list[str] = field(default_factory=list)

    def add(self, path: Path | str, problem: str, field_name: str = "") -> None:
        where = f"{path}" + (f": field `{field_name}`" if field_name else "")
        self.items.append(f"{where}: {problem}")


@dataclass(frozen=True)
class Source:
    """Where a directory of extension files lives: a project dir (needs checks) or a user dir."""

    base: Path  # the directory (e.g. <repo>/.claude/commands or ~/.config/kcode/commands)
    project_root: Path | None  # the workspace root for project files, None for user files

    @property
    def scope(self) -> str:
        return "user" if self.project_root is None else "project"


def read_text(path: Path, source: Source, warnings: Warnings) -> str | None:
    """The file's text, or None (with a warning) when it is unsafe or unreadable."""
    try:
        if source.project_root is not None:
            rel = os.path.relpath(path, source.project_root)
            raw = read_workspace_file(source.project_root, rel, MAX_FILE_BYTES, control=True)
        else:
            if not path.is_file():
                return None
            if path.stat().st_size > MAX_FILE_BYTES:
                warnings.add(path, f"ignored; over the {MAX_FILE_BYTES}-byte limit")
                return None
            raw = path.read_bytes()
    except UnsafeFile as err:
        warnings.add(path, f"ignored; {err}")
        return None
    except OSError as err:
        warnings.add(path, f"ignored; cannot read it ({err.strerror})")
        return None
    if raw is None:
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        warnings.add(path, "ignored; it is not UTF-8 text")
        return None


def list_dir(base: Path) -> list[Path]:
    """Entries of `base`, sorted by name (byte-stable listings); [] when it is not a directory."""
    try:
        if base.is_symlink() or not base.is_dir():
            return []
        return sorted(base.iterdir(), key=lambda p: p.name)
    except OSError:
        return []


def split_front_matter(
    text: str, path: Path, warnings: Warnings
) -> tuple[dict[str, Any] | None, str]:
    """(front matter mapping, body). No front matter → ({}, text). Unparseable → (None, body)."""
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return {}, text
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            head, body = "\n".join(lines[1:i]), "\n".join(lines[i + 1 :])
            break
    else:
        warnings.add(path, "the front matter has no closing `---` line", "front matter")
        return None, text
    import yaml  # type: ignore[import-untyped]

    try:
        data = yaml.safe_load(head) if head.strip() else {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        warnings.add(path, f"invalid YAML{where}: {problem}", "front matter")
        return None, body
    except RecursionError:  # `a: [[[[…` thousands deep: PyYAML recurses per level
        warnings.add(path, "invalid YAML: nested too deeply to parse", "front matter")
        return None, body
    if data is None:
        data = {}
    if not isinstance(data, dict):
        warnings.add(path, "must be a mapping of `key: value` lines", "front matter")
        return None, body
    # Kimi accepts camelCase, kebab-case and snake_case spellings: compare in one form.
    return {normal_key(str(k)): v for k, v in data.items()}, body


def normal_key(key: str) -> str:
    out = []
    for ch in key.strip():
        if ch.isupper():
            out.append("_" + ch.lower())
        else:
            out.append("_" if ch == "-" else ch)
    return "".join(out).lstrip("_")


def str_field(
    meta: dict[str, Any], key: str, path: Path, warnings: Warnings, *, limit: int = 0
) -> str | None:
    """A string field (numbers are read as text); a list or a mapping is a warning."""
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        warnings.add(path, f"must be text, not {type(value).__name__}", key)
        return None
    text = str(value).strip()
    if limit and len(text) > limit:
        warnings.add(path, f"is {len(text)} characters; only the first {limit} are used", key)
        text = text[:limit]
    return text


def bool_field(meta: dict[str, Any], key: str, path: Path, warnings: Warnings) -> bool | None:
    value = meta.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    warnings.add(path, f"must be true or false, not {value!r}", key)
    return None


def name_list(meta: dict[str, Any], key: str, path: Path, warnings: Warnings) -> list[str] | None:
    """A list of names given as a YAML list or a comma/space separated string (Claude's `tools`)."""
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [p for p in value.replace(",", " ").split() if p]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    warnings.add(path, "must be a list of names or a comma-separated string", key)
    return None
