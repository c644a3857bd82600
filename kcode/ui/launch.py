"""The fast way into the REPL: `kcode`, `kcode "prompt"`, `kcode -c`, `kcode -r ID` with common flags.

Importing typer (and building the CLI) costs more than drawing the prompt, so kcode/__main__.py asks
`fast_repl` first. It understands only a plain interactive invocation, spelled the simple way; for
anything else — `-p`, a subcommand, help, `--opt` values it would have to second-guess, a config or
argument error, stdin that is not a terminal — it returns None and the typer CLI (kcode.cli) handles
the argv as always, so behaviour and error messages come from one place.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Kept in step with kcode.cli (tests/ui/test_launch.py compares the two parsers).
SUBCOMMANDS = {"chat", "fix", "visual", "models", "sessions", "config", "doctor", "undo"}
SESSION_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
STRING_OPTIONS = {"--backend": "backend", "--model": "model", "--base-url": "base_url",
                  "--approval": "approval", "--sandbox": "sandbox"}  # fmt: skip
INT_OPTIONS = {"--max-steps": "max_steps", "--max-parallel": "max_parallel"}
LIST_OPTIONS = {"-i": "image", "--image": "image", "--add-dir": "add_dir"}
OUTPUT_FORMATS = ("text", "json", "stream-json")
PLAIN_INT = re.compile(r"[0-9]+")
PLAIN_FLOAT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
from kcode.ui.termmode import GREETING, typed_keys  # noqa: E402  (no launch ↔ repl cycle)

MIN_WIDTH = 40  # kcode.ui.render.MIN_WIDTH, which imports rich


@dataclass
class ReplArgs:
    """The `chat` command's parameters, named as kcode.cli.chat names them."""

    prompt: str | None = None
    backend: str | None = None
    model: str | None = None
    base_url: str | None = None
    approval: str | None = None
    sandbox: str | None = None
    max_steps: int | None = None
    max_parallel: int | None = None
    timeout: float | None = None
    image: list[Path] = field(default_factory=list)
    cwd: Path | None = None
    add_dir: list[Path] = field(default_factory=list)
    thinking: bool | None = None
    continue_: bool = False
    resume: str | None = None
    non_interactive: bool = False
    output_format: str | None = None
    auto_commit: bool | None = None
    # Budget flags are checked by kcode.cli alone: this parser declines them (they stay None here).
    max_tokens: str | None = None
    max_cost: str | None = None
    effort: str | None = None
    trust_project: bool = False

    def flags(self) -> dict[str, Any]:
        """The config flags, exactly as kcode.cli._flags builds them."""
        values: dict[str, Any] = {
            "backend": self.backend, "model": self.model, "base_url": self.base_url,
            "approval": self.approval, "sandbox": self.sandbox, "max_steps": self.max_steps,
            "max_parallel": self.max_parallel, "timeout_s": self.timeout,
            "thinking": self.thinking, "add_dirs": self.add_dir,
            "output_format": self.output_format, "auto_commit": self.auto_commit,
        }  # fmt: skip
        out = {k: v for k, v in values.items() if v is not None and v != []}
        if self.trust_project:
            out["trust_project"] = True
        if "add_dirs" in out:
            out["add_dirs"] = [str(Path(d).resolve()) for d in out["add_dirs"]]
        return out


def parse_repl_argv(args: list[str]) -> ReplArgs | None:
    """The REPL invocation `args` spells, or None when it is anything this parser does not own."""
    parsed = ReplArgs()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            if parsed.prompt is not None or arg in SUBCOMMANDS or arg == "-":
                return None  # a second word is an error, a first command word is a subcommand
            parsed.prompt = arg
            continue
        name, eq, inline = arg.partition("=")
        if name in ("-c", "--continue") and not eq:
            parsed.continue_ = True
            continue
        if name in ("-p", "--non-interactive") and not eq:
            parsed.non_interactive = True
            continue
        if name in ("--thinking", "--no-thinking") and not eq:
            parsed.thinking = name == "--thinking"
            continue
        if name in ("--auto-commit", "--no-auto-commit") and not eq:
            parsed.auto_commit = name == "--auto-commit"
            continue
        if name == "--trust-project" and not eq:
            parsed.trust_project = True
            continue
        takes_value = name in STRING_OPTIONS or name in INT_OPTIONS or name in LIST_OPTIONS
        takes_value = takes_value or name in ("--timeout", "-C", "--cwd", "-r", "--resume")
        takes_value = takes_value or name == "--output-format"
        if not takes_value or (eq and not name.startswith("--")):
            return None  # -p, --help, --output-format, -xVALUE, anything unknown
        if eq:
            value = inline
        elif i < len(args):
            value, i = args[i], i + 1
        else:
            return None
        if not value or value.startswith("-"):
            return None
        if name in STRING_OPTIONS:
            setattr(parsed, STRING_OPTIONS[name], value)
        elif name in INT_OPTIONS:
            if not PLAIN_INT.fullmatch(value):
                return None
            setattr(parsed, INT_OPTIONS[name], int(value))
        elif name in LIST_OPTIONS:
            getattr(parsed, LIST_OPTIONS[name]).append(Path(value))
        elif name == "--timeout":
            if not PLAIN_FLOAT.fullmatch(value):
                return None
            parsed.timeout = float(value)
        elif name in ("-C", "--cwd"):
            parsed.cwd = Path(value)
        elif name == "--output-format":
            if value not in OUTPUT_FORMATS:
                return None
            parsed.output_format = value
        else:  # -r / --resume: only a full session id; without one kcode.cli shows a picker
            if not SESSION_ID.match(value):
                return None
            parsed.resume = value
    return parsed


