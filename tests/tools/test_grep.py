"""The grep tool on a real git repo, with ripgrep and with the pure-Python fallback.

Every behaviour test runs on both engines, and the engines are also compared output for output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kcode.messages import ToolCall, ToolResult
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.grep import GrepTool
from kcode.tools.search_backend import FALLBACK_ENV
from tests.tools.search_tree import make_search_tree

HAVE_RG = shutil.which("rg") is not None
ENGINES = [
    pytest.param("rg", marks=pytest.mark.skipif(not HAVE_RG, reason="ripgrep not installed")),
    "python",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_search_tree(tmp_path / "repo")


async def grep(
    root: Path, engine: str, monkeypatch: pytest.MonkeyPatch, **arguments: object
) -> ToolResult:
    if engine == "python":
        monkeypatch.setenv(FALLBACK_ENV, "1")
    else:
        monkeypatch.delenv(FALLBACK_ENV, raising=False)
    ctx = ToolContext(root=root)
    result = await run_tool(GrepTool(), ToolCall("g", "grep", dict(arguments)), ctx)
    assert result.data is None or result.data["backend"] == engine
    return result


@pytest.mark.parametrize("engine", ENGINES)
async def test_honours_gitignore_hidden_and_binary_rules(
    tree: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await grep(tree, engine, monkeypatch, pattern="needle", output="files")
    assert result.ok
    assert result.content.splitlines() == [
        "README.md",
        "docs/secret.txt",
        "keep.log",
        "src/app.py",
        "src/nested/crlf.txt",
        "src/nested/deep.py",
        "src/util.py",
    ]


@pytest.mark.parametrize("engine", ENGINES)
async def test_content_lines_are_path_line_text_sorted(
    tree: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await grep(tree, engine, monkeypatch, pattern=r"\bneedle\b", path="src")
    assert result.content.splitlines() == [
        "src/app.py:5:    needle = 1",
        "src/app.py:6:    return needle",
        "src/nested/crlf.txt:1:first needle",
        "src/nested/deep.py:1:x = 'needle'",
        "src/nested/deep.py:4:w = 'needle'",
    ]
    assert result.data is not None and result.data["matches"] == 5


@pytest.mark.parametrize("engine", ENGINES)
async def test_ignore_case_context_and_count(
    tree: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folded = await grep(
        tree, engine, monkeypatch, pattern="NEEDLE with", ignore_case=True, path="src/util.py"
    )
    assert folded.content == "src/util.py:3:# Needle with capital"
    around = await grep(tree, engine, monkeypatch, pattern="needle", context=1, path="src/nested")
    assert around.content.splitlines() == [
        "src/nested/crlf.txt:1:first needle",
        "src/nested/crlf.txt-2-second",
        "--",
        "src/nested/deep.py:1:x = 'needle'",
        "src/nested/deep.py-2-y = 2",
        "src/nested/deep.py-3-z = 3",
        "src/nested/deep.py:4:w = 'needle'",
    ]
    counted = await grep(tree, engine, monkeypatch, pattern="needle", output="count", path="src")
    assert counted.content.splitlines()[:4] == [
        "src/app.py:2",
        "src/nested/crlf.txt:1",
        "src/nested/deep.py:2",
        "src/util.py:1",
    ]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("*.py", ["src/app.py", "src/nested/deep.py", "src/util.py"]),
        ("src/nested/**", ["src/nested/crlf.txt", "src/nested/deep.py"]),
        ("*.{md,log}", ["README.md", "keep.log"]),
        ("!*.py", ["README.md", "docs/secret.txt", "keep.log", "src/nested/crlf.txt"]),
    ],
)
async def test_glob_filters_without_overriding_ignore_rules(
    tree: Path, engine: str, monkeypatch: pytest.MonkeyPatch, glob: str, expected: list[str]
) -> None:
    result = await grep(tree, engine, monkeypatch, pattern="needle", glob=glob, output="files")
    assert result.content.splitlines() == expected


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("foo_bar()", ["data/notes.txt:2:foo_bar() call"]),  # literal-looking, "()" is a group
        (r"\w+\(\w\)", ["data/notes.txt:3:foo(x)"]),
        (r"^no|^foo\(", ["data/notes.txt:1:no match here", "data/notes.txt:3:foo(x)"]),
        (r"[a-z]+_[a-z]+\(\)", ["data/notes.txt:2:foo_bar() call"]),
        (r"here\z", ["data/notes.txt:1:no match here"]),  # Rust spelling, translated for Python
        (r"(?P<fn>foo)\(x", ["data/notes.txt:3:foo(x)"]),
        (r"[[:digit:]]", []),
    ],
)
async def test_regex_dialect(
    tree: Path, engine: str, monkeypatch: pytest.MonkeyPatch, pattern: str, expected: list[str]
) -> None:
    result = await grep(tree, engine, monkeypatch, pattern=pattern, path="data")
    assert result.ok, result.content
    assert result.content.splitlines() == (expected or ["no matches"])


@pytest.mark.parametrize("engine", ENGINES)
async def test_invalid_regex_is_an_error_naming_the_problem(
    tree: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await grep(tree, engine, monkeypatch, pattern="foo(")
    assert not result.ok
    assert "foo(" in result.content
    assert "regex" in result.content.lower()


@pytest.mark.parametrize("engine", ENGINES)
async def test_results_are_capped_with_a_note(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text("hit\nhit\nmiss\n")
    result = await grep(tmp_path, engine, monkeypatch, pattern="hit", max_results=3)
    lines = result.content.splitlines()
    assert lines[:3] == ["f0.txt:1:hit", "f0.txt:2:hit", "f1.txt:1:hit"]
    assert "7 more matching lines not shown" in lines[3]
    files = await grep(tmp_path, engine, monkeypatch, pattern="hit", output="files", max_results=2)
    assert files.content.splitlines()[:2] == ["f0.txt", "f1.txt"]
    assert "3 more files not shown" in files.content


async def test_paths_outside_the_workspace_are_refused(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await grep(tree, "python", monkeypatch, pattern="root", path="../..")
    assert not result.ok and "outside the workspace" in result.content


async def test_missing_path_is_an_error(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = await grep(tree, "python", monkeypatch, pattern="x", path="nope")
    assert not result.ok and "does not exist" in result.content


@pytest.mark.skipif(not HAVE_RG, reason="ripgrep not installed")
@pytest.mark.parametrize(
    "arguments",
    [
        {"pattern": "needle"},
        {"pattern": "needle", "context": 2},
        {"pattern": "e", "output": "count"},
        {"pattern": r"\w+\s*\(\s*\)"},
        {"pattern": "needle", "glob": "**/*.txt"},
        {"pattern": "NEEDLE", "ignore_case": True, "path": "src"},
    ],
)
async def test_engines_agree_exactly(
    tree: Path, monkeypatch: pytest.MonkeyPatch, arguments: dict[str, object]
) -> None:
    # Extra nesting: a .gitignore that re-includes, and a deeper one that ignores again.
    (tree / "src/nested/.gitignore").write_text("deep.py\n")
    (tree / "src/nested/more").mkdir()
    (tree / "src/nested/more/a.txt").write_text("needle again\nfn()\n")
    from_rg = await grep(tree, "rg", monkeypatch, **arguments)
    from_python = await grep(tree, "python", monkeypatch, **arguments)
    assert from_rg.content == from_python.content
    assert from_rg.data is not None and from_python.data is not None
    assert from_rg.data["matches"] == from_python.data["matches"]


async def test_searching_inside_an_ignored_directory_by_name_works(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for engine in ["python", *(["rg"] if HAVE_RG else [])]:
        result = await grep(tree, engine, monkeypatch, pattern="needle", path="build")
        assert result.content == "build/artifact.txt:1:needle built", engine
