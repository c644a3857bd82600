"""Session ids: what kcode makes, and the one pattern that recognises them (the CLI's `-r ID`, and
Session.open_existing, which must never turn an id into a path outside the sessions directory)."""

from __future__ import annotations

import re
import secrets
import time

SESSION_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