def fast_repl(args: list[str]) -> int | None:
    """Run the REPL for a plain interactive argv and return its exit code; None: use kcode.cli."""
    if not sys.stdin.isatty():
        return None
    parsed = parse_repl_argv(args)
    if parsed is None or parsed.non_interactive or parsed.output_format is not None:
        return None
    prepared = _prepare(parsed, interactive=True)
    if prepared is None:
        return None
    config, root, resume_id = prepared
    return _run(config, root, parsed.prompt, resume_id, parsed.image)


def _prepare(parsed: ReplArgs, *, interactive: bool) -> tuple[Any, Path, str | None] | None:
    """Config, workspace root and session to resume; None when kcode.cli should say what is wrong."""
    from kcode.config import ConfigError, ensure_backend_configured, load_config

    root = (parsed.cwd or Path.cwd()).resolve()
    if not root.is_dir() or any(not path.is_file() for path in parsed.image):
        return None
    try:
        config = load_config(root, parsed.flags(), interactive=interactive)
        if interactive:
            ensure_backend_configured(config)
    except ConfigError:
        return None
    resume_id = parsed.resume
    if parsed.continue_:
        from kcode.session import list_sessions

        sessions = list_sessions(root)
        if not sessions:
            return None
        resume_id = sessions[0].session_id
    for warning in config.warnings:
        sys.stderr.write(f"kcode: warning: {warning}\n")
    return config, root, resume_id


def _run(
    config: Any, root: Path, prompt: str | None, resume_id: str | None, images: list[Path]
) -> int:
    try:
        if prompt or resume_id or images:  # the runtime is needed before the first prompt anyway
            from kcode.ui.termmode import quiet_terminal

            quiet_terminal()  # keys typed while the REPL loads stay unechoed, Enter stays Enter
            from kcode.ui.repl import run_repl

            return run_repl(config, root, initial_prompt=prompt, resume_id=resume_id, images=images)
        import asyncio

        return asyncio.run(early_prompt(config, root))
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: the same plain report as kcode.cli.run_cli gives
        import tempfile
        import traceback

        log = Path(tempfile.gettempdir()) / "kcode-crash.log"
        log.write_text(traceback.format_exc(), encoding="utf-8")
        sys.stderr.write(
            f"kcode: internal error: {type(err).__name__}: {err}\n"
            f"The traceback is in {log}; sessions are saved (kcode -c resumes). Please report it.\n"
        )
        return 1


def fast_headless(args: list[str]) -> int | None:
    """Run `kcode -p PROMPT [flags]` without typer (its option coercion alone costs ~0.3 s here,
    which the first request would wait for). None: the argv is not plainly that; use kcode.cli."""
    parsed = parse_repl_argv(args)
    if parsed is None or not parsed.non_interactive or not parsed.prompt:
        return None
    prepared = _prepare(parsed, interactive=False)
    if prepared is None:
        return None
    config, root, resume_id = prepared
    from kcode.headless import run_headless

    return run_headless(config, root, parsed.prompt, parsed.image, resume_id)


