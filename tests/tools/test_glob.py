"""The glob tool on a real git repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcode.messages import ToolCall, ToolResult
from kcode.tools.base import ToolContext, ToolLimits, run_tool
from kcode.tools.glob_tool import GlobTool
from tests.tools.search_tree import make_search_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_search_tree(tmp_path / "repo")


async def glob(root: Path, limits: ToolLimits | None = None, **arguments: object) -> ToolResult:
    ctx = ToolContext(root=root, limits=limits or ToolLimits())
    return await run_tool(GlobTool(), ToolCall("g", "glob", dict(arguments)), ctx)


async def test_newest_first_and_ignored_files_left_out(tree: Path) -> None:
    result = await glob(tree, pattern="**/*.py")
    # search_tree writes files oldest first; generated/ and .hidden/ and .env.py are excluded.
    assert result.content.splitlines() == ["src/nested/deep.py", "src/util.py", "src/app.py"]


async def test_name_pattern_matches_at_any_depth_and_braces(tree: Path) -> None:
    result = await glob(tree, pattern="*.{txt,log}")
    assert sorted(result.content.splitlines()) == [
        "data/notes.txt",
        "docs/secret.txt",
        "keep.log",
        "src/nested/crlf.txt",
    ]


async def test_path_limits_the_search_and_patterns_are_relative_to_it(tree: Path) -> None:
    result = await glob(tree, pattern="nested/*", path="src")
    assert sorted(result.content.splitlines()) == ["src/nested/crlf.txt", "src/nested/deep.py"]


async def test_capped_with_a_note(tree: Path) -> None:
    result = await glob(tree, limits=ToolLimits(glob_max_results=2), pattern="**/*")
    lines = result.content.splitlines()
    assert len(lines) == 3
    assert "more files not shown" in lines[2]
    assert result.data is not None and result.data["count"] > 2


async def test_no_match_and_bad_paths(tree: Path) -> None:
    assert (await glob(tree, pattern="*.rs")).content == "no files match *.rs"
    not_dir = await glob(tree, pattern="*", path="README.md")
    assert not not_dir.ok and "not a directory" in not_dir.content
    outside = await glob(tree, pattern="*", path="/")
    assert not outside.ok and "outside the workspace" in outside.content


async def test_a_tree_deeper_than_any_real_one_is_walked_to_a_bound(tmp_path: Path) -> None:
    """3,000 nested directories (a hostile repository) ran the walk out of frames: the tool
    answered with a RecursionError. It stops at MAX_WALK_DEPTH levels now."""
    import os

    from kcode.tools.ignore import MAX_WALK_DEPTH

    (tmp_path / "near.txt").write_text("x")
    here = os.open(tmp_path, os.O_RDONLY)
    try:
        for depth in range(MAX_WALK_DEPTH + 50):  # relative: the full path is past PATH_MAX
            os.mkdir("d", dir_fd=here)
            if depth == 5:
                with open(os.open("d/shallow.txt", os.O_CREAT | os.O_WRONLY, dir_fd=here), "w"):
                    pass
            inner = os.open("d", os.O_RDONLY, dir_fd=here)
            os.close(here)
            here = inner
        with open(os.open("deep.txt", os.O_CREAT | os.O_WRONLY, dir_fd=here), "w"):
            pass
    finally:
        os.close(here)
    result = await glob(tmp_path, pattern="**/*.txt")
    assert result.ok, result.content
    assert "near.txt" in result.content and "shallow.txt" in result.content
    assert "deep.txt" not in result.content  # past the bound
