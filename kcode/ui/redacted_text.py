"""`visible` for the REPL renderer: API keys redacted first, then control characters made visible.

The same two steps, with the same functions, as the json/text printers (kcode.ui.printers._Safe):
kcode.safety.secrets.redact over the values kcode.safety.secrets.display_secrets() lists, then
kcode.safety.terminal_text.visible.
"""

from __future__ import annotations

from kcode.safety.secrets import display_secrets, redact
from kcode.safety.terminal_text import visible as _visible


def visible(text: str, *, one_line: bool = False) -> str:
    return _visible(redact(text, display_secrets()), one_line=one_line)
