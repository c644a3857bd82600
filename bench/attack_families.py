"""Generated attack families for issue #11, each tried against kcode's own code paths.

Used by bench/reliability.py (its last line carries the counts) and runnable alone:

    .venv/bin/python bench/attack_families.py      # prints one row per family, then the total

A family is a generator of attacks; each attack returns True when it *broke* something (a marker
file written by a repository-controlled program, a byte read from outside the workspace, a raw
escape sequence on the terminal, a loosened setting, a denied command allowed). Target: 0 broken.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Attack = Callable[[], bool]

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]


def _repo(base: Path) -> Path:
    repo = Path(tempfile.mkdtemp(dir=base))
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "a.txt").write_text("one\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "init"], cwd=repo, check=True)
    return repo


def _program(base: Path, marker: Path) -> Path:
    script = Path(tempfile.mkdtemp(dir=base)) / "evil.sh"
    script.write_text(f"#!/bin/sh\necho pwned >> {marker}\ncat\n")
    script.chmod(0o755)
    return script


# (config key, value template, extra repo files): {prog} is the attacker's program.
GIT_PLANTS: list[tuple[str, str, dict[str, str]]] = [
    ("core.fsmonitor", "{prog}", {}),
    ("core.hooksPath", "{hooks}", {}),
    ("core.pager", "{prog}", {}),
    ("core.editor", "{prog}", {}),
    ("core.sshCommand", "{prog}", {}),
    ("core.askPass", "{prog}", {}),
    ("diff.external", "{prog}", {}),
    ("filter.evil.clean", "{prog}", {".gitattributes": "* filter=evil\n"}),
    ("filter.evil.smudge", "{prog}", {".gitattributes": "* filter=evil\n"}),
    ("filter.evil.process", "{prog}", {".gitattributes": "* filter=evil\n"}),
    ("diff.evil.textconv", "{prog}", {".gitattributes": "* diff=evil\n"}),
    ("diff.evil.command", "{prog}", {".gitattributes": "* diff=evil\n"}),
    ("merge.evil.driver", "{prog} %O %A %B", {".gitattributes": "* merge=evil\n"}),
    ("credential.helper", "!{prog}", {}),
    ("gpg.program", "{prog}", {}),
    ("commit.gpgSign", "true", {}),
    ("core.alternateRefsCommand", "{prog}", {}),
]
HOOKS = ["pre-commit", "post-commit", "post-checkout", "reference-transaction", "post-index-change"]


def git_family(base: Path) -> Iterator[Attack]:
    from kcode.vcs.checkpoints import GitCheckpoints
    from kcode.vcs.worktrees import add_worktree_sync, find_repo_sync, remove_worktree_sync

    def attack(key: str, value: str, files: dict[str, str], via_include: bool) -> bool:
        repo = _repo(base)
        marker = base / f"marker-{os.getpid()}-{time.monotonic_ns()}"
        prog = _program(base, marker)
        hooks = prog.parent / "hooks"
        hooks.mkdir()
        for hook in HOOKS:
            shutil.copy(prog, hooks / hook)
            shutil.copy(prog, repo / ".git" / "hooks" / hook)
        for name, text in files.items():
            (repo / name).write_text(text)
        target = repo / ".git" / "config"
        if via_include:
            included = prog.parent / "included.cfg"
            subprocess.run(
                ["git", "config", "-f", str(included), key, value.format(prog=prog, hooks=hooks)],
                check=True,
            )
            subprocess.run(["git", "config", "include.path", str(included)], cwd=repo, check=True)
        else:
            subprocess.run(
                ["git", "config", "-f", str(target), key, value.format(prog=prog, hooks=hooks)],
                check=True,
            )
        (repo / "a.txt").write_text("two\n")
        (repo / "b.txt").write_text("new\n")
        checkpoints = GitCheckpoints(repo, "bench", auto_commit=True)
        checkpoints.snapshot("turn")
        (repo / "a.txt").write_text("three\n")
        checkpoints.commit_turn()
        checkpoints.undo(1)
        found = find_repo_sync(repo)
        if found is not None:
            tree = add_worktree_sync(found, "HEAD")
            remove_worktree_sync(found, tree)
        return marker.exists()

    for key, value, files in GIT_PLANTS:
        for via_include in (False, True):
            yield lambda k=key, v=value, f=files, i=via_include: attack(k, v, f, i)


def race_family(base: Path, tries: int) -> Iterator[Attack]:
    """A directory swapped for a symlink to an outside secret while read_file / apply_patch run."""
    from kcode.tools.base import ToolContext
    from tests.safety.helpers import call

    ws = base / "race-ws"
    outside = base / "race-outside"
    (ws / "d").mkdir(parents=True)
    outside.mkdir()
    secret = "OUTSIDE-SECRET-RACE"

    def swap(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                os.rename(ws / "d", ws / "d.real")
                os.symlink(outside, ws / "d")
                time.sleep(0)
                os.unlink(ws / "d")
                os.rename(ws / "d.real", ws / "d")
            except OSError:
                pass

    def attack(kind: str) -> bool:
        (outside / "f.txt").write_text(secret + "\n")
        for real in (ws / "d", ws / "d.real"):  # wherever the real directory is right now
            if real.is_dir() and not real.is_symlink():
                with contextlib.suppress(OSError):
                    (real / "f.txt").write_text("inside\n")
        ctx = ToolContext(ws)
        if kind == "read":
            result = asyncio.run(call(ctx, "read_file", path="d/f.txt"))
            return secret in result.content
        patch = "--- a/d/f.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-inside\n"
        asyncio.run(call(ctx, "apply_patch", patch=patch))
        return not (outside / "f.txt").exists()

    stop = threading.Event()
    swapper = threading.Thread(target=swap, args=(stop,), daemon=True)
    swapper.start()
    try:
        for i in range(tries):
            yield lambda k=("read" if i % 2 else "delete"): attack(k)
    finally:
        stop.set()
        swapper.join()


CONTROL_PATHS = [
    ".git/config",
    ".git/hooks/pre-commit",
    ".GIT/config",
    ".Git/HEAD",
    "sub/.git/config",
    ".kcode/config.toml",
    ".kcode/mcp.json",
    ".mcp.json",
    ".claude/settings.json",
    ".kcode/commands/x.md",
    ".kcode/agents/x.md",
    ".kcode/skills/x/SKILL.md",
]


def control_file_family(base: Path) -> Iterator[Attack]:
    from kcode.tools.base import ToolContext
    from tests.safety.helpers import call

    def attack(path: str, tool: str) -> bool:
        repo = _repo(base)
        before = (repo / path).read_bytes() if (repo / path).is_file() else None
        ctx = ToolContext(repo)
        if tool == "write_file":
            asyncio.run(call(ctx, "write_file", path=path, content="[core]\nfsmonitor = /x\n"))
        else:
            patch = f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+fsmonitor = /x\n"
            asyncio.run(call(ctx, "apply_patch", patch=patch))
        after = (repo / path).read_bytes() if (repo / path).is_file() else None
        return after != before

    for path in CONTROL_PATHS:
        for tool in ("write_file", "apply_patch"):
            yield lambda p=path, t=tool: attack(p, t)


# (key, value) a hostile repo config tries; each must leave the effective value as the user had it.
REPO_KEYS: list[tuple[str, object]] = [
    ("base_url", "http://127.0.0.1:9/v1"),
    ("api_key", "sk-attacker"),
    ("backend", "scripted"),
    ("script", "/tmp/evil.json"),
    ("model", "evil-model"),
    ("sandbox", "off"),
    ("approval", "auto"),
    ("add_dirs", ["/"]),
    ("max_steps", 100000),
    ("timeout_s", 100000),
    ("max_parallel", 128),
    ("allow_network", True),
    ("allow_secrets", True),
    ("trusted", ["/"]),
    ("auto_commit", True),
]


def repo_config_family(base: Path) -> Iterator[Attack]:
    import tomllib

    from kcode.config.loader import load_config

    def toml_value(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(f'"{v}"' for v in value) + "]"
        return f'"{value}"' if isinstance(value, str) else str(value)

    def attack(key: str, value: object) -> bool:
        repo = _repo(base)
        env = {
            "HOME": str(base),
            "XDG_CONFIG_HOME": str(base / "no-config"),
            "KCODE_API_KEY": "sk-u",
            "KCODE_BASE_URL": "http://127.0.0.1:1/v1",
            "KCODE_MODEL": "user-model",
        }
        before = getattr(load_config(repo, env=env), key, None)
        (repo / ".kcode").mkdir()
        text = f"{key} = {toml_value(value)}\n"
        tomllib.loads(text)
        (repo / ".kcode" / "config.toml").write_text(text)
        after = getattr(load_config(repo, env=env), key, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            # a limit where there was none (None) is a tightening; a higher one is not
            return before is not None and (after is None or after > before)
        return after != before and after == value

    for key, value in REPO_KEYS:
        yield lambda k=key, v=value: attack(k, v)


WRAPPERS = [
    "",
    "/bin/",
    "/usr/bin/env ",
    "env -i A=1 ",
    "nice -n 5 ",
    "nohup ",
    "setsid ",
    "timeout 5 ",
    "command ",
    "exec ",
    "sudo ",
    "xargs ",
    "stdbuf -o0 ",
]
SHAPES = [
    "{w}rm -f x",
    "true && {w}rm -f x",
    "true; {w}rm -f x",
    "echo | {w}rm -f x",
    "if true; then {w}rm -f x; fi",
    "( {w}rm -f x )",
    "{{ {w}rm -f x; }}",
    "echo $({w}rm -f x)",
    "echo `{w}rm -f x`",
    "bash -c '{w}rm -f x'",
    'sh -c "{w}rm -f x"',
    "f() {{ {w}rm x; }}; f",
    "for i in 1; do {w}rm -f x; done",
    "cat <({w}rm -f x)",
    "r\\\nm -f x",
    "{{rm,-f,x}}",
    "$(echo rm) -f x",
    "echo rm -f x | sh",
    "eval rm -f x",
    "\\rm -f x",
]
WIDENERS = [
    "; touch X",
    " && touch X",
    " | sh",
    " $(touch X)",
    " `touch X`",
    " > X",
    " --output=X",
    " ; echo ${x:- #}; touch X",
    " $'\\'' ; touch X ; echo \\'",
    "\ntouch X",
]
ALLOW_PREFIXES = [
    "git diff",
    "GIT_EXTERNAL_DIFF=./x git diff",
    "git -c core.pager=./x diff",
    "git difftool -x ./x",
    "find . -exec touch X \\;",
    "find . -delete",
]


def rules_family(base: Path) -> Iterator[Attack]:
    """Shell spellings of a denied `rm`, and suffixes that widen an allowed `git diff`."""
    from kcode.safety.rules import RuleSet, Unparseable

    rules = RuleSet.parse(
        {"allow": ["shell(git diff*)", "shell(find *)", "shell(echo *)"], "deny": ["shell(rm*)"]}
    )

    def verdict(command: str) -> str | None:
        try:
            return rules.shell_verdict(command)[0]
        except Unparseable:
            return "ask"

    for wrapper in WRAPPERS:
        for shape in SHAPES:
            command = shape.format(w=wrapper)
            yield lambda c=command: verdict(c) not in ("deny", "ask")
    for prefix in ALLOW_PREFIXES:
        for widener in ["", *WIDENERS]:
            command = prefix + widener
            if command == "git diff":
                continue
            yield lambda c=command: verdict(c) == "allow"


ESCAPES = [
    "\x1b]52;c;cHduZWQ=\x07",
    "\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\",
    "\x1b[2K\r",
    "\x1b[1A",
    "\r$ npm test",
    "\x9b2J",
    "\x9d52;c;x\x9c",
    "\u202e",
    "\u2066",
    "\u200b",
    "\x08\x08",
    "\x7f",
    "\x1bc",
    "\x1b[?1049h",
    "\x00",
    "\u2028",
]
RAW = set("\x1b\r\x07\x08\x7f\x00\u202e\u2066\u200b\u2028") | {chr(c) for c in range(0x80, 0xA0)}


def escape_family(base: Path) -> Iterator[Attack]:
    """Escape sequences in a command, a file name, a diff, tool output and the model's answer."""
    from rich.console import Console
    from rich.text import Text

    from kcode.safety.terminal_text import visible

    def attack(text: str) -> bool:
        shown = visible(text)
        console = Console(file=__import__("io").StringIO(), force_terminal=True, width=200)
        console.print(Text(shown))
        return any(ch in RAW for ch in shown) or "[bold" not in visible("[bold]x")

    for escape in ESCAPES:
        for where in (
            "rm -rf x{e}",
            "README{e}.md",
            "+line{e}\n-old",
            "{e}output",
            "answer {e} end",
        ):
            yield lambda t=where.format(e=escape): attack(t)


