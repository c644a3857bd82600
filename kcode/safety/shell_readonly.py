"""Which shell commands only read, so that several of them in one reply may run at the same time.

This is a scheduling decision, not a permission: every call is still approved (kcode.safety.approval) and
still runs in the sandbox when it is on. A command counts as read-only when the bash grammar walk
(kcode.safety.shell_parse) finds nothing it cannot know in advance, no redirect into a file (`> /dev/null`
and `2>&1` are fine), no expansion or environment prefix, and only commands from READ_ONLY below,
with none of the options that make them write or run something (find -exec/-delete/-fprint,
git --output/-c/--ext-diff, rg --pre, sort -o, date -s, ...). Anything else (an unknown program, a
pipe into an interpreter, `sed`, `awk`, `xargs`, wrappers such as `env`) keeps the old behaviour: it
runs alone, in call order, and every later call waits for it.
"""

from __future__ import annotations

from functools import lru_cache

from kcode.safety.shell_parse import Unparseable, walk_command

# Plain readers: nothing in their option set writes a file or starts another program.
READ_ONLY = frozenset(
    {
        "grep", "egrep", "fgrep", "rg", "ls", "cat", "find", "head", "tail", "wc", "sleep",
        "echo", "printf", "pwd", "true", "false", "test", "[", "cd", "stat", "du", "df",
        "basename", "dirname", "realpath", "readlink", "diff", "cmp", "md5sum", "sha1sum",
        "sha256sum", "nl", "cut", "tr", "jq", "date", "sort", "git", "which", "uname", "id",
    }
)  # fmt: skip
# git subcommands that only read (they may refresh .git/index opportunistically, never fail on it).
GIT_READ_ONLY = frozenset(
    {
        "status", "log", "diff", "show", "blame", "ls-files", "ls-tree", "rev-parse", "grep",
        "shortlog", "describe", "cat-file", "rev-list", "whatchanged",
    }
)  # fmt: skip
_GIT_GLOBAL_WITH_VALUE = frozenset({"-C", "--git-dir", "--work-tree"})
_GIT_GLOBAL_FLAGS = frozenset({"--no-pager", "-P", "--no-optional-locks", "--literal-pathspecs"})


def _option_writes(words: list[str]) -> bool:
    """Options of an allowed command that write a file or run a program."""
    name, args = words[0], words[1:]
    if name == "rg":
        return any(a.startswith(("--pre", "--search-zip")) or a == "-z" for a in args)
    if name == "sort":
        return any(
            a.startswith(("--output", "--compress-program"))
            or (a.startswith("-") and not a.startswith("--") and "o" in a)
            for a in args
        )
    if name == "date":
        return any(a.startswith(("-s", "--set")) for a in args)
    if name == "git":
        return not _git_reads(args)
    return False


def _git_reads(args: list[str]) -> bool:
    rest = list(args)
    while rest and rest[0].startswith("-"):
        if rest[0] in _GIT_GLOBAL_WITH_VALUE:
            rest = rest[2:]
        elif rest[0] in _GIT_GLOBAL_FLAGS:
            rest = rest[1:]
        else:
            return False  # an unknown global option (-c, --exec-path=...): not sure
    return bool(rest) and rest[0] in GIT_READ_ONLY


@lru_cache(maxsize=512)
def is_read_only_command(command: str) -> bool:
    """True when every part of `command` only reads (see the module docstring)."""
    if not command.strip():
        return False
    try:
        walk = walk_command(command)
    except (Unparseable, RecursionError):
        return False
    if walk.unknown or walk.writes or walk.named or not walk.commands:
        return False
    for simple in walk.commands:
        # not literal = an expansion, an environment prefix, or a dangerous option (find -exec,
        # git --output): what it does is not known before it runs.
        if not simple.literal or not simple.words:
            return False
        if simple.words[0] not in READ_ONLY or _option_writes(simple.words):
            return False
    return True
