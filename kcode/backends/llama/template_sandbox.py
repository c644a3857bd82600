"""The Jinja environment chat templates run in: what transformers gives them, and no more.

A chat template comes from the model file, so it is untrusted code. It gets what Hugging Face's
`apply_chat_template` provides, because real templates depend on it: `trim_blocks`/`lstrip_blocks`,
loop controls, `{% do %}`, the `{% generation %}` tag (training-only; its body is rendered), a
`tojson` that does not HTML-escape and takes `ensure_ascii`/`indent`/`separators`/`sort_keys`,
`raise_exception` and `strftime_now`, and mutable lists and dicts (Kimi K2 keeps a queue of call
ids with `.append` and `.pop(0)`). It runs in Jinja's `SandboxedEnvironment`, which refuses
underscore attributes, function and frame internals and attribute lookups inside `str.format`.
Mutation is harmless because every value handed to a template is a fresh copy made for that one
render (chat_template.py). On top of the sandbox, the ways a hostile template could exhaust memory
in one step are bounded: containers stop growing past `MAX_ITEMS`, and `*`, `**`, `%` and the
`format` filter refuse results past `MAX_TEXT`. Time is bounded too: `run_bounded` stops a render
that has used `MAX_RENDER_CPU_SECONDS` of CPU (a template that loops).
"""

from __future__ import annotations

import ctypes
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment

MAX_ITEMS = 10_000  # elements in one list/dict/set a template grows (real ones: a handful)
MAX_TEXT = 4_000_000  # characters produced by one operator or one render
_GROWING_METHODS = frozenset({"append", "extend", "insert", "update", "add", "setdefault"})
# A width or precision with five digits or more in a %-format or str.format spec.
# A width from an argument (`%*d`, `{:{}}`) is refused outright.
_WIDE_FORMAT = re.compile(
    r"%[-#0 +]*(\*|\d{5,})|%[-#0 +]*\d*\.(\*|\d{5,})|\{[^{}]*:[^{}]*(\d{5,}|\{)"
)


T = TypeVar("T")


class TemplateRefused(Exception):
    """The template called `raise_exception`: it does not accept this conversation."""


def raise_exception(message: str) -> NoReturn:
    raise TemplateRefused(message)


def strftime_now(fmt: str) -> str:
    return datetime.now().strftime(str(fmt))


def tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    """transformers' `tojson`: plain `json.dumps`, no HTML escaping, its options passed through."""
    return json.dumps(
        _plain(value),
        ensure_ascii=bool(ensure_ascii),
        indent=indent,
        separators=tuple(separators) if separators is not None else None,
        sort_keys=bool(sort_keys),
    )


def _plain(value: Any) -> Any:
    """Undefined values (a missing key) serialise as null rather than failing the render."""
    if isinstance(value, Undefined):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` marks the assistant's tokens for training masks;
    at inference it only renders its body, as in transformers."""

    tags = {"generation"}  # noqa: RUF012 (jinja's Extension declares it this way)

    def parse(self, parser: Parser) -> list[nodes.Node]:
        next(parser.stream)
        body: list[nodes.Node] = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return body


def _check_text_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_TEXT:
        raise SecurityError(f"the template built a value of {len(value)} items")
    return value


def _checked_format_string(text: Any) -> None:
    if isinstance(text, str) and _WIDE_FORMAT.search(text):
        raise SecurityError("the template used a format width that is too large")


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    text = str(value)
    _checked_format_string(text)
    if args and kwargs:
        raise SecurityError("format takes positional or keyword arguments, not both")
    return str(_check_text_size(text % (kwargs or args)))


class TemplateSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * max(count, 0) > MAX_TEXT:
                    raise SecurityError("the template repeats a value too many times")
        elif operator == "**":
            if isinstance(right, int) and abs(right) > 1000:
                raise SecurityError("the template raises a number to too large a power")
        elif operator == "%" and isinstance(left, str):
            _checked_format_string(left)
        return _check_text_size(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        owner = getattr(obj, "__self__", None)
        if (
            isinstance(owner, list | dict | set)
            and getattr(obj, "__name__", "") in _GROWING_METHODS
            and len(owner) >= MAX_ITEMS
        ):
            raise SecurityError(f"the template grew a container past {MAX_ITEMS} items")
        return _check_text_size(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _checked_format_string(value.__self__)
        return wrapped


def make_environment() -> TemplateSandbox:
    environment = TemplateSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", GenerationTag],
    )
    filters: dict[str, Callable[..., Any]] = {"tojson": tojson, "format": _format_filter}
    environment.filters.update(filters)
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    return environment


# --- CPU time ---------------------------------------------------------------------------------
# Real chat templates render in milliseconds. A loop the sandbox cannot see (nested `range`s,
# a loop over a 10,000-item list inside another) would otherwise hang kcode at startup.
MAX_RENDER_CPU_SECONDS = 5.0
_POLL_SECONDS = 0.05


class TemplateTimeout(BaseException):
    """Raised inside a render that used up its CPU time. A BaseException, so neither the
    template machinery's `except Exception` nor the reshaping retries swallow it."""


def _cpu_clock(thread_id: int) -> Callable[[], float]:
    """The CPU time of thread `thread_id` (Linux: its POSIX CPU clock); wall time elsewhere."""
    try:
        clock = time.pthread_getcpuclockid(thread_id)
        time.clock_gettime(clock)
    except (AttributeError, OSError):
        return time.monotonic
    return lambda: time.clock_gettime(clock)


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    target = ctypes.py_object(exception) if exception is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


def run_bounded(render: Callable[[], T], seconds: float | None = None) -> T:
    """`render()`, stopped with TemplateTimeout once it has used `seconds` of CPU time
    (default MAX_RENDER_CPU_SECONDS).

    A watchdog thread reads the rendering thread's CPU clock and, past the limit, raises
    TemplateTimeout in it asynchronously (delivered between two bytecodes: a template is Python
    code, and no single operation of the sandbox runs long, see MAX_TEXT). The hand-over is under
    a lock, so the exception is raised only while the render runs; one still pending when the
    render returns is withdrawn before it can surface elsewhere."""
    thread_id = threading.get_ident()
    clock = _cpu_clock(thread_id)
    deadline = clock() + (MAX_RENDER_CPU_SECONDS if seconds is None else seconds)
    lock = threading.Lock()
    state = {"running": True, "fired": False}
    done = threading.Event()

    def watch() -> None:
        while not done.wait(_POLL_SECONDS):
            if clock() < deadline:
                continue
            with lock:
                if state["running"]:
                    state["fired"] = True
                    _raise_in(thread_id, TemplateTimeout)
            return

    watchdog = threading.Thread(target=watch, name="kcode-template-watchdog", daemon=True)
    watchdog.start()
    try:
        return render()
    finally:
        with lock:
            state["running"] = False
            if state["fired"]:
                _raise_in(thread_id, None)  # withdraw it if it has not been delivered yet
        done.set()
