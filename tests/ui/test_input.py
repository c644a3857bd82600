from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from kcode.ui.input import (
    MentionError,
    PromptInterrupt,
    ReplCompleter,
    build_prompt_session,
    list_project_files,
    parse_mentions,
)


async def submit(keys: str, tmp_path: Path) -> str:
    with create_pipe_input() as pipe:
        session = build_prompt_session(
            tmp_path, None, None, history=InMemoryHistory(), input=pipe, output=DummyOutput()
        )
        pipe.send_text(keys)
        return await session.prompt_async("› ")


async def test_enter_sends_and_alt_enter_or_ctrl_j_insert_newlines(tmp_path: Path) -> None:
    assert await submit("fix the bug\r", tmp_path) == "fix the bug"
    assert await submit("one\x1b\rtwo\nthree\r", tmp_path) == "one\ntwo\nthree"


async def test_bracketed_paste_stays_one_message(tmp_path: Path) -> None:
    pasted = "\x1b[200~def f():\r\n    return 1\r\n\x1b[201~"
    assert await submit(pasted + "\r", tmp_path) == "def f():\n    return 1\n"


async def test_ctrl_c_clears_a_line_and_interrupts_on_an_empty_one(tmp_path: Path) -> None:
    assert await submit("draft\x03kept\r", tmp_path) == "kept"
    with pytest.raises(PromptInterrupt):
        await submit("\x03", tmp_path)
    with pytest.raises(EOFError):
        await submit("\x04", tmp_path)


def make_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src" / "kcode").mkdir(parents=True)
    (root / "build").mkdir()
    (root / "src" / "kcode" / "main_loop.py").write_text("x\n")
    (root / "src" / "kcode" / "helpers.py").write_text("x\n")
    (root / "build" / "main_loop.py").write_text("x\n")
    (root / "debug.log").write_text("x\n")
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "src" / ".gitignore").write_text("helpers.py\n")
    return root


def test_file_index_honours_gitignore_files(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    assert list_project_files(root) == [".gitignore", "src/.gitignore", "src/kcode/main_loop.py"]


def completions(completer: ReplCompleter, text: str) -> list[str]:
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


def test_completion_for_slash_commands_and_fuzzy_mentions(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    completer = ReplCompleter(["help", "history", "diff"], lambda: list_project_files(root))
    assert completions(completer, "/h") == ["/help", "/history"]
    assert completions(completer, "look at @mlp")[0] == "@src/kcode/main_loop.py"
    assert completions(completer, "look at @main_l") == ["@src/kcode/main_loop.py"]
    assert completions(completer, "no mention here") == []


def test_mentions_attach_images_and_reject_bad_ones(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    Image.new("RGB", (8, 8), "red").save(root / "shot.png")
    (root / "broken.png").write_bytes(b"not an image")
    (tmp_path / "secret.txt").write_text("x")
    parsed = parse_mentions("see @shot.png and @src/kcode/main_loop.py.", root)
    assert len(parsed.images) == 1 and parsed.images[0].mime == "image/png"
    assert parsed.files == ["src/kcode/main_loop.py"]
    with pytest.raises(MentionError, match="no such file"):
        parse_mentions("read @missing.py", root)
    with pytest.raises(MentionError, match="outside the workspace"):
        parse_mentions("read @../secret.txt", root)
    with pytest.raises(MentionError, match=r"@broken\.png is not an image that can be decoded"):
        parse_mentions("look @broken.png", root)
    assert parse_mentions("mail me at a@b.c", root).files == []
