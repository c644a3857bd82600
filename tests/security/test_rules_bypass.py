"""Issue #11 class 4: shell spellings that widened allow rules or slipped past deny rules."""

from __future__ import annotations

import pytest

from kcode.safety.rules import RuleSet
from tests.security.conftest import Victim

RULES = RuleSet.parse(
    {
        "allow": ["shell(git diff*)", "shell(echo *)", "shell(find *)", "shell(cat *)"],
        "deny": ["shell(rm*)", "edit(migrations/**)"],
    }
)

CASES = [
    ("git diff HEAD", "allow"),
    ("git diff $'\\'' ; touch X ; echo \\'", "ask"),
    ("echo ${x:- #}; touch X", None),
    ("GIT_EXTERNAL_DIFF=./evil git diff", None),
    ("git difftool -x ./evil", None),
    ("git diff --output=pwned", None),
    ("git -c core.pager=./evil diff", None),
    ("find . -exec touch X ;", None),
    ("find . -delete", None),
    ("git diff > out.txt", None),  # a write is not covered by a read-only allow
    ("/bin/rm -f x", "deny"),
    ("{rm,-f,x}", "ask"),
    ("env -i A=1 bash -c 'rm -f x'", "deny"),
    ("$(echo rm) -f x", "ask"),
    ("if true; then rm -f x; fi", "deny"),
    ("echo rm -f x | sh", "ask"),
    ("nice -n 5 rm -f x", "deny"),
    ("setsid rm -f x", "deny"),
    ("shopt -s expand_aliases; alias r=rm; r x", "ask"),
    ("r\\\nm -f x", "deny"),
    ("f() { rm x; }; f", "deny"),
    ("cat <(rm x)", "deny"),
    ("timeout 5 xargs rm < list", "deny"),
    ("sh <<EOF\ntouch X\nEOF\n", "ask"),
    ("eval touch X", "ask"),
    ("mv a migrations/001.py", "deny"),
    ("echo x > migrations/001.py", "deny"),
    ("sed -i s/a/b/ ./migrations/001.py", "deny"),
    # bashlex cannot parse [[ ]], case or time: a rewrite keeps every command (shell_rewrite)
    ("[[ -f x ]] && rm y", "deny"),
    ("if [[ -n $x && -d y ]]; then rm -f x; fi", "deny"),
    ("time rm -f x", "deny"),
    ("time -p make | rm -f x", "deny"),
    ('case "$1" in a|b) echo a ;; *) rm -f x ;; esac', "deny"),
    ("case x in a) case y in b) rm q ;; esac ;; esac", "deny"),
    ("for f in *; do [[ -d $f ]] || rm -f $f; done", "deny"),
    ("[[ -f x ]] && echo yes", None),  # `[[ ]]` becomes `true`, which no allow rule names
    ("[[ $(rm -f x) ]]", "ask"),  # a substitution inside [[ ]]: not rewritten
    ("[[ $x -eq 1 ]] && echo", "ask"),  # arithmetic on a variable can run a[$(cmd)]
    ("case $(touch X) in a) ;; esac", "ask"),
    ("case x in a) touch X ;; esac <<EOF\nx\nEOF\n", "ask"),
    ("time", "ask"),
]


@pytest.mark.parametrize(("command", "expected"), CASES)
def test_each_spelling_gets_its_verdict(command: str, expected: str | None) -> None:
    assert RULES.shell_verdict(command)[0] == expected, RULES.shell_verdict(command)


USER_CONFIG = '[rules]\nallow = ["shell(git diff*)", "shell(echo *)"]\ndeny = ["shell(rm*)"]\n'
E2E = [
    "git diff $'\\'' ; touch MARKER ; echo \\'",
    "echo ${x:- #}; touch MARKER",
    "GIT_EXTERNAL_DIFF=./evil.sh git diff HEAD~0 --no-index README.md KEEP",
    "git diff --output=MARKER",
    "{rm,-f,KEEP}",
    "$(echo rm) -f KEEP",
    "echo rm -f KEEP | sh",
]


@pytest.mark.parametrize("command", E2E)
def test_bypass_is_stopped_by_the_real_binary(victim: Victim, command: str) -> None:
    cfg = victim.home / ".config" / "kcode" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(USER_CONFIG)
    victim.write("KEEP", "keep me\n")
    evil = victim.write("evil.sh", "#!/bin/sh\ntouch MARKER\n")
    evil.chmod(0o755)
    turns = [
        {"tool_calls": [{"name": "shell", "arguments": {"command": command}}]},
        {"text": "done"},
    ]
    attack = victim.run(turns)
    assert attack.code == 4, (attack.stdout, attack.stderr)
    assert not (victim.repo / "MARKER").exists()
    assert (victim.repo / "KEEP").exists()


@pytest.mark.parametrize(
    "command", ["[[ -f KEEP ]] && rm -f KEEP", "case x in x) rm -f KEEP ;; esac", "time rm -f KEEP"]
)
def test_deny_holds_inside_syntax_bashlex_lacks(victim: Victim, command: str) -> None:
    cfg = victim.home / ".config" / "kcode" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(USER_CONFIG)
    victim.write("KEEP", "keep me\n")
    turns = [
        {"tool_calls": [{"name": "shell", "arguments": {"command": command}}]},
        {"text": "done"},
    ]
    attack = victim.run(turns, "--approval", "auto", "--output-format", "stream-json")
    assert (victim.repo / "KEEP").read_text() == "keep me\n"
    assert "deny rule" in attack.stdout, attack.stdout[-2000:]
