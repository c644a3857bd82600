"""Rewrite the bash syntax bashlex cannot parse (`[[ ]]`, `case`, `time`) into syntax it can,
so that the commands around and inside them are still checked against the rules.

Used by kcode.safety.shell_parse only after bashlex failed. The rewrite never hides a command:

* `time [-p]` at the start of a command is dropped (it runs the command that follows);
* `[[ ... ]]` becomes `true`, only when its content runs nothing: no command/process
  substitution, no `${...}`, no `;`/`|`/`&`/newline, and no arithmetic comparison of a
  variable (`[[ $x -eq 1 ]]` evaluates `$x` as arithmetic, which can run `a[$(cmd)]`);
* `case W in p1) body1 ;; p2) body2 ;; esac` becomes `{ :\nbody1\nbody2\n}`: every branch is
  checked, as if all ran (a deny rule matching any branch denies); the subject and patterns must be
  plain words.

Anything else it is unsure of (here-documents, unbalanced quotes, an unexpected token) gives None,
and the command stays "ask". The sandbox, not this parser, is the security boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPS = (";;&", ";;", ";&", "&&", "||", "|&", ";", "&", "|", "(", ")", "\n")
_STARTERS = {"then", "do", "else", "elif", "if", "while", "until", "!", "{", "}", "in"}
_ARITH = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}
_PLAIN = re.compile(r"[A-Za-z0-9_.*?\[\]\-+/@!=:,%^~\"' ]*")
_MAX_TOKENS = 4000


@dataclass
class Tok:
    text: str
    start: int
    end: int
    op: bool


class _Unsure(Exception):
    pass


def rewrite_unsupported(command: str) -> str | None:
    """`command` with `[[ ]]`, `case` and `time` rewritten; None when that is not surely safe."""
    if "<<" in command:
        return None  # here-document bodies are not shell syntax
    try:
        return _rewrite(command)
    except _Unsure:
        return None


def _tokens(text: str) -> list[Tok]:
    out: list[Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t":
            i += 1
            continue
        if ch == "\\" and text[i + 1 : i + 2] == "\n":
            i += 2
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None and not (op.startswith("&") and text.startswith("&>", i)):
            out.append(Tok(op, i, i + len(op), True))
            i += len(op)
            continue
        start = i
        i = _word_end(text, i)
        out.append(Tok(text[start:i], start, i, False))
        if len(out) > _MAX_TOKENS:
            raise _Unsure
    return out


def _word_end(text: str, i: int) -> int:
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\n;()":
            if ch == "(" and i > 0 and text[i - 1] in "$<>":
                i = _balanced(text, i)  # $( ... ), <( ... ), >( ... )
                continue
            return i
        if ch in "|&":
            prev = text[i - 1] if i else ""
            if prev in "<>" or (ch == "&" and text[i + 1 : i + 2] == ">"):
                i += 1  # 2>&1, &>file, >|file: part of a redirect word
                continue
            return i
        if ch == "\\":
            i += 2
        elif ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise _Unsure
            i = end + 1
        elif ch == '"':
            i = _dquote_end(text, i)
        elif ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise _Unsure
            i = end + 1
        elif ch == "$" and text[i + 1 : i + 2] == "{":
            end = text.find("}", i)
            if end < 0:
                raise _Unsure
            i = end + 1
        else:
            i += 1
    return i


def _dquote_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j + 1
        if text.startswith("$(", j):
            j = _balanced(text, j + 1)
            continue
        j += 1
    raise _Unsure


def _balanced(text: str, i: int) -> int:
    """The index after the `)` matching the `(` at i (quotes inside respected)."""
    depth, j = 0, i
    while j < len(text):
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "'":
            end = text.find("'", j + 1)
            if end < 0:
                raise _Unsure
            j = end + 1
            continue
        if ch == '"':
            j = _dquote_end(text, j)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise _Unsure


def _starts(toks: list[Tok]) -> list[bool]:
    """Whether each token is where a command (or a reserved word) may begin."""
    flags: list[bool] = []
    at_start = True
    for tok in toks:
        flags.append(at_start)
        at_start = tok.op or (at_start and tok.text in _STARTERS)
    return flags


def _rewrite(text: str) -> str:
    toks = _tokens(text)
    starts = _starts(toks)
    out: list[str] = []
    pos = i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.op or not starts[i] or tok.text not in ("time", "[[", "case"):
            i += 1
            continue
        out.append(text[pos : tok.start])
        if tok.text == "time":
            i += 1
            if i < len(toks) and toks[i].text == "-p":
                i += 1
            pos = toks[i].start if i < len(toks) else len(text)
            if i < len(toks):
                starts[i] = True  # `time [[ ... ]]`, `time case ...`
            continue
        if tok.text == "[[":
            j = _test_end(toks, i)
            out.append("true")
        else:
            j, replacement = _case(text, toks, starts, i)
            out.append(replacement)
        pos = toks[j].end
        i = j + 1
    out.append(text[pos:])
    return "".join(out)


def _unsafe_word(word: str) -> bool:
    return any(s in word for s in ("$(", "`", "<(", ">(", "${"))


def _test_end(toks: list[Tok], i: int) -> int:
    has_var = arith = False
    for j in range(i + 1, len(toks)):
        tok = toks[j]
        if tok.text == "]]" and not tok.op:
            if has_var and arith:
                raise _Unsure
            return j
        if tok.op and tok.text not in ("&&", "||", "(", ")"):
            raise _Unsure
        if _unsafe_word(tok.text):
            raise _Unsure
        has_var = has_var or "$" in tok.text
        arith = arith or tok.text in _ARITH
    raise _Unsure


def _plain(tok: Tok) -> None:
    if tok.op or _unsafe_word(tok.text) or not _PLAIN.fullmatch(tok.text.replace("$", "")):
        raise _Unsure


def _case(text: str, toks: list[Tok], starts: list[bool], i: int) -> tuple[int, str]:
    """(index of `esac`, the replacement) for the `case` at toks[i]."""
    j = i + 1

    def need(k: int) -> Tok:
        if k >= len(toks):
            raise _Unsure
        return toks[k]

    _plain(need(j))
    j += 1
    while need(j).text == "\n":
        j += 1
    if need(j).text != "in" or need(j).op:
        raise _Unsure
    j += 1
    bodies: list[str] = []
    while True:
        while need(j).text == "\n":
            j += 1
        if need(j).text == "esac" and not need(j).op:
            return j, "{ :\n" + "".join(b + "\n" for b in bodies) + "}"
        if need(j).text == "(":
            j += 1
        while True:  # patterns: p1 | p2 | ... )
            _plain(need(j))
            j += 1
            if need(j).text == ")":
                break
            if need(j).text != "|":
                raise _Unsure
            j += 1
        body_start = need(j).end
        j, body_end = _body_end(toks, starts, j + 1)
        rewritten = rewrite_unsupported(text[body_start:body_end])
        if rewritten is None:
            raise _Unsure
        bodies.append(rewritten)
        if toks[j].text in (";;", ";&", ";;&"):
            j += 1


def _body_end(toks: list[Tok], starts: list[bool], j: int) -> tuple[int, int]:
    """(index of the token ending a case branch: `;;`/`;&`/`;;&` or `esac`, its start offset)."""
    depth = 0
    while j < len(toks):
        tok = toks[j]
        if starts[j] and not tok.op and tok.text == "case":
            depth += 1
        elif starts[j] and not tok.op and tok.text == "esac":
            if depth == 0:
                return j, tok.start
            depth -= 1
        elif depth == 0 and tok.op and tok.text in (";;", ";&", ";;&"):
            return j, tok.start
        j += 1
    raise _Unsure
