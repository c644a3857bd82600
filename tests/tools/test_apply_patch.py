from __future__ import annotations

import asyncio
import difflib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcode.tools.apply_patch import ApplyPatchArgs, ApplyPatchTool
from kcode.tools.base import ToolContext
from tests.tools.conftest import CallTool, DenyAll, call_tool
from tests.tools.test_edit_file import ENCODINGS, encode_file, text_files

GIT = shutil.which("git")


def make_diff(path: str, before: str, after: str) -> str:
    """A unified diff with git's `\\ No newline at end of file` markers (difflib has none)."""
    old = before.splitlines(keepends=True)
    new = after.splitlines(keepends=True)
    out = []
    for line in difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def git_apply(files: dict[str, bytes], patch: str, tmp: Path) -> dict[str, bytes]:
    work = tmp / "git-apply"
    work.mkdir()
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    assert GIT
    subprocess.run([GIT, "apply", "-"], input=patch.encode(), cwd=work, check=True)
    return tree(work)


MULTI_FILE = """Here is the change you asked for:

diff --git a/src/app.py b/src/app.py
index 1111111..2222222 100644
--- a/src/app.py
+++ b/src/app.py
@@ -1,4 +1,4 @@
 import os
-print("hello")
+print("hello, world")
 x = 1
 y = 2
diff --git a/src/new.py b/src/new.py
new file mode 100644
--- /dev/null
+++ b/src/new.py
@@ -0,0 +1,2 @@
+def new():
+    return 42
diff --git a/old.txt b/old.txt
deleted file mode 100644
--- a/old.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-gone
-soon
That should do it. Let me know if anything else is needed.
"""

FILES = {
    "src/app.py": b'import os\nprint("hello")\nx = 1\ny = 2\n',
    "old.txt": b"gone\nsoon\n",
}


def seed(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@pytest.mark.skipif(GIT is None, reason="git is not installed")
async def test_multi_file_patch_matches_git_apply(
    workspace: Path, tool: CallTool, tmp_path: Path
) -> None:
    seed(workspace, FILES)
    result = await tool("apply_patch", patch=MULTI_FILE)
    assert result.ok, result.content
    assert "M src/app.py" in result.content and "A src/new.py" in result.content
    assert "D old.txt" in result.content
    assert tree(workspace) == git_apply(FILES, MULTI_FILE, tmp_path)


async def test_wrong_line_numbers_are_found_by_context(workspace: Path, tool: CallTool) -> None:
    body = "".join(f"line {i}\n" for i in range(1, 60))
    (workspace / "f.txt").write_text(body)
    patch = "--- a/f.txt\n+++ b/f.txt\n@@ -3,3 +3,3 @@\n line 40\n-line 41\n+LINE 41\n line 42\n"
    result = await tool("apply_patch", patch=patch)
    assert result.ok, result.content
    assert (workspace / "f.txt").read_text() == body.replace("line 41\n", "LINE 41\n")
    assert "+37 lines" in result.content


@pytest.mark.skipif(GIT is None, reason="git is not installed")
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("a\nb", "a\nb\n"),
        ("a\nb\n", "a\nc"),
        ("a\nb", "a\nc"),
        ("", "new\n"),
        ("x\r\ny\r\n", "x\r\nz\r\n"),
    ],
)
async def test_final_newline_and_crlf_exactly_like_git(
    workspace: Path, tool: CallTool, tmp_path: Path, before: str, after: str
) -> None:
    files = {"f.txt": before.encode()}
    seed(workspace, files)
    patch = make_diff("f.txt", before, after)
    result = await tool("apply_patch", patch=patch)
    assert result.ok, result.content
    assert tree(workspace) == git_apply(files, patch, tmp_path)
    assert (workspace / "f.txt").read_bytes() == after.encode()


async def test_all_or_none_across_files(workspace: Path, tool: CallTool) -> None:
    seed(workspace, {"a.txt": b"one\n", "b.txt": b"two\n"})
    patch = make_diff("a.txt", "one\n", "ONE\n") + make_diff("b.txt", "not two\n", "TWO\n")
    result = await tool("apply_patch", patch=patch)
    assert not result.ok and "no file was changed" in result.content and "b.txt" in result.content
    assert (workspace / "a.txt").read_bytes() == b"one\n"
    assert (workspace / "b.txt").read_bytes() == b"two\n"


