"""The one flag table: how argv is read, the help texts, and the start-up staying light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from kcode.cli.flags import BY_PATH, COMMANDS, GLOBAL, GLOBAL_FLAGS
from kcode.cli.help import TOP_HELP
from kcode.cli.parse import PICK, Invocation, UsageError, config_flags, help_text, parse
from kcode.config import schema as config_schema

SESSION = "20250101-120000-abcdef"


def test_prompts_and_subcommands_are_told_apart_by_the_first_word() -> None:
    assert parse([]).command.path == ()
    assert parse(["add a flag"])["prompt"] == "add a flag"
    assert parse(["fix", "ui.png", "-p"]).command.path == ("fix",)
    assert parse(["config", "show"]).command.path == ("config", "show")
    assert parse(["-p", "--", "fix"])["prompt"] == "fix"  # a one-word prompt naming a command
    with pytest.raises(UsageError):  # a second word is not a command, and not a second prompt
        parse(["explain", "fix"])
    assert parse(["-r"])["resume"] == PICK
    assert parse(["-r", SESSION])["resume"] == SESSION
    assert parse([f"--resume={SESSION}", "hi"])["resume"] == SESSION
    assert parse(["-r", "hello"])["prompt"] == "hello"  # not an id: a picker, then the prompt


def test_values_are_typed_and_repeatable_flags_collect() -> None:
    inv = parse(["--max-steps", "5", "--timeout=2.5", "-i", "a.png", "--image", "b.png",
                 "--no-thinking", "-C", "sub", "--model=m", "explain"])  # fmt: skip
    assert inv["max_steps"] == 5 and inv["timeout"] == 2.5 and inv["thinking"] is False
    assert inv["image"] == [Path("a.png"), Path("b.png")] and inv["cwd"] == Path("sub")
    assert inv["model"] == "m" and inv["prompt"] == "explain"
    assert parse(["fix", "t.png", "--max-iters", "3"])["max_iters"] == 3
    assert parse(["fix", "t.png"])["threshold"] == 0.95
    assert parse(["mcp", "list", "--no-check"])["check"] is False


@pytest.mark.parametrize(
    "before, after",
    [
        (["--model", "X", "fix", "ui.png", "--entry", "index.html"],
         ["fix", "ui.png", "--entry", "index.html", "--model", "X"]),
        (["-C", "d", "--approval", "auto", "-p", "fix", "ui.png"],
         ["fix", "ui.png", "-p", "--approval", "auto", "-C", "d"]),
        (["--backend", "scripted", "doctor"], ["doctor", "--backend", "scripted"]),
        (["-C", "d", "mcp", "list"], ["mcp", "list", "-C", "d"]),
        (["-C", "d", "mcp", "add", "n", "--", "cmd"], ["mcp", "add", "-C", "d", "n", "--", "cmd"]),
        (["--model", "m", "config", "show"], ["config", "show", "--model", "m"]),
        (["-C", "d", "undo", "2"], ["undo", "2", "-C", "d"]),
    ],
)  # fmt: skip
def test_global_flags_work_before_or_after_the_command(before: list[str], after: list[str]) -> None:
    first, second = parse(before), parse(after)
    assert first.command is second.command and first.values == second.values


BAD = {
    ("--bogus",): "unknown flag --bogus",
    ("fix", "a.png", "--bogus"): "unknown flag --bogus for kcode fix",
    ("fix", "a.png", "--max-iter", "3"): "did you mean --max-iters?",
    ("--model", "a", "--model", "b"): "--model given twice; give it once: --model NAME",
    ("fix", "a.png", "--entry", "a", "--entry", "b"): "--entry given twice",
    ("--thinking", "--no-thinking"): "--thinking and --no-thinking both given",
    ("--model", "X", "fix", "a.png", "--model", "Y"): "--model given twice",
    ("--entry", "index.html", "fix", "ui.png"):
        "--entry is a flag of kcode fix; put it after the command: kcode fix IMAGE",
    ("--json", "visual", "compare", "t.png"): "--json is a flag of kcode visual compare",
    ("models", "list", "--approval", "auto"): "--approval does not apply to kcode models list",
    ("--approval", "auto", "models", "list"): "--approval does not apply to kcode models list",
    ("--approval", "yolo"): "--approval 'yolo': use one of ask, auto-edit, auto, read-only, plan",
    ("--max-steps", "x"): "--max-steps 'x': give a whole number",
    ("--model",): "--model needs a value: --model NAME",
    ("--model", "--approval", "auto"): "--model needs a value",
    ("--trust-project=yes",): "--trust-project takes no value",
    ("-Csub",): "-Csub: write the value apart: -C sub",
    ("one", "two"): "unexpected second word 'two'",
    ("fix",): "kcode fix needs IMAGE: kcode fix [OPTIONS] IMAGE [INSTRUCTIONS]",
    ("-p", "fix"): "a one-word prompt: kcode -p -- fix",
    ("undo", "1", "2"): "unexpected argument '2'",
    ("mcp", "frob"): "kcode mcp has no command 'frob'; use one of list, get, add, remove",
}  # fmt: skip


@pytest.mark.parametrize("argv", list(BAD), ids=" ".join)
def test_bad_input_says_what_is_wrong_and_the_right_form(argv: tuple[str, ...]) -> None:
    with pytest.raises(UsageError) as err:
        parse(list(argv))
    assert BAD[argv] in err.value.message and "\n" not in err.value.message


def test_choices_are_the_config_definitions() -> None:
    assert GLOBAL["backend"].choices == get_args(config_schema.BackendName)
    assert GLOBAL["approval"].choices == get_args(config_schema.ApprovalMode)
    assert GLOBAL["sandbox"].choices == get_args(config_schema.SandboxMode)
    assert GLOBAL["output_format"].choices == get_args(config_schema.OutputFormat)
    assert GLOBAL["effort"].choices == get_args(config_schema.EffortLevel)


def test_config_flags_are_those_given(tmp_path: Path) -> None:
    inv = parse(["--model", "m", "--timeout", "3", "--add-dir", str(tmp_path), "--no-thinking",
                 "--trust-project", "--max-tokens", "50000", "--effort", "low"])  # fmt: skip
    assert config_flags(inv) == {
        "model": "m", "timeout_s": 3.0, "add_dirs": [str(tmp_path.resolve())],
        "thinking": False, "trust_project": True, "limits": {"max_tokens": 50_000},
        "effort": "low",
    }  # fmt: skip
    assert config_flags(parse([])) == {}
    with pytest.raises(UsageError):
        config_flags(parse(["--max-cost", "lots"]))


def test_every_flag_is_in_the_help() -> None:
    for flag in GLOBAL_FLAGS:
        for name in (*flag.names, *([flag.negation] if flag.negation else [])):
            assert name in TOP_HELP, f"{name} missing from kcode --help"
    for command in COMMANDS[1:]:
        text = help_text(Invocation(command, {}, help=True))
        assert text.startswith(f"Usage: {command.title} ")
        for flag in command.flags:
            assert flag.name in text
        for dest in command.uses:
            assert GLOBAL[dest].name in text
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "130"):
        assert f"\n  {code}" in TOP_HELP


def test_help_anywhere_shows_the_help_of_the_command_named() -> None:
    assert parse(["fix", "--help"]).help and parse(["fix", "--help"]).command is BY_PATH[("fix",)]
    assert parse(["--bogus", "mcp", "add", "-h"]).help  # help wins over the other mistakes
    group = parse(["mcp"])
    assert group.help and group.group == "mcp" and "add" in help_text(group)


def test_every_handler_imports() -> None:
    from importlib import import_module

    for command in COMMANDS:
        module, _, name = command.handler.partition(":")
        assert callable(getattr(import_module(module), name)), command.handler


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
