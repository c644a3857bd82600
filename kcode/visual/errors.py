"""The one error type of the visual package: a message for the user and the exit code it maps to."""

from __future__ import annotations


class VisualError(Exception):
    """Bad input or an environment problem the user must fix (exit 2 unless said otherwise)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
