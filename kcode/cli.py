"""Commands and flags (SPEC §2). Parses, builds the config, hands off; no agent logic lives here.

`kcode [PROMPT]` is the hidden `chat` command: `run_cli` routes any argv whose first positional word is
not a subcommand to it, so prompts never collide with command names.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from kcode.config import ConfigError, ensure_backend_configured, load_config

SUBCOMMANDS = {"chat", "fix", "visual", "models", "sessions", "config", "doctor", "undo", "mcp"}
SESSION_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
PICK = "__pick__"

app = typer.Typer(
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

BackendOpt = Annotated[str | None, typer.Option("--backend", help="openai | llama-cpp | scripted")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="model name or PATH.gguf")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint")]
ApprovalOpt = Annotated[
    str | None, typer.Option("--approval", help="ask | auto-edit | auto | read-only | plan")
]
SandboxOpt = Annotated[
    str | None, typer.Option("--sandbox", help="off | workspace-write | read-only")
]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="model calls per turn")]
MaxParallelOpt = Annotated[int | None, typer.Option("--max-parallel", help="sub-agents at once")]
FormatOpt = Annotated[str | None, typer.Option("--output-format", help="text | json | stream-json")]
ImageOpt = Annotated[list[Path] | None, typer.Option("-i", "--image", help="attach an image")]
CwdOpt = Annotated[Path | None, typer.Option("-C", "--cwd", help="work in this directory")]
AddDirOpt = Annotated[list[Path] | None, typer.Option("--add-dir", help="allow this dir too")]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="wall-clock limit (s)")]
ThinkingOpt = Annotated[bool | None, typer.Option("--thinking/--no-thinking", help="thinking")]
# Budgets are read as text and checked by kcode.agents.budget: a one-line error, not click's box.
MaxTokensOpt = Annotated[
    str | None, typer.Option("--max-tokens", help="token budget for the run (exit 5 when hit)")
]
MaxCostOpt = Annotated[
    str | None, typer.Option("--max-cost", help="cost budget in USD for the run (exit 5 when hit)")
]
EffortOpt = Annotated[
    str | None, typer.Option("--effort", help="low | medium | high (reasoning_effort)")
]
NonInteractiveOpt = Annotated[
    bool, typer.Option("-p", "--non-interactive", help="run unattended, print, exit")
]


def _flags(**values: Any) -> dict[str, Any]:
    out = {k: v for k, v in values.items() if v is not None and v != []}
    if "add_dirs" in out:
        out["add_dirs"] = [str(Path(d).resolve()) for d in out["add_dirs"]]
    return out


def _root(cwd: Path | None) -> Path:
    root = (cwd or Path.cwd()).resolve()
    if not root.is_dir():
        _fail(f"--cwd {cwd}: not a directory. Pass an existing directory.")
    return root


def _fail(message: str, code: int = 2) -> None:
    from kcode.cli_errors import report_error

    report_error(message, code)
    raise typer.Exit(code)


@app.command("chat", hidden=True)
def chat(
    prompt: Annotated[str | None, typer.Argument(help="what to do")] = None,
    non_interactive: NonInteractiveOpt = False,
    output_format: FormatOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    approval: ApprovalOpt = None,
    sandbox: SandboxOpt = None,
    max_steps: MaxStepsOpt = None,
    max_parallel: MaxParallelOpt = None,
    timeout: TimeoutOpt = None,
    image: ImageOpt = None,
    cwd: CwdOpt = None,
    add_dir: AddDirOpt = None,
    thinking: ThinkingOpt = None,
    max_tokens: MaxTokensOpt = None,
    max_cost: MaxCostOpt = None,
    effort: EffortOpt = None,
    continue_: Annotated[bool, typer.Option("-c", "--continue", help="continue last")] = False,
    resume: Annotated[str | None, typer.Option("-r", "--resume", help="session id")] = None,
    auto_commit: Annotated[
        bool | None, typer.Option("--auto-commit/--no-auto-commit", help="commit every turn")
    ] = None,
    trust_project: Annotated[
        bool, typer.Option("--trust-project", help="run this repo's hooks, commands, agents, MCP")
    ] = False,
) -> None:
    root = _root(cwd)
    interactive = not non_interactive
    flags = _flags(
        backend=backend, model=model, base_url=base_url, approval=approval, sandbox=sandbox,
        max_steps=max_steps, max_parallel=max_parallel, timeout_s=timeout,
        output_format=output_format, thinking=thinking, add_dirs=add_dir, auto_commit=auto_commit,
    )  # fmt: skip
    flags.update(_budget_flags(max_tokens, max_cost, effort))
    if trust_project:
        flags["trust_project"] = True
    try:
        config = load_config(root, flags, interactive=interactive)
    except ConfigError as err:
        _fail(str(err))
        return
    for warning in config.warnings:
        sys.stderr.write(f"kcode: warning: {warning}\n")
    images = list(image or [])
    for path in images:
        if not path.is_file():
            _fail(f"--image {path}: no such file. Give the path of a PNG or JPEG.")
    resume_id = _resume_id(root, continue_, resume)
    if interactive and not sys.stdin.isatty():
        if prompt is None:
            prompt = sys.stdin.read().strip() or None
        if prompt is None:
            _fail("stdin is not a terminal and no prompt was given; use kcode -p PROMPT")
        interactive = False
        config = load_config(root, flags, interactive=False)
    if not interactive:
        if not prompt:
            _fail('-p/--non-interactive needs a PROMPT, e.g. kcode -p "fix the failing test"')
        from kcode.headless import run_headless

        raise typer.Exit(run_headless(config, root, prompt or "", images, resume_id))
    try:
        ensure_backend_configured(config)  # `make run` with nothing configured: say so, exit 2
    except ConfigError as err:
        _fail(str(err))
    from kcode.ui.repl import run_repl

    raise typer.Exit(
        run_repl(config, root, initial_prompt=prompt, resume_id=resume_id, images=images)
    )


def _budget_flags(
    max_tokens: str | None, max_cost: str | None, effort: str | None
) -> dict[str, Any]:
    from kcode.agents.budget import BudgetError, parse_max_cost, parse_max_tokens

    out: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    try:
        if max_tokens is not None:
            limits["max_tokens"] = parse_max_tokens(max_tokens)
        if max_cost is not None:
            limits["max_cost"] = parse_max_cost(max_cost)
    except BudgetError as err:
        _fail(str(err))
    if limits:
        out["limits"] = limits
    if effort is not None:
        if effort not in ("low", "medium", "high"):
            _fail(f"--effort {effort!r}: use low, medium or high")
        out["effort"] = effort
    return out


def _resume_id(root: Path, continue_: bool, resume: str | None) -> str | None:
    from kcode.session import list_sessions

    if continue_:
        sessions = list_sessions(root)
        if not sessions:
            _fail(f"no earlier session in {root} to continue; start one with `kcode`")
        return sessions[0].session_id
    if resume == PICK:
        from kcode.ui.sessions_view import pick_session

        return pick_session(root)
    return resume


sessions_app = typer.Typer(rich_markup_mode=None, help="saved sessions", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def sessions_list(all_dirs: Annotated[bool, typer.Option("--all")] = False) -> None:
    """Sessions of this directory (or --all), newest first."""
    from kcode.session import list_sessions

    infos = list_sessions(None if all_dirs else Path.cwd().resolve())
    if not infos:
        typer.echo("no sessions yet")
    for info in infos:
        typer.echo(f"{info.session_id}  {info.messages:4d} msgs  {info.first_prompt}")


@sessions_app.command("show")
def sessions_show(session_id: str) -> None:
    """Print a session's conversation."""
    from kcode.session import Session, SessionError

    try:
        history = Session.open_existing(session_id).load_history()
    except SessionError as err:
        _fail(str(err))
        return
    for msg in history:
        if msg.role == "system":
            continue
        calls = "".join(f"\n  -> {c.name}({c.arguments})" for c in msg.tool_calls)
        typer.echo(f"[{msg.role}] {msg.text[:2000]}{calls}")


