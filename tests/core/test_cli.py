"""CLI routing and the hand-written top-level help staying in sync with the real options."""

from __future__ import annotations

import subprocess
import sys

from kcode.cli import PICK, app, route_argv
from kcode.cli_help import TOP_HELP


def test_prompts_and_subcommands_are_routed_by_the_first_word() -> None:
    assert route_argv([]) == ["chat"]
    assert route_argv(["add a flag"]) == ["chat", "add a flag"]
    assert route_argv(["-p", "fix"]) == ["chat", "-p", "fix"]
    assert route_argv(["fix", "ui.png", "-p"]) == ["fix", "ui.png", "-p"]
    assert route_argv(["config", "show"]) == ["config", "show"]
    assert route_argv(["-r"]) == ["chat", f"--resume={PICK}"]
    assert route_argv(["-r", "20260101-120000-abcdef"]) == ["chat", "-r", "20260101-120000-abcdef"]


def test_top_level_help_lists_every_chat_option() -> None:
    import typer.main

    command = typer.main.get_command(app)
    chat = command.commands["chat"]  # type: ignore[attr-defined]
    for param in chat.params:
        for opt in param.opts:
            if opt.startswith("-"):
                assert opt in TOP_HELP, f"{opt} missing from kcode --help"
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "130"):
        assert f"\n  {code}" in TOP_HELP


def test_version_and_help_do_not_import_heavy_modules() -> None:
    probe = (
        "import sys\n"
        "from kcode.__main__ import main\n"
        "for args in (['--version'], ['--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('openai', 'playwright', 'llama_cpp', 'rich', 'typer', 'mcp') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
    assert "kcode 0." in out.stdout and "Exit codes:" in out.stdout
