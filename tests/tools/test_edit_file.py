from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcode.tools.base import ToolContext
from tests.tools.conftest import CallTool, DenyAll, call_tool


def edit(old: str, new: str, replace_all: bool = False) -> dict[str, object]:
    return {"old_string": old, "new_string": new, "replace_all": replace_all}


async def test_single_exact_edit(workspace: Path, tool: CallTool) -> None:
    (workspace / "a.py").write_text("def f():\n    return 1\n")
    result = await tool("edit_file", path="a.py", edits=[edit("return 1", "return 2")])
    assert result.ok, result.content
    assert (workspace / "a.py").read_text() == "def f():\n    return 2\n"
    assert "+    return 2" in result.content and "-    return 1" in result.content


async def test_edits_apply_in_order_all_or_none(workspace: Path, tool: CallTool) -> None:
    target = workspace / "a.txt"
    target.write_text("alpha\nbeta\ngamma\n")
    good = await tool(
        "edit_file", path="a.txt", edits=[edit("alpha", "ALPHA"), edit("ALPHA\nbeta", "AB")]
    )
    assert good.ok and target.read_text() == "AB\ngamma\n"
    bad = await tool("edit_file", path="a.txt", edits=[edit("AB", "x"), edit("missing", "y")])
    assert not bad.ok and "edit 2 of 2" in bad.content
    assert target.read_text() == "AB\ngamma\n"


async def test_ambiguous_match_lists_line_numbers(workspace: Path, tool: CallTool) -> None:
    target = workspace / "a.txt"
    target.write_text("x = 1\ny\nx = 1\n")
    result = await tool("edit_file", path="a.txt", edits=[edit("x = 1", "x = 2")])
    assert not result.ok and "2 times" in result.content and "lines 1, 3" in result.content
    assert target.read_text() == "x = 1\ny\nx = 1\n"
    every = await tool("edit_file", path="a.txt", edits=[edit("x = 1", "x = 2", True)])
    assert every.ok and target.read_text() == "x = 2\ny\nx = 2\n"


async def test_empty_and_identical_old_string_are_errors(workspace: Path, tool: CallTool) -> None:
    (workspace / "a.txt").write_text("a\n")
    empty = await tool("edit_file", path="a.txt", edits=[edit("", "x")])
    assert not empty.ok and "empty" in empty.content and "write_file" in empty.content
    same = await tool("edit_file", path="a.txt", edits=[edit("a", "a")])
    assert not same.ok and "identical" in same.content


async def test_indentation_tolerant_match_is_reindented_and_reported(
    workspace: Path, tool: CallTool
) -> None:
    target = workspace / "a.py"
    target.write_text("class A:\n    def f(self):\n        return 1\n")
    result = await tool(
        "edit_file",
        path="a.py",
        edits=[edit("def f(self):\n    return 1", "def f(self):\n    x = 2\n    return x")],
    )
    assert result.ok, result.content
    assert "no exact match" in result.content
    assert target.read_text() == "class A:\n    def f(self):\n        x = 2\n        return x\n"


async def test_tolerant_match_must_be_unique(workspace: Path, tool: CallTool) -> None:
    target = workspace / "a.py"
    before = "if a:\n    go()\nif b:\n        go()\n"
    target.write_text(before)
    result = await tool("edit_file", path="a.py", edits=[edit("\tgo()", "stop()")])
    assert not result.ok and "2 places" in result.content
    assert target.read_text() == before


async def test_no_match_shows_closest_lines(workspace: Path, tool: CallTool) -> None:
    (workspace / "a.py").write_text("import os\n\ndef compute(a, b):\n    return a + b\n")
    result = await tool("edit_file", path="a.py", edits=[edit("def compute(a, c):", "x")])
    assert not result.ok and "not found" in result.content
    assert "     3\tdef compute(a, b):" in result.content


async def test_crlf_file_stays_crlf(workspace: Path, tool: CallTool) -> None:
    target = workspace / "w.txt"
    target.write_bytes(b"one\r\ntwo\r\nthree")
    result = await tool("edit_file", path="w.txt", edits=[edit("one\ntwo", "1\n2\n2b")])
    assert result.ok, result.content
    assert target.read_bytes() == b"1\r\n2\r\n2b\r\nthree"