config_app = typer.Typer(rich_markup_mode=None, help="configuration", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None,
    approval: ApprovalOpt = None, sandbox: SandboxOpt = None, cwd: CwdOpt = None,
) -> None:  # fmt: skip
    """The effective value of every setting and where it comes from."""
    flags = _flags(
        backend=backend, model=model, base_url=base_url, approval=approval, sandbox=sandbox
    )
    try:
        config = load_config(_root(cwd), flags, interactive=True)
    except ConfigError as err:
        _fail(str(err))
        return
    from kcode.config import SECRET_KEYS
    from kcode.config_view import setting_text

    for name, value, source in config.shown():
        if name not in SECRET_KEYS:
            value = setting_text(getattr(config.settings, name))
        if name == "model" and value == "-" and config.base_url:
            value = "- (asked from the server at start)"
        typer.echo(f"{name:15} = {value or '-':40} ({source})")
    for warning in config.warnings:
        typer.echo(f"warning: {warning}")


@config_app.command("path")
def config_path(cwd: CwdOpt = None) -> None:
    """Where the user and repository config files are."""
    from kcode.config import repo_config_path, user_config_path

    typer.echo(f"user: {user_config_path()}")
    typer.echo(f"repo: {repo_config_path(_root(cwd))}")


@config_app.command("init")
def config_init() -> None:
    """Write a commented user config file (never overwrites)."""
    from kcode.config import USER_CONFIG_TEMPLATE, user_config_path

    path = user_config_path()
    if path.exists():
        _fail(f"{path} exists already; edit it instead")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(USER_CONFIG_TEMPLATE, encoding="utf-8")
    path.chmod(0o600)
    typer.echo(f"wrote {path}")


