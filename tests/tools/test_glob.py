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
