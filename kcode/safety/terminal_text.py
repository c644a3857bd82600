"""Untrusted text made safe for a terminal: control characters shown, never obeyed.

Anything kcode prints that came from the model, a file or a process goes through `visible` first.
An escape sequence in a command, a file name or tool output could otherwise rewrite what the user
sees (`rm -rf x\\r\\x1b[2K$ npm test` drawn as `$ npm test`), set the clipboard (OSC 52) or plant a
hyperlink (OSC 8). The mapping is per character and stateless, so text split across stream chunks
is made safe the same way as whole text.

- C0 controls except \\n and \\t, DEL and C1 controls (U+0080-U+009F): `\\x1b`, `\\r`, `\\x9b`.
  Backslash escapes are used (not caret notation) because they read the same in markdown.
- Bidi overrides/isolates/marks, zero-width characters, line/paragraph separators and lone
  surrogates: `<U+202E>`.
"""

from __future__ import annotations

import re

_NAMED = {"\r": "\\r", "\x1b": "\\x1b", "\x00": "\\x00", "\x08": "\\b", "\x07": "\\a"}
_FORMAT_CHARS = (
    "\u061c"  # arabic letter mark
    "\u180e"  # mongolian vowel separator
    "\u200b-\u200f"  # zero-width space / non-joiner / joiner, LRM, RLM
    "\u2028\u2029"  # line and paragraph separators
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\ufeff"  # zero-width no-break space (BOM)
    "\ud800-\udfff"  # lone surrogates (from surrogateescape decoding)
)
_CONTROL_CLASS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_UNSAFE = re.compile(f"[{_CONTROL_CLASS}{_FORMAT_CHARS}]")
_UNSAFE_WITH_LAYOUT = re.compile(f"[\t\n{_CONTROL_CLASS}{_FORMAT_CHARS}]")
# For JSON output: characters json.dumps(ensure_ascii=False) leaves raw that a terminal may obey.
_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_FORMAT_CHARS}]")


def _show(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    if code <= 0x9F:
        return f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def _show_match(match: re.Match[str]) -> str:
    return _show(match.group())


def visible(text: str, *, one_line: bool = False) -> str:
    """`text` with every control / invisible formatting character replaced by a visible form.

    Newlines and tabs are kept unless `one_line` (then they are shown as `\\n` / `\\t` too).
    """
    pattern = _UNSAFE_WITH_LAYOUT if one_line else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_show_match, text)


def has_unsafe(text: str) -> bool:
    """True when `visible(text)` would change something (newlines and tabs are fine)."""
    return _UNSAFE.search(text) is not None


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}"


def json_safe(line: str) -> str:
    """A JSON text with the characters `ensure_ascii=False` leaves raw (DEL, C1, bidi, zero-width)
    written as `\\uXXXX` escapes instead. Those characters only occur inside JSON strings, so the
    value is unchanged; only a terminal showing the line is protected."""
    if _JSON_UNSAFE.search(line) is None:
        return line
    return _JSON_UNSAFE.sub(_json_escape, line)


__all__ = ["has_unsafe", "json_safe", "visible"]
