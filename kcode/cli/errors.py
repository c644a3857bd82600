"""How usage and configuration errors are reported (kept out of main.py, which other work changes).

A bad command line is one line (kcode.cli.parse words it). With `--output-format json|stream-json`
the error is also the one JSON object (or `result` line) a script reads on stdout, so it never has
to parse stderr.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

JSON_FORMATS = ("json", "stream-json")
output_format: str | None = None  # set by kcode.cli.main.run_cli from argv, before any parsing


def format_in_argv(args: list[str]) -> str | None:
    """The `--output-format` value in argv, as far as it can be read without parsing."""
    for index, arg in enumerate(args):
        if arg == "--output-format" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--output-format="):
            return arg.partition("=")[2]
    return None


def report_error(message: str, code: int = 2) -> None:
    """The message on stderr; with a JSON output format also the JSON result on stdout."""
    from kcode.safety.terminal_text import visible

    # Messages name files, sessions and servers a repository chose: no raw escape sequences.
    sys.stderr.write(wrapped(f"kcode: {visible(message)}") + "\n")
    if output_format not in JSON_FORMATS:
        return
    from kcode.run_result import result_object  # the SPEC §4 fields, as every run's result has

    result: dict[str, Any] = {
        **result_object(None, code, None, time.monotonic(), {}),
        "error": message,
    }
    if output_format == "stream-json":
        result = {"type": "result", "agent": "main", "ts": time.time(), **result}
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def wrapped(text: str) -> str:
    """In a terminal, long messages (the no-model help) wrapped at words, not mid-word by the
    terminal; piped, one line as before (scripts grep it)."""
    if not sys.stderr.isatty() or len(text) <= 80:
        return text
    import shutil
    import textwrap

    width = max(min(shutil.get_terminal_size((100, 24)).columns, 100), 40)
    lines = textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)
    return "\n".join(lines) or text


def report_usage(message: str) -> int:
    """A bad command line: one line saying what is wrong and the right form. Returns 2."""
    report_error(message, 2)
    return 2
