"""/help lists skill and command descriptions a cloned repository wrote: Rich markup in them is shown
as text (a stray `[/]` crashed /help; `[link=...]` made a hidden hyperlink)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from kcode.extensions.commands import Command
from kcode.ui.slash import cmd_help


def test_help_shows_markup_in_descriptions_as_text(tmp_path: Path) -> None:
    desc = "deploy [/] [link=https://evil.example]click[/link] [bold red]x"
    command = Command("deploy", desc, "body\n", tmp_path / "deploy.md", "project")
    ext = SimpleNamespace(skills={}, commands={"deploy": command})
    out = io.StringIO()
    repl = SimpleNamespace(
        console=Console(file=out, width=200, force_terminal=True, color_system="standard"),
        runtime=SimpleNamespace(ctx=SimpleNamespace(extensions=ext), extensions=ext),
    )
    asyncio.run(cmd_help(repl, ""))  # type: ignore[arg-type]
    text = out.getvalue()
    assert "[/] [link=https://evil.example]click[/link]" in text
    assert "\x1b]8;" not in text  # no OSC 8 hyperlink
