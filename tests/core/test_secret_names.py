"""The cheap file-name pre-check never lets a secret file past the full check."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kcode.safety.secrets import could_be_secret_name, secret_file_reason

PIECES = [".env", ".ENV", ".local", ".example", "id_rsa", "id_ed25519", ".pub", ".pem", ".Key",
          ".p12", ".pfx", ".netrc", "_netrc", ".git-credentials", ".pgpass", ".pypirc",
          ".htpasswd", "credentials", ".npmrc", "config", "main", ".py", "x", "-", "_"]  # fmt: skip


@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4), st.booleans())
def test_every_secret_name_passes_the_pre_check(parts: list[str], in_aws: bool) -> None:
    name = "".join(parts)
    path = Path("/nonexistent/.aws" if in_aws else "/nonexistent/dir") / name
    if secret_file_reason(path) is not None:
        assert could_be_secret_name(name)


def test_ordinary_source_files_skip_the_full_check() -> None:
    for name in ("main.py", "README.md", "index.html", "keys.py", "environment.yml"):
        assert not could_be_secret_name(name)
