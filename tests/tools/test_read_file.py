from __future__ import annotations

import codecs
from pathlib import Path

from kcode.tools.base import ToolContext, ToolLimits
from tests.tools.conftest import CallTool, call_tool


async def test_numbered_lines_like_cat_n(workspace: Path, tool: CallTool) -> None:
    (workspace / "a.py").write_text("first\nsecond\n")
    result = await tool("read_file", path="a.py")
    assert result.ok
    assert result.content == "     1\tfirst\n     2\tsecond"


async def test_offset_and_limit(workspace: Path, tool: CallTool) -> None:
    (workspace / "a.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    result = await tool("read_file", path="a.txt", offset=4, limit=2)
    assert result.content.splitlines()[:2] == ["     4\tline 4", "     5\tline 5"]
    assert "use offset=6" in result.content


async def test_long_file_is_capped_with_a_note_how_to_continue(workspace: Path) -> None:
    (workspace / "big.txt").write_text("".join(f"{i}\n" for i in range(1, 5001)))
    ctx = ToolContext(root=workspace)
    result = await call_tool(ctx, "read_file", path="big.txt")
    assert "  2000\t2000" in result.content and "2001\t" not in result.content
    assert "use offset=2001" in result.content
    tail = await call_tool(ctx, "read_file", path="big.txt", offset=4990)
    assert tail.content.splitlines()[-1] == "  5000\t5000"


async def test_byte_cap(workspace: Path) -> None:
    (workspace / "wide.txt").write_text("".join("x" * 100 + "\n" for _ in range(100)))
    ctx = ToolContext(root=workspace, limits=ToolLimits(read_max_bytes=1_000))
    result = await call_tool(ctx, "read_file", path="wide.txt")
    assert "size limit" in result.content and "use offset=" in result.content
    assert len(result.content) < 1_500


async def test_crlf_bom_and_utf16_are_decoded(workspace: Path, tool: CallTool) -> None:
    (workspace / "crlf.txt").write_bytes(codecs.BOM_UTF8 + b"one\r\ntwo\r\n")
    (workspace / "u16.txt").write_bytes(codecs.BOM_UTF16_LE + "héllo\n".encode("utf-16-le"))
    crlf = await tool("read_file", path="crlf.txt")
    assert crlf.content.endswith("     1\tone\n     2\ttwo")
    u16 = await tool("read_file", path="u16.txt")
    assert "     1\théllo" in u16.content and "utf-16" in u16.content


async def test_latin1_fallback_is_noted(workspace: Path, tool: CallTool) -> None:
    (workspace / "l1.txt").write_bytes("café\n".encode("latin-1"))
    result = await tool("read_file", path="l1.txt")
    assert "latin-1" in result.content and "     1\tcafé" in result.content


async def test_refusals_name_the_right_tool(workspace: Path, tool: CallTool) -> None:
    (workspace / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (workspace / "blob.bin").write_bytes(b"abc\x00def")
    (workspace / "sub").mkdir()
    image = await tool("read_file", path="pic.png")
    assert not image.ok and "view_image" in image.content
    binary = await tool("read_file", path="blob.bin")
    assert not binary.ok and "binary" in binary.content
    directory = await tool("read_file", path="sub")
    assert not directory.ok and "glob" in directory.content
    missing = await tool("read_file", path="nope/missing.py")
    assert not missing.ok and "nope/missing.py" in missing.content and "glob" in missing.content


async def test_outside_workspace_refused(workspace: Path, tool: CallTool) -> None:
    (workspace.parent / "secret.txt").write_text("s3cret\n")
    result = await tool("read_file", path="../secret.txt")
    assert not result.ok and "outside the workspace" in result.content
    assert "s3cret" not in result.content


async def test_offset_past_end_and_empty_file(workspace: Path, tool: CallTool) -> None:
    (workspace / "short.txt").write_text("a\n")
    (workspace / "empty.txt").write_text("")
    past = await tool("read_file", path="short.txt", offset=5)
    assert not past.ok and "1 line" in past.content
    empty = await tool("read_file", path="empty.txt")
    assert empty.ok and "empty" in empty.content
