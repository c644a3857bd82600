"""A real git repository with the cases search tools must get right (shared by grep/glob tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

FILES: dict[str, bytes] = {
    ".gitignore": b"*.log\nbuild/\n/secret.txt\n!keep.log\n",
    "README.md": b"# Demo\nneedle in the readme\n",
    "src/app.py": b"import os\n\n\ndef main():\n    needle = 1\n    return needle\n",
    "src/util.py": b"def helper():\n    pass\n# Needle with capital\nneedles plural\n",
    "src/.gitignore": b"generated/\n*.tmp\n",
    "src/generated/out.py": b"needle generated\n",
    "src/scratch.tmp": b"needle tmp\n",
    "src/nested/deep.py": b"x = 'needle'\ny = 2\nz = 3\nw = 'needle'\n",
    "src/nested/crlf.txt": b"first needle\r\nsecond\r\n",
    "app.log": b"needle in a log\n",
    "keep.log": b"needle kept by negation\n",
    "build/artifact.txt": b"needle built\n",
    "secret.txt": b"needle secret\n",
    "docs/secret.txt": b"needle docs secret (only the root one is ignored)\n",
    ".hidden/config.py": b"needle hidden dir\n",
    ".env.py": b"needle hidden file\n",
    "data/blob.bin": b"needle\x00\x01\x02binary\n",
    "data/notes.txt": b"no match here\nfoo_bar() call\nfoo(x)\n",
}


def make_search_tree(root: Path) -> Path:
    """Write FILES into a fresh git repo at `root`, with distinct mtimes (oldest first)."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for i, (name, content) in enumerate(FILES.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, (1_700_000_000 + i * 10, 1_700_000_000 + i * 10))
    return root