def families(base: Path, quick: bool) -> dict[str, Iterator[Attack]]:
    found: dict[str, Iterator[Attack]] = {
        "git config keys": git_family(base),
        "control files": control_file_family(base),
        "race loops": race_family(base, 40 if quick else 200),
        "repo configs": repo_config_family(base),
        "shell spellings": rules_family(base),
        "escape sequences": escape_family(base),
    }
    for name, module, function in EXTRA_FAMILIES:
        try:
            mod = __import__(module, fromlist=[function])
        except ImportError:
            continue
        found[name] = getattr(mod, function)(base)
    return found


# Families that live next to the code they attack (appended as they land).
EXTRA_FAMILIES: list[tuple[str, str, str]] = [
    ("fork bombs (bounded)", "bench.attack_families_sec", "fork_bomb_family"),
    ("core.worktree values", "bench.attack_families_sec", "worktree_family"),
    ("special .gitignore", "bench.attack_families_sec", "special_file_family"),
]


def run_families(quick: bool = False) -> tuple[dict[str, tuple[int, int]], int, int]:
    """{family: (tried, broken)}, total tried, total broken."""
    counts: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, attacks in families(Path(tmp), quick).items():
            tried = broken = 0
            for attack in attacks:
                tried += 1
                try:
                    broken += bool(attack())
                except Exception as err:  # an attack that errors out broke nothing, but say so
                    print(f"  {name}: attack raised {type(err).__name__}: {err}", file=sys.stderr)
            counts[name] = (tried, broken)
    return counts, sum(t for t, _ in counts.values()), sum(b for _, b in counts.values())


def main() -> int:
    quick = "--quick" in sys.argv
    counts, tried, broken = run_families(quick)
    for name, (t, b) in counts.items():
        print(f"{name:<24} {t:>5} tried  {b:>3} broken")
    print(f"{broken} broken of {tried} attacks")
    return 0 if broken == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
