"""Put on PYTHONPATH by tests/seam/test_fail_closed.py: makes the modules named in
KCODE_TEST_BLOCK_IMPORTS (comma-separated) fail to import, as in a broken or partial install."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

BLOCKED = frozenset(filter(None, os.environ.get("KCODE_TEST_BLOCK_IMPORTS", "").split(",")))


class _Blocker(MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name in BLOCKED:
            raise ModuleNotFoundError(
                f"{name} is blocked by the test (a broken install)", name=name
            )
        return None


if BLOCKED:
    sys.meta_path.insert(0, _Blocker())
