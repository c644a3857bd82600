"""Reading hook definitions: the Claude JSON shape and Kimi's `[[hooks]]` TOML tables.

Claude (`.kcode/hooks.json`, `.claude/settings.json`, `.claude/settings.local.json`,
`~/.config/kcode/hooks.json`): `{"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type":
"command", "command": "...", "timeout": 60}]}]}}`. Kimi (user config.toml): `[[hooks]] event = "PreToolUse"
matcher = "Bash" command = "..." timeout = 30`. Every malformed piece is a warning naming the file and
the field; the other hooks still load.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcode.extensions.files import Source, Warnings, read_text
from kcode.safety.json_input import loads_json

if TYPE_CHECKING:
    from kcode.config.loader import Config

EVENTS = (
    "PreToolUse", "PostToolUse", "PostToolUseFailure", "UserPromptSubmit", "Stop",
    "SubagentStart", "SubagentStop", "SessionStart", "SessionEnd", "PreCompact", "Notification",
)  # fmt: skip
# Events whose matcher is a tool name; the others match their own value (source, trigger, ...).
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure"})
PROJECT_HOOK_FILES = (".kcode/hooks.json", ".claude/settings.json", ".claude/settings.local.json")
USER_HOOK_FILE = "hooks.json"  # in the user config dir ($XDG_CONFIG_HOME/kcode)
DEFAULT_TIMEOUT_S = 60.0  # Claude's 600 s would let one stuck hook hold a turn for ten minutes
KIMI_DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 600.0
# Claude: a matcher of only these characters is an exact name or a `|`/`,` list, else a regex.
PLAIN_MATCHER = re.compile(r"^[A-Za-z0-9_\-\s,|]*$")


@dataclass(frozen=True)
class HookSpec:
    event: str
    matcher: str
    command: str
    timeout_s: float
    source: str  # the file it came from (for messages and `kcode doctor`)
    scope: str  # user | project
    regex_only: bool = False  # Kimi/Codex: the matcher is always a regex

    def matches(self, names: tuple[str, ...]) -> bool:
        return matcher_predicate(self.matcher, self.regex_only)(names)


def matcher_predicate(matcher: str, regex_only: bool = False) -> Callable[[tuple[str, ...]], bool]:
    text = matcher.strip()
    if text in ("", "*"):
        return lambda names: True
    if not regex_only and PLAIN_MATCHER.match(text):
        wanted = {p.strip() for p in re.split(r"[|,]", text) if p.strip()}
        return lambda names: any(n in wanted for n in names)
    pattern = re.compile(text)
    return lambda names: any(pattern.search(n) for n in names)


def _timeout(value: Any, default: float, where: str, field: str, warnings: Warnings) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        warnings.add(where, f"must be a positive number of seconds, not {value!r}", field)
        return default
    return float(min(value, MAX_TIMEOUT_S))


def _matcher(
    value: Any, where: str, field: str, warnings: Warnings, regex_only: bool
) -> str | None:
    if value is None:
        return ""
    if not isinstance(value, str):
        warnings.add(where, f"must be text, not {type(value).__name__}; hook skipped", field)
        return None
    try:
        matcher_predicate(value, regex_only)
    except re.error as err:
        warnings.add(where, f"invalid regular expression {value!r} ({err}); hook skipped", field)
        return None
    return value


def parse_claude_hooks(data: Any, where: str, scope: str, warnings: Warnings) -> list[HookSpec]:
    """The `hooks` table of a Claude settings/hooks file (the whole file's object is `data`)."""
    if not isinstance(data, dict):
        warnings.add(where, "must be a JSON object", "(top level)")
        return []
    table = data.get("hooks")
    if table is None:
        return []
    if not isinstance(table, dict):
        warnings.add(where, 'must be an object of events: {"PreToolUse": [...]}', "hooks")
        return []
    out: list[HookSpec] = []
    for event, groups in table.items():
        field = f"hooks.{event}"
        if event not in EVENTS:
            warnings.add(where, f"unknown hook event; kcode runs {', '.join(EVENTS)}", field)
            continue
        if not isinstance(groups, list):
            warnings.add(where, "must be a list of {matcher, hooks} objects", field)
            continue
        for i, group in enumerate(groups):
            gfield = f"{field}[{i}]"
            if not isinstance(group, dict):
                warnings.add(where, "must be an object with `matcher` and `hooks`", gfield)
                continue
            matcher = _matcher(group.get("matcher"), where, f"{gfield}.matcher", warnings, False)
            entries = group.get("hooks")
            if matcher is None:
                continue
            if not isinstance(entries, list):
                warnings.add(where, "must be a list of hook commands", f"{gfield}.hooks")
                continue
            for j, entry in enumerate(entries):
                efield = f"{gfield}.hooks[{j}]"
                spec = _entry(entry, event, matcher, where, efield, scope, warnings)
                if spec is not None:
                    out.append(spec)
    return out


def _entry(
    entry: Any, event: str, matcher: str, where: str, field: str, scope: str, warnings: Warnings
) -> HookSpec | None:
    if not isinstance(entry, dict):
        warnings.add(where, 'must be {"type": "command", "command": "..."}', field)
        return None
    kind = entry.get("type", "command")
    if kind != "command":
        warnings.add(
            where, f'hook type {kind!r} is not supported (only "command")', f"{field}.type"
        )
        return None
    command = entry.get("command")
    if not isinstance(command, str) or not command.strip():
        warnings.add(where, "must be a non-empty command line", f"{field}.command")
        return None
    timeout = _timeout(entry.get("timeout"), DEFAULT_TIMEOUT_S, where, f"{field}.timeout", warnings)
    return HookSpec(event, matcher, command, timeout, where, scope)


def parse_kimi_hooks(items: Any, where: str, warnings: Warnings) -> list[HookSpec]:
    """`[[hooks]]` tables from the user's config.toml (only event, matcher, command, timeout)."""
    if not items:
        return []
    if not isinstance(items, list):
        warnings.add(where, "must be an array of tables ([[hooks]])", "hooks")
        return []
    out: list[HookSpec] = []
    for i, item in enumerate(items):
        field = f"hooks[{i}]"
        if not isinstance(item, dict):
            warnings.add(where, "must be a table with event, matcher, command, timeout", field)
            continue
        unknown = sorted(set(item) - {"event", "matcher", "command", "timeout"})
        if unknown:
            warnings.add(where, f"unknown key(s) {', '.join(unknown)} ignored", field)
        event = item.get("event")
        if event not in EVENTS:
            warnings.add(where, f"unknown hook event {event!r}; hook skipped", f"{field}.event")
            continue
        matcher = _matcher(item.get("matcher"), where, f"{field}.matcher", warnings, True)
        command = item.get("command")
        if matcher is None:
            continue
        if not isinstance(command, str) or not command.strip():
            warnings.add(where, "must be a non-empty command line", f"{field}.command")
            continue
        timeout = _timeout(
            item.get("timeout"), KIMI_DEFAULT_TIMEOUT_S, where, f"{field}.timeout", warnings
        )
        out.append(HookSpec(event, matcher, command, timeout, where, "user", regex_only=True))
    return out


def read_hook_file(path: Path, source: Source, warnings: Warnings) -> list[HookSpec]:
    text = read_text(path, source, warnings)
    if text is None:
        return []
    try:
        data = loads_json(text)
    except ValueError as err:
        warnings.add(path, f"invalid JSON: {err}; its hooks are ignored")
        return []
    return parse_claude_hooks(data, str(path), source.scope, warnings)


def project_hook_files(root: Path) -> list[Path]:
    return [root / rel for rel in PROJECT_HOOK_FILES if (root / rel).is_file()]


def project_has_hooks(root: Path) -> bool:
    """Whether the project defines any hook (settings files without `hooks` do not count)."""
    for path in project_hook_files(root):
        try:
            data = loads_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return True  # unreadable: count it, `kcode doctor` shows why it is not used
        if isinstance(data, dict) and data.get("hooks"):
            return True
    return False


def load_hooks(
    root: Path,
    user_dir: Path,
    config: Config,
    config_path: str,
    warnings: Warnings,
    *,
    trusted: bool,
) -> list[HookSpec]:
    """User hooks (always), then project hooks (only when the repository is trusted)."""
    specs = read_hook_file(user_dir / USER_HOOK_FILE, Source(user_dir, None), warnings)
    specs += parse_kimi_hooks(getattr(config, "hooks", None), config_path, warnings)
    if trusted:
        for path in project_hook_files(root):
            specs += read_hook_file(path, Source(path.parent, root), warnings)
    return specs
