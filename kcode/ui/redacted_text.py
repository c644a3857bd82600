"""`visible` for the REPL renderer: API keys redacted first, then control characters made visible.

The same two steps, with the same functions, as the json/text printers (kcode.ui.printers._Safe):
kcode.secrets.redact over the values kcode.secrets.display_secrets() lists, then
kcode.terminal_text.visible.
"""

from __future__ import annotations

from kcode.secrets import display_secrets, redact
from kcode.terminal_text import visible as _visible


def visible(text: str, *, one_line: bool = False) -> str:
    return _visible(redact(text, display_secrets()), one_line=one_line)