async def test_missing_file_and_outside_workspace(workspace: Path, tool: CallTool) -> None:
    missing = await tool("edit_file", path="no.py", edits=[edit("a", "b")])
    assert not missing.ok and "write_file" in missing.content
    (workspace.parent / "out.txt").write_text("a\n")
    outside = await tool("edit_file", path="../out.txt", edits=[edit("a", "b")])
    assert not outside.ok and "outside the workspace" in outside.content
    assert (workspace.parent / "out.txt").read_text() == "a\n"


async def test_denied_approval_leaves_file_untouched(workspace: Path) -> None:
    target = workspace / "a.txt"
    target.write_text("keep\n")
    ctx = ToolContext(root=workspace, approver=DenyAll())
    result = await call_tool(ctx, "edit_file", path="a.txt", edits=[edit("keep", "lose")])
    assert not result.ok and "declined" in result.content
    assert target.read_text() == "keep\n" and not ctx.changes.originals


# --- property tests: whatever the encoding, line endings, final newline and mode ---

ENCODINGS = {
    "utf-8": (b"", "utf-8"),
    "utf-8-sig": (b"\xef\xbb\xbf", "utf-8"),
    "utf-16": (b"\xff\xfe", "utf-16-le"),
    "latin-1": (b"", "latin-1"),
}
word = st.text(alphabet="abcdefghij éü_=()", min_size=1, max_size=12).filter(lambda s: s.strip())


@st.composite
def text_files(draw: st.DrawFn) -> tuple[str, list[str], str, bool, int]:
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    lines = draw(st.lists(word, min_size=2, max_size=12))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    final_newline = draw(st.booleans())
    mode = draw(st.sampled_from([0o644, 0o755]))
    return encoding, lines, newline, final_newline, mode


def encode_file(encoding: str, lines: list[str], newline: str, final: bool) -> bytes:
    bom, codec = ENCODINGS[encoding]
    if encoding == "latin-1":
        # A latin-1 file must not be valid UTF-8, or it would (rightly) be read as UTF-8.
        lines = [*lines[:-1], lines[-1] + "\xe9"]
    text = newline.join(lines) + (newline if final else "")
    return bom + text.encode(codec)


def run_in_tmp(data: bytes, mode: int, edits: list[dict[str, object]]) -> tuple[bool, bytes, int]:
    async def go() -> tuple[bool, bytes, int]:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "f.txt"
            target.write_bytes(data)
            os.chmod(target, mode)
            result = await call_tool(
                ToolContext(root=Path(tmp)), "edit_file", path="f.txt", edits=edits
            )
            return result.ok, target.read_bytes(), os.stat(target).st_mode & 0o777

    return asyncio.run(go())


PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(text_files(), st.data())
def test_successful_edit_changes_only_the_target(spec: tuple, data: st.DataObject) -> None:
    encoding, lines, newline, final, mode = spec
    index = data.draw(st.integers(0, len(lines) - 2))
    marker = "MARK\u00e4"
    # Replace line `index` (a unique sentinel) with two new lines, sent with LF as a model would.
    lines_with_sentinel = [*lines]
    lines_with_sentinel[index] = "SENTINEL"
    before = encode_file(encoding, lines_with_sentinel, newline, final)
    ok, after, after_mode = run_in_tmp(before, mode, [edit("SENTINEL", f"{marker}\n{marker}2")])
    assert ok
    expected_lines = [
        *lines_with_sentinel[:index],
        marker,
        f"{marker}2",
        *lines_with_sentinel[index + 1 :],
    ]
    assert after == encode_file(encoding, expected_lines, newline, final)
    assert after_mode == mode


@PROPERTY_SETTINGS
@given(text_files())
def test_failing_edit_changes_nothing(spec: tuple) -> None:
    encoding, lines, newline, final, mode = spec
    before = encode_file(encoding, lines, newline, final)
    ok, after, after_mode = run_in_tmp(
        before, mode, [edit(lines[0], "X"), edit("NOT THERE 123", "Y")]
    )
    assert not ok
    assert after == before and after_mode == mode
