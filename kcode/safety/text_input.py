"""Text that may not be valid Unicode: a model's output, a tool's output, a file name.

Python strings can hold lone surrogates (U+D800–U+DFFF) that no UTF-8 encoder accepts: JSON's
"\\ud800" escape in a model's reply or tool arguments decodes to one, and the operating system hands
over a file name that is not UTF-8 (`bad\\xff.txt`) with its bad bytes as U+DC80–U+DCFF. The first
write of such a string to the session log or the terminal ended the run with "internal error". They
become U+FFFD (the replacement character) where text enters kcode: model deltas, tool results.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def valid_unicode(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD; the same object when there is none."""
    try:
        text.encode("utf-8")  # C speed; the common case ends here
        return text
    except UnicodeEncodeError:
        return "".join(REPLACEMENT if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def valid_unicode_in(value: Any) -> Any:
    """`valid_unicode` over the strings of a parsed JSON value (keys included). Callers bound the
    depth (kcode.safety.json_input.MAX_ARGUMENT_DEPTH) before walking it."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, dict):
        return {valid_unicode(str(k)): valid_unicode_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid_unicode_in(v) for v in value]
    return value
