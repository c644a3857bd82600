"""Commands and flags (SPEC §2): parse argv with the one flag table, run the command it names.

The table is kcode.cli.flags, the parser kcode.cli.parse; each command is a function taking the
Invocation and returning the exit code. `kcode [PROMPT]` is kcode.cli.launch.run_chat.
"""

from __future__ import annotations

import io
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from kcode.cli.parse import PICK, Invocation, UsageError, config_flags, root_of
from kcode.session_ids import SESSION_ID

__all__ = ["PICK", "SESSION_ID", "broken_install_message", "run_cli"]


class CommandFailed(Exception):
    """A command's one-line error (exit `code`), reported like a usage error."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def load(invocation: Invocation, *, interactive: bool = True) -> Any:
    """The config for this invocation's flags; a ConfigError becomes the one-line exit 2."""
    from kcode.config.loader import ConfigError, load_config

    try:
        return load_config(root_of(invocation), config_flags(invocation), interactive=interactive)
    except ConfigError as err:
        raise CommandFailed(str(err)) from None


def echo(line: str) -> None:
    sys.stdout.write(f"{line}\n")


def sessions_list(inv: Invocation) -> int:
    from kcode.session import list_sessions

    infos = list_sessions(None if inv["all_dirs"] else root_of(inv))
    if not infos:
        echo("no sessions yet")
    for info in infos:
        echo(f"{info.session_id}  {info.messages:4d} msgs  {info.first_prompt}")
    return 0


def sessions_show(inv: Invocation) -> int:
    from kcode.session import Session, SessionError

    try:
        history = Session.open_existing(inv["session_id"]).load_history()
    except SessionError as err:
        raise CommandFailed(str(err)) from None
    for msg in history:
        if msg.role == "system":
            continue
        calls = "".join(f"\n  -> {c.name}({c.arguments})" for c in msg.tool_calls)
        echo(f"[{msg.role}] {msg.text[:2000]}{calls}")
    return 0


def config_show(inv: Invocation) -> int:
    config = load(inv)
    from kcode.config.loader import SECRET_KEYS
    from kcode.config.view import setting_text

    for name, value, source in config.shown():
        if name not in SECRET_KEYS:
            value = setting_text(getattr(config.settings, name))
        if name == "model" and value == "-" and config.base_url:
            value = "- (asked from the server at start)"
        echo(f"{name:15} = {value or '-':40} ({source})")
    for warning in config.warnings:
        echo(f"warning: {warning}")
    return 0


def config_path(inv: Invocation) -> int:
    from kcode.config.loader import repo_config_path, user_config_path

    echo(f"user: {user_config_path()}")
    echo(f"repo: {repo_config_path(root_of(inv))}")
    return 0


def config_init(inv: Invocation) -> int:
    from kcode.config.loader import USER_CONFIG_TEMPLATE, user_config_path

    path = user_config_path()
    if path.exists():
        raise CommandFailed(f"{path} exists already; edit it instead")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(USER_CONFIG_TEMPLATE, encoding="utf-8")
    path.chmod(0o600)
    echo(f"wrote {path}")
    return 0


def doctor(inv: Invocation) -> int:
    from kcode.cli.commands.doctor import run_doctor

    return int(run_doctor(load(inv, interactive=False), root_of(inv)))


def broken_install_message(err: ImportError) -> str:
    """One clear line for a kcode module that cannot be imported (a broken or partial install)."""
    return (
        f"kcode: this installation is broken: {type(err).__name__}: {err}. "
        "Reinstall kcode (pip install --force-reinstall kcode, or `make install` in a checkout).\n"
    )


def run_cli(args: list[str]) -> int:
    from kcode.cli import errors as cli_errors
    from kcode.cli.parse import help_text, parse

    cli_errors.output_format = cli_errors.format_in_argv(args)
    for stream in (sys.stdout, sys.stderr):
        # The last guard for text that is not valid Unicode (kcode.safety.text_input): a `?`
        # on the terminal rather than a crash in the middle of a run.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    try:
        invocation = parse(args)
    except UsageError as err:
        return cli_errors.report_usage(err.message)
    if invocation.help:
        if not invocation.command.path and invocation.group is None:
            from kcode.cli.help import TOP_HELP

            sys.stdout.write(TOP_HELP)
        else:
            sys.stdout.write(help_text(invocation))
        return 0
    module, _, name = invocation.command.handler.partition(":")
    try:
        # Commands are part of kcode, not optional: a broken import fails loudly here, never
        # turns `kcode fix` into an unknown command (issue #12).
        handler = getattr(import_module(module), name)
    except ImportError as err:
        sys.stderr.write(broken_install_message(err))
        return 1
    try:
        return int(handler(invocation))
    except UsageError as err:
        return cli_errors.report_usage(err.message)
    except CommandFailed as err:
        cli_errors.report_error(err.message, err.code)
        return err.code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: say so plainly instead of a traceback wall
        return crash_report(err)


def crash_report(err: BaseException) -> int:
    import tempfile
    import traceback

    log = Path(tempfile.gettempdir()) / "kcode-crash.log"
    log.write_text(traceback.format_exc(), encoding="utf-8")
    sys.stderr.write(
        f"kcode: internal error: {type(err).__name__}: {err}\n"
        f"The traceback is in {log}; sessions are saved (kcode -c resumes). Please report it.\n"
    )
    return 1
