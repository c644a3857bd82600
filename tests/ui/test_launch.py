"""The fast REPL argv parser agrees with the typer CLI on every invocation it accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from kcode import cli
from kcode.ui.launch import parse_repl_argv

SESSION = "20250101-120000-abcdef"


def typer_params(argv: list[str]) -> dict[str, Any] | None:
    """What kcode.cli would pass to `chat` for argv; None if it is another command or an error."""
    routed = cli.route_argv(argv)
    if routed[:1] != ["chat"]:
        return None
    group = typer.main.get_command(cli.app)
    try:
        ctx = group.make_context("kcode", list(routed))
        name, command, rest = group.resolve_command(ctx, [*ctx._protected_args, *ctx.args])  # type: ignore[attr-defined]
        assert command is not None
        params = command.make_context(name or "chat", rest, parent=ctx).params
    except Exception:  # click usage errors (exit 2) and the like
        return None
    params["image"] = list(params["image"])
    params["add_dir"] = list(params["add_dir"])
    return dict(params)


def fast_params(argv: list[str]) -> dict[str, Any] | None:
    parsed = parse_repl_argv(argv)
    if parsed is None:
        return None
    return dict(vars(parsed))


ACCEPTED = [
    [],
    ["fix the test"],
    ["-c"],
    ["--continue"],
    ["-r", SESSION],
    ["--resume", SESSION],
    [f"--resume={SESSION}"],
    ["--model", "kimi-k2.5", "--approval", "auto-edit", "explain"],
    ["explain", "--model=m", "--backend", "scripted", "--base-url", "http://x/v1"],
    ["--sandbox", "read-only", "--max-steps", "5", "--max-parallel", "3", "--timeout", "2.5"],
    ["--thinking"],
    ["--no-thinking", "--thinking", "-c"],
    ["-C", "sub", "--add-dir", "a", "--add-dir", "b", "-i", "x.png", "--image", "y.png"],
    ["--model", "a", "--model", "b"],
    ["-p", "say OK"],
    ["--auto-commit", "-p", "x"],
    ["--no-auto-commit"],
    ["--trust-project", "hi", "--approval", "plan"],
    ["say OK", "--non-interactive", "--output-format", "json"],
    ["-p", "x", "--output-format=stream-json", "-c", "--approval", "auto"],
]
DECLINED = [
    ["--help"],
    ["hi", "-h"],
    ["-r"],
    ["-r", "not-an-id"],
    ["doctor"],
    ["sessions", "list"],
    ["--model", "m", "config", "show"],
    ["one", "two"],
    ["--output-format", "yaml"],
    ["--max-steps", "x"],
    ["--model"],
    ["--unknown"],
    ["--", "hi"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_accepted_invocations_parse_exactly_as_typer_parses_them(argv: list[str]) -> None:
    assert fast_params(argv) is not None
    assert fast_params(argv) == typer_params(argv)


@pytest.mark.parametrize("argv", DECLINED, ids=" ".join)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_repl_argv(argv) is None


def test_config_flags_match_the_cli(tmp_path: Path) -> None:
    argv = ["--model", "m", "--timeout", "3", "--add-dir", str(tmp_path), "--no-thinking"]
    parsed = parse_repl_argv(argv)
    assert parsed is not None
    assert parsed.flags() == cli._flags(
        model="m", timeout_s=3.0, add_dirs=[tmp_path], thinking=False, backend=None
    )


TOKENS = st.sampled_from(
    ["-c", "--continue", "-r", SESSION, "--model", "m", "--model=x", "--approval", "auto",
     "--max-steps", "7", "--max-steps", "0", "--timeout", "1.5", "-C", "d", "--add-dir", "e",
     "-i", "p.png", "--thinking", "--no-thinking", "hello", "world", "fix", "-p", "-h", "--",
     "--sandbox", "off", "-", "--max-parallel", "--backend=scripted", "--resume=" + SESSION]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, max_size=6))
def test_whenever_the_fast_parser_accepts_typer_agrees(argv: list[str]) -> None:
    fast = fast_params(argv)
    if fast is not None:
        assert fast == typer_params(argv)
