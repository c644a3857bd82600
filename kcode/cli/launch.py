"""`kcode [PROMPT]` and `kcode -p PROMPT`: the chat command, and the fast way into the REPL.

kcode.cli.main parses argv with the one flag table (kcode.cli.flags) and calls `run_chat`. Importing
rich and the agent costs more than drawing the prompt, so a plain REPL start draws it first
(`early_prompt`) and builds the Repl meanwhile; keys typed before that are kept (kcode.ui.typeahead).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcode.ui.termmode import GREETING, typed_keys
from kcode.ui.typeahead import TypeAhead, type_ahead

if TYPE_CHECKING:
    from kcode.cli.parse import Invocation

__all__ = ["GREETING", "TypeAhead", "early_prompt", "run_chat", "type_ahead", "typed_keys"]

MIN_WIDTH = 40  # kcode.ui.render.MIN_WIDTH, which imports rich


def run_chat(inv: Invocation) -> int:
    """The REPL (optionally starting with PROMPT), or with -p / piped stdin one unattended run."""
    from kcode.cli.main import CommandFailed, load
    from kcode.cli.parse import UsageError, root_of
    from kcode.images import image_file_problem

    root = root_of(inv)
    prompt: str | None = inv["prompt"]
    images: list[Path] = list(inv["image"])
    interactive = not inv["non_interactive"]
    for path in images:
        problem = image_file_problem(path)
        if problem is not None:
            raise UsageError(f"--image {path}: {problem}. Give the path of a PNG or JPEG.")
    if interactive and not sys.stdin.isatty():
        if prompt is None:
            prompt = sys.stdin.read().strip() or None
        if prompt is None:
            raise UsageError("stdin is not a terminal and no prompt was given; use kcode -p PROMPT")
        interactive = False
    if not interactive and not prompt:
        raise UsageError(
            '-p/--non-interactive needs a PROMPT, e.g. kcode -p "fix the failing test"'
        )
    config = load(inv, interactive=interactive)
    for warning in config.warnings:
        sys.stderr.write(f"kcode: warning: {warning}\n")
    resume_id = _resume_id(root, inv["continue_"], inv["resume"])
    if not interactive:
        from kcode.headless import run_headless

        return run_headless(config, root, prompt or "", images, resume_id)
    from kcode.config.loader import ConfigError, ensure_backend_configured

    try:
        ensure_backend_configured(config)  # `make run` with nothing configured: say so, exit 2
    except ConfigError as err:
        raise CommandFailed(str(err)) from None
    return _run(config, root, prompt, resume_id, images)


def _resume_id(root: Path, continue_: bool, resume: str | None) -> str | None:
    from kcode.cli.main import CommandFailed
    from kcode.cli.parse import PICK

    if continue_:
        from kcode.session import list_sessions

        sessions = list_sessions(root)
        if not sessions:
            raise CommandFailed(f"no earlier session in {root} to continue; start one with `kcode`")
        return sessions[0].session_id
    if resume == PICK:
        from kcode.ui.sessions_view import pick_session

        return pick_session(root)
    return resume


def _run(
    config: Any, root: Path, prompt: str | None, resume_id: str | None, images: list[Path]
) -> int:
    if prompt or resume_id or images:  # the runtime is needed before the first prompt anyway
        from kcode.ui.termmode import quiet_terminal

        quiet_terminal()  # keys typed while the REPL loads stay unechoed, Enter stays Enter
        from kcode.ui.repl import run_repl

        return run_repl(config, root, initial_prompt=prompt, resume_id=resume_id, images=images)
    import asyncio

    return asyncio.run(early_prompt(config, root))


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