@app.command("doctor")
def doctor(
    backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None,
    cwd: CwdOpt = None,
) -> None:  # fmt: skip
    """Check what kcode can use here: backend, ripgrep, browser, llama.cpp, sandbox."""
    from kcode.doctor import run_doctor

    root = _root(cwd)
    try:
        config = load_config(root, _flags(backend=backend, model=model, base_url=base_url))
    except ConfigError as err:
        _fail(str(err))
        return
    raise typer.Exit(run_doctor(config, root))


def broken_install_message(err: ImportError) -> str:
    """One clear line for a kcode module that cannot be imported (a broken or partial install)."""
    return (
        f"kcode: this installation is broken: {type(err).__name__}: {err}. "
        "Reinstall kcode (pip install --force-reinstall kcode, or `make install` in a checkout).\n"
    )


def _register_optional_apps() -> None:
    """Sub-apps that live with their feature. They are part of kcode, not optional: a broken import
    fails loudly (run_cli), never turns `kcode fix` into "No such command 'fix'" (issue #12)."""
    from kcode.commands.mcp import mcp_app
    from kcode.commands.models import models_app
    from kcode.commands.undo import undo_command
    from kcode.commands.visual import fix_app, visual_app

    app.add_typer(visual_app, name="visual")
    app.add_typer(fix_app)
    app.add_typer(models_app, name="models")
    app.add_typer(mcp_app, name="mcp")
    app.command("undo")(undo_command)


def route_argv(args: list[str]) -> list[str]:
    """Insert the hidden `chat` command unless argv starts with a subcommand.

    Only the first word counts: `kcode fix ui.png` runs the fix loop, `kcode -p fix` is a prompt.
    """
    out = list(args)
    # `-r` with no session id means "pick one".
    for i, arg in enumerate(out):
        if arg in ("-r", "--resume"):
            nxt = out[i + 1] if i + 1 < len(out) else None
            if nxt is None or not SESSION_ID.match(nxt):
                out[i] = f"--resume={PICK}"
    if out[:1] and (out[0] in SUBCOMMANDS or out[0] in ("-h", "--help")):
        return out
    return ["chat", *out]


def run_cli(args: list[str]) -> int:
    routed = route_argv(args)
    if routed[:1] != ["chat"]:  # `kcode -p` must not pay for sub-apps it never runs
        try:
            _register_optional_apps()
        except ImportError as err:  # fail closed, and say what is broken
            sys.stderr.write(broken_install_message(err))
            return 1
    from kcode import cli_errors

    click_exc = cli_errors.click_exceptions()
    cli_errors.output_format = cli_errors.format_in_argv(args)
    try:
        # Not standalone: click's own usage report would name the hidden `chat` command.
        result = app(routed, prog_name="kcode", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click_exc.UsageError as err:
        return cli_errors.report_usage_error(err)
    except (click_exc.Abort, typer.Abort):
        return 130
    except click_exc.ClickException as err:
        cli_errors.report_error(err.format_message(), err.exit_code)
        return int(err.exit_code)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: say so plainly instead of a traceback wall
        import traceback

        log = Path(tempfile.gettempdir()) / "kcode-crash.log"
        log.write_text(traceback.format_exc(), encoding="utf-8")
        sys.stderr.write(
            f"kcode: internal error: {type(err).__name__}: {err}\n"
            f"The traceback is in {log}; sessions are saved (kcode -c resumes). Please report it.\n"
        )
        return 1
    return 0