async def early_prompt(config: Any, root: Path) -> int:
    """Draw the prompt with prompt_toolkit alone; rich, the renderer and the Repl load meanwhile.

    The line (or Ctrl-C / Ctrl-D) read here is handed to Repl.run as its first input, so the REPL
    behaves exactly as if it had drawn this prompt itself.
    """
    import asyncio
    import shutil

    width = shutil.get_terminal_size().columns
    out = sys.stdout
    if width < MIN_WIDTH:
        out.write(
            f"The terminal is {width} columns wide; kcode needs {MIN_WIDTH}+ to draw tool lines "
            "and diffs properly. Widen the window (output may wrap badly).\n"
        )
    for warning in config.warnings:
        out.write(f"\x1b[33mwarning: {warning}\x1b[0m\n")
    out.write(f"\x1b[2m{GREETING}\x1b[0m\n")
    out.flush()
    typed = type_ahead(_load_input_module, out)
    from kcode.ui.input import PromptInterrupt, ReplCompleter, build_prompt_session, toolbar_html

    model = config.model or config.backend or ("the server's model" if config.base_url else "")
    model = model or "no model"
    approval = config.approval or "ask"
    completer = ReplCompleter([], list)  # filled in when the Repl takes the session over

    def toolbar() -> Any:
        return toolbar_html(model, approval, 0, config.context_window, "")

    session = build_prompt_session(root, completer, toolbar)
    from kcode.ui.termmode import take_pending

    rest = typed.rest + take_pending()
    if rest:  # typed after the line that ended the early prompt: the next input's keys
        from prompt_toolkit.input.typeahead import store_typeahead

        store_typeahead(session.input, typed_keys(rest))

    def build_repl() -> Any:
        from kcode.ui.repl import Repl

        return Repl(config, root, prompt_session=session)

    loop = asyncio.get_running_loop()
    repl_future: asyncio.Future[Any] = loop.create_future()

    def start_building() -> None:
        task = asyncio.ensure_future(asyncio.to_thread(build_repl))
        task.add_done_callback(lambda t: _settle(repl_future, t))

    def repl_ready(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            future.result().start_background_setup()  # then the runtime, as Repl.run would

    repl_future.add_done_callback(repl_ready)

    loop.call_later(0.05, start_building)  # after the prompt is drawn
    first: str | BaseException
    if typed.first is not None:  # Enter, Ctrl-C or Ctrl-D came before prompt_toolkit was ready
        first = PromptInterrupt() if isinstance(typed.first, KeyboardInterrupt) else typed.first
    else:
        try:
            first = await session.prompt_async("› ", handle_sigint=False, default=typed.text)
        except (PromptInterrupt, KeyboardInterrupt, EOFError) as err:
            first = err
    repl = await repl_future
    try:
        return int(await repl.run(None, [], first_input=first))
    finally:
        from kcode.ui.termmode import restore_terminal

        restore_terminal()


def _settle(future: Any, task: Any) -> None:
    if future.done():
        return
    if task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())


def _load_input_module() -> None:
    import kcode.ui.input  # noqa: F401  (prompt_toolkit: the slow part of drawing a prompt)


@dataclass
class TypeAhead:
    text: str = ""
    # Set when the line ended before prompt_toolkit was ready: the text, KeyboardInterrupt or EOFError.
    first: str | BaseException | None = None
    rest: str = ""  # what was typed after that line


def type_ahead(load: Any, out: Any) -> TypeAhead:
    """Draw the prompt at once and keep what the user types while `load` imports prompt_toolkit.

    Importing prompt_toolkit takes several times Python's own start-up. Meanwhile the terminal is in
    a quiet raw-ish mode: printable keys are echoed and kept, Backspace edits, Enter / Ctrl-C / Ctrl-D end the
    line. Other keys (arrows, Tab) are dropped in this short window. The real prompt then redraws the
    same line, with the kept text, in place. Everything typed before the import finished is read
    (nothing is left in the terminal's queue in a translated form), and the terminal is left in
    kcode's quiet mode (kcode.ui.keytap), never back in the cooked one, so an Enter typed next is
    still an Enter when prompt_toolkit reads it.
    """
    import os
    import select
    import termios
    import threading

    result = TypeAhead()
    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):
        loader.join()
        return result
    out.write("› ")
    out.flush()
    chars: list[str] = []
    try:
        # No canonical mode, no echo, and no signal keys: Ctrl-C arrives as a byte, as it does in
        # prompt_toolkit, instead of cancelling the whole start-up.
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        while result.first is None:
            alive = loader.is_alive()
            if not select.select([fd], [], [], 0.005 if alive else 0)[0]:
                if alive:
                    continue
                break  # loaded, and the queue is empty
            data = os.read(fd, 1024).decode("utf-8", errors="ignore")
            for index, ch in enumerate(data):
                if result.first is not None:
                    result.rest = data[index:]
                    break
                if ch in ("\r", "\n"):
                    result.first = "".join(chars)
                    continue
                if ch == "\x04" and not chars:
                    result.first = EOFError()
                    continue
                if ch == "\x03":
                    result.first = KeyboardInterrupt()
                    continue
                if ch in ("\x7f", "\b"):
                    if chars:
                        chars.pop()
                        out.write("\b \b")
                elif ch >= " ":
                    chars.append(ch)
                    out.write(ch)
            out.flush()
    finally:
        from kcode.ui.termmode import quiet_terminal

        quiet_terminal(fd, original=saved)
    loader.join()
    result.text = "".join(chars)
    out.write("\n" if result.first is not None else "\r\x1b[K")
    out.flush()
    return result
