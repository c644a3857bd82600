"""`kcode -p`: run one task to completion with no prompts, print the result, return the exit code."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from kcode.backends.base import BackendError
from kcode.config.loader import Config, ConfigError
from kcode.events import Error, TurnFinished, TurnReason
from kcode.exit_codes import EXIT_CODES, USAGE, exit_code
from kcode.messages import ImagePart, Message
from kcode.run_result import result_object
from kcode.safety.approval import NonInteractiveApprover


def load_images(paths: list[Path]) -> tuple[ImagePart, ...]:
    if not paths:
        return ()
    from kcode.images import prepare_image_file

    return tuple(prepare_image_file(path).part for path in paths)


def run_headless(
    config: Config, root: Path, prompt: str, images: list[Path], resume_id: str | None
) -> int:
    try:
        return asyncio.run(_run(config, root, prompt, images, resume_id))
    except KeyboardInterrupt:
        return 130


async def _run(
    config: Config, root: Path, prompt: str, image_paths: list[Path], resume_id: str | None
) -> int:
    from kcode.runtime import build_runtime
    from kcode.session import SessionError
    from kcode.ui.printers import make_printer

    started = time.monotonic()
    printer = make_printer(config.output_format, sys.stdout, sys.stderr, _secrets(config))
    try:
        images = load_images(image_paths)
        runtime = build_runtime(
            config,
            root,
            NonInteractiveApprover(config.approval or "auto-edit"),
            interactive=False,
            resume_id=resume_id,
        )
    except (ConfigError, BackendError, SessionError, ValueError, OSError) as err:
        kind = getattr(err, "kind", "config")
        code = 2 if kind == "config" or not isinstance(err, BackendError) else 3
        message = getattr(err, "message", str(err))
        printer.event(Error(message=message, kind=kind))
        printer.finish(result_object(None, code, message, started, {}))
        return code

    if runtime.mcp is not None:  # a bad mcp.json entry: say which file and field, run the rest
        for warning in runtime.mcp.setup.warnings:
            sys.stderr.write(f"kcode: warning: {warning}\n")
        from kcode.mcp.prompts import RESOURCE_MENTION, expand_resource_mentions

        if RESOURCE_MENTION.search(prompt):  # `@server:uri`: the resource goes with the prompt
            prompt, errors = await expand_resource_mentions(runtime.mcp, prompt)
            for error in errors:
                sys.stderr.write(f"kcode: warning: {error}\n")
    # The session's record (logged once) and its SessionStart hooks, whose context goes with the
    # prompt; everything from here on goes through the runtime, which logs each event.
    printer.event(await runtime.start())
    finished: TurnFinished | None = None
    usage_error = False  # the backend refused the request as a usage error (prompt too long)

    async def consume() -> None:
        nonlocal finished, usage_error
        async for event in runtime.run_turn(Message.user(prompt, images)):
            printer.event(event)
            if isinstance(event, TurnFinished):
                finished = event
            elif isinstance(event, Error) and event.kind == "config":
                usage_error = True

    task = asyncio.ensure_future(consume())
    watchdog = _start_watchdog(config.timeout_s)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    reason_override: TurnReason | None = None
    try:
        await asyncio.wait_for(task, timeout=config.timeout_s)
    except TimeoutError:
        reason_override = "timeout"
    except asyncio.CancelledError:
        reason_override = "cancelled"
    except BackendError as err:
        reason_override = "backend_error"
        printer.event(Error(message=err.message, kind=err.kind))
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)

    if finished is None or reason_override is not None:
        reason: TurnReason = reason_override or "error"
        message = {
            "timeout": f"stopped by --timeout after {config.timeout_s} s",
            "cancelled": "interrupted; the session is saved: resume with `kcode -c`",
        }.get(reason, "the turn ended unexpectedly")
        if reason != "backend_error":
            printer.event(Error(message=message, kind=reason))
        finished = runtime.finish(reason, message, started)  # logged by the runtime
        printer.event(finished)
    code = exit_code(finished.reason)  # the one table (kcode.exit_codes)
    if usage_error and finished.reason == "backend_error":
        code = USAGE  # e.g. a prompt that cannot fit the local model's context: a setting to change
    printer.finish(
        result_object(runtime.session.session_id, code, finished.result, started, finished.stats)
    )
    if watchdog is not None:
        watchdog.code = code  # a tool thread still blocking shutdown: exit with this code
    await runtime.aclose()
    return code


WATCHDOG_GRACE_S = 5.0


class _Watchdog:
    """--timeout as a hard limit: a tool stuck in a thread (a FIFO read, a hung syscall) cannot keep
    the process alive, since asyncio cancels only the await, and interpreter shutdown joins the
    executor's threads. After timeout + grace the process exits (5, or the code already reported);
    the session log is flushed and fsynced per event, so nothing logged is lost."""

    def __init__(self, timeout_s: float) -> None:
        import threading

        self.code: int | None = None
        self._timer = threading.Timer(timeout_s + WATCHDOG_GRACE_S, self._fire)
        self._timer.daemon = True
        self._timer.start()
        # The timer above is a Python thread: it needs the interpreter lock, which C code that
        # never returns keeps (a hook matcher regex that backtracks for ever held it for good).
        # faulthandler's watchdog is a C thread: it prints every thread's stack and exits (1).
        import faulthandler

        faulthandler.dump_traceback_later(timeout_s + 3 * WATCHDOG_GRACE_S, exit=True)

    def _fire(self) -> None:
        import os

        if self.code is None:
            sys.stderr.write("kcode: --timeout reached and a tool is still blocked; exiting\n")
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(EXIT_CODES["timeout"] if self.code is None else self.code)


def _start_watchdog(timeout_s: float | None) -> _Watchdog | None:
    return _Watchdog(timeout_s) if timeout_s else None


def _secrets(config: Config) -> list[str]:
    """What the printers redact: the API key and credential-like environment values, as in the
    session log (kcode.runtime)."""
    from kcode.safety.secrets import MIN_SECRET_VALUE, secret_env_values

    key = config.api_key or ""
    found = {*secret_env_values(), *([key] if len(key) >= MIN_SECRET_VALUE else [])}
    return sorted(found - {""}, key=len, reverse=True)