async def test_rename_and_mode(workspace: Path, tool: CallTool) -> None:
    seed(workspace, {"old/name.sh": b"echo hi\n"})
    patch = (
        "diff --git a/old/name.sh b/new/name.sh\nold mode 100644\nnew mode 100755\n"
        "similarity index 50%\nrename from old/name.sh\nrename to new/name.sh\n"
        "--- a/old/name.sh\n+++ b/new/name.sh\n@@ -1 +1 @@\n-echo hi\n+echo hello\n"
    )
    result = await tool("apply_patch", patch=patch)
    assert result.ok, result.content
    assert not (workspace / "old/name.sh").exists()
    assert (workspace / "new/name.sh").read_bytes() == b"echo hello\n"
    assert os.stat(workspace / "new/name.sh").st_mode & 0o777 == 0o755


async def test_errors_are_actionable(workspace: Path, tool: CallTool) -> None:
    seed(workspace, {"a.txt": b"alpha\nbeta\n"})
    prose = await tool("apply_patch", patch="I changed alpha to gamma.")
    assert not prose.ok and "no diff found" in prose.content
    exists = await tool(
        "apply_patch", patch=make_diff("a.txt", "", "x\n").replace("a/a.txt", "/dev/null", 1)
    )
    assert not exists.ok and "already exists" in exists.content
    mismatch = await tool("apply_patch", patch=make_diff("a.txt", "alpha\nbetta\n", "alpha\n"))
    assert (
        not mismatch.ok
        and "does not match" in mismatch.content
        and "     2\tbeta" in mismatch.content
    )
    outside = await tool("apply_patch", patch=make_diff("../x.txt", "a\n", "b\n"))
    assert not outside.ok and "outside the workspace" in outside.content
    assert (workspace / "a.txt").read_bytes() == b"alpha\nbeta\n"


async def test_lf_patch_on_crlf_file_keeps_crlf(workspace: Path, tool: CallTool) -> None:
    seed(workspace, {"w.txt": b"a\r\nb\r\nc\r\n"})
    result = await tool("apply_patch", patch=make_diff("w.txt", "a\nb\nc\n", "a\nB\nB2\nc\n"))
    assert result.ok, result.content
    assert (workspace / "w.txt").read_bytes() == b"a\r\nB\r\nB2\r\nc\r\n"


async def test_denied_approval_changes_nothing(workspace: Path) -> None:
    seed(workspace, FILES)
    ctx = ToolContext(root=workspace, approver=DenyAll())
    result = await call_tool(ctx, "apply_patch", patch=MULTI_FILE)
    assert not result.ok and "declined" in result.content
    assert tree(workspace) == FILES


def test_written_paths_come_from_the_patch() -> None:
    paths = ApplyPatchTool().written_paths(ApplyPatchArgs(patch=MULTI_FILE))
    assert paths == ["src/app.py", "src/new.py", "old.txt"]


# --- property tests ---

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def patch_in_tmp(data: bytes, mode: int, patch: str) -> tuple[bool, bytes, int]:
    async def go() -> tuple[bool, bytes, int]:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "f.txt"
            target.write_bytes(data)
            os.chmod(target, mode)
            result = await call_tool(ToolContext(root=Path(tmp)), "apply_patch", patch=patch)
            return result.ok, target.read_bytes(), os.stat(target).st_mode & 0o777

    return asyncio.run(go())


def decode(encoding: str, data: bytes) -> str:
    bom, codec = ENCODINGS[encoding]
    return data[len(bom) :].decode(codec)


@PROPERTY_SETTINGS
@given(text_files(), st.data())
def test_patch_changes_only_the_target(spec: tuple, data: st.DataObject) -> None:
    encoding, lines, newline, final, mode = spec
    index = data.draw(st.integers(0, len(lines) - 1))
    new_lines = [*lines]
    new_lines[index] = "CHANGED\u00e4"
    extra = data.draw(st.booleans())
    if extra:
        new_lines.insert(index, "INSERTED")
    before = encode_file(encoding, lines, newline, final)
    expected = encode_file(encoding, new_lines, newline, final)
    patch = make_diff("f.txt", decode(encoding, before), decode(encoding, expected))
    ok, after, after_mode = patch_in_tmp(before, mode, patch)
    assert ok
    assert after == expected and after_mode == mode


@PROPERTY_SETTINGS
@given(text_files())
def test_failing_patch_changes_nothing(spec: tuple) -> None:
    encoding, lines, newline, final, mode = spec
    before = encode_file(encoding, lines, newline, final)
    text = decode(encoding, before)
    wrong = "NOT IN THE FILE\n" + text
    patch = make_diff("f.txt", wrong, wrong.replace("NOT IN THE FILE", "X"))
    ok, after, after_mode = patch_in_tmp(before, mode, patch)
    assert not ok
    assert after == before and after_mode == mode
