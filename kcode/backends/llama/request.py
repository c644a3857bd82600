"""Per-request helpers of the local backend (llama_cpp.py): the `tool_format` setting, the
on-disk prefix cache, and where a prompt's static prefix ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from kcode.backends.base import BackendError
from kcode.backends.llama.prefix_cache import PrefixCache
from kcode.backends.llama.state import common_prefix
from kcode.backends.llama.toolcall_formats import FORMATS, NO_CALLS, ToolCallFormat
from kcode.backends.openai.content_calls import check_tool_format
from kcode.messages import Message

# Text no template alters and no conversation contains: where the first user message begins.
PREFIX_SENTINEL = "KCODE0PREFIX0END"


def tool_format_setting(setting: str) -> ToolCallFormat | None:
    """The format the `tool_format` setting names (None: "auto", detect it from the template).
    "none" reads no calls at all: the model's text passes verbatim (reasoning still splits off)."""
    try:
        name = check_tool_format(setting)
    except ValueError as err:
        raise BackendError("config", str(err)) from err
    if name == "auto":
        return None
    if name == "none":
        return NO_CALLS
    return FORMATS[name.replace("-", "_")]


def new_prefix_cache(directory: Path | None, model_path: Path) -> PrefixCache | None:
    if directory is None:
        return None
    try:
        version = metadata.version("llama-cpp-python")
        return PrefixCache(directory, model_path, version)
    except (OSError, metadata.PackageNotFoundError):
        return None  # the cache is an optimisation: without it, prompts are evaluated


def static_prefix_length(
    render: Callable[[Sequence[Message]], str],
    tokenize: Callable[[str], list[int]],
    messages: Sequence[Message],
    tokens: Sequence[int],
) -> int:
    """How many leading `tokens` (the rendered `messages`) come from the system message and the
    tools alone: the part a later run with another user message shares (llama_prefix_cache.py).
    Found by rendering the system message with a sentinel user message and cutting there; token
    merges across the cut only make the shared part shorter."""
    if len(messages) < 2 or messages[0].role != "system":
        return 0
    try:
        text = render([messages[0], Message.user(PREFIX_SENTINEL)])
    except BackendError:
        return 0
    cut = text.find(PREFIX_SENTINEL)
    if cut <= 0:
        return 0
    return common_prefix(tokenize(text[:cut]), tokens)
