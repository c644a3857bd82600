"""The input line: key bindings, per-project history, completion, and `@path` mentions.

Enter sends; Alt-Enter (Esc Enter) or Ctrl-J inserts a newline; a bracketed paste is inserted as one
piece so a pasted multi-line snippet stays one message. Ctrl-R searches the per-project history.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import HTML, AnyFormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from kcode.config.loader import data_dir
from kcode.messages import ImagePart

IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".gif": "image/gif", ".webp": "image/webp"}  # fmt: skip
MAX_INDEXED_FILES = 50_000
MENTION = re.compile(r"(?:(?<=\s)|^)@(\S+)")
MCP_RESOURCE = re.compile(r"[A-Za-z0-9_-]{1,64}:\S")


def history_path(root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode("utf-8")).hexdigest()[:16]
    return data_dir() / "projects" / key / "history"


class PromptInterrupt(Exception):
    """Ctrl-C at an empty prompt. Not KeyboardInterrupt: asyncio re-raises that out of the loop."""


def key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _send(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    @bindings.add("c-j")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @bindings.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        # A non-empty line is cleared; Ctrl-C on an empty line tells the REPL (twice exits).
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=PromptInterrupt())

    return bindings


# --- files for @-completion ---------------------------------------------------------------------


def list_project_files(root: Path, limit: int = MAX_INDEXED_FILES) -> list[str]:
    """Workspace files relative to root, honouring every .gitignore on the way down (and .git)."""
    import pathspec

    specs: list[tuple[str, Any]] = []
    out: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        ignore_file = Path(directory) / ".gitignore"
        if ignore_file.is_file():
            try:
                lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
                specs.append((rel_dir, pathspec.PathSpec.from_lines("gitignore", lines)))
            except (OSError, ValueError):
                pass

        def ignored(rel: str, is_dir: bool) -> bool:
            for base, spec in specs:
                if rel.startswith(base):
                    tail = rel[len(base) :] + ("/" if is_dir else "")
                    if spec.match_file(tail):
                        return True
            return False

        dirnames[:] = sorted(
            d for d in dirnames if d != ".git" and not ignored(rel_dir + d, is_dir=True)
        )
        for name in sorted(filenames):
            rel = rel_dir + name
            if not ignored(rel, is_dir=False):
                out.append(rel)
                if len(out) >= limit:
                    return out
    return out


def fuzzy_score(query: str, candidate: str) -> int | None:
    """Higher is better; None when the query's letters do not appear in order."""
    q, c = query.lower(), candidate.lower()
    if not q:
        return 0
    base = c.rsplit("/", 1)[-1]
    if q in base:
        return 1000 - len(c) + (200 if base.startswith(q) else 0)
    if q in c:
        return 500 - len(c)
    pos, gaps = 0, 0
    for ch in q:
        found = c.find(ch, pos)
        if found < 0:
            return None
        gaps += found - pos
        pos = found + 1
    return 100 - gaps - len(c)


class ReplCompleter(Completer):
    """Slash commands at the start of the line; fuzzy file names after `@`."""

    def __init__(self, commands: Iterable[str], files: Callable[[], list[str]]) -> None:
        self.commands = sorted(commands)
        self._files = files

    def set_files(self, files: Callable[[], list[str]]) -> None:
        self._files = files

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        if before.startswith("/") and " " not in before:
            for name in self.commands:
                if name.startswith(before[1:]):
                    yield Completion("/" + name, start_position=-len(before))
            return
        word = before.rsplit(maxsplit=1)[-1] if before.strip() else ""
        if not word.startswith("@") or before.endswith((" ", "\n")):
            return
        query = word[1:]
        scored = [(s, f) for f in self._files() if (s := fuzzy_score(query, f)) is not None]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        for _, path in scored[:30]:
            yield Completion("@" + path, start_position=-len(word), display=path)


def build_prompt_session(
    root: Path,
    completer: Completer | None,
    toolbar: Callable[[], AnyFormattedText] | None,
    *,
    history: History | None = None,
    **io: Any,
) -> PromptSession[str]:
    """`io` may carry `input=` / `output=` (tests pass a pipe input and a DummyOutput)."""
    if history is None:
        path = history_path(root)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            history = FileHistory(str(path))
        except OSError:
            history = InMemoryHistory()
    return PromptSession(
        multiline=True,
        key_bindings=key_bindings(),
        history=history,
        completer=completer,
        complete_while_typing=True,
        bottom_toolbar=toolbar,
        enable_history_search=False,  # Ctrl-R reverse search stays available
        prompt_continuation=lambda width, line_number, wrap_count: "… ".rjust(width),
        **io,
    )


def toolbar_html(model: str, approval: str, used: int, window: int, cost: str) -> HTML:
    """The bottom toolbar: model, approval mode, context use (tokens / window), cost so far."""
    return HTML(
        f" <b>{_escape(model)}</b> · approval: {approval}"
        f" · context {used:,}/{window:,}{_escape(cost)}"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- mentions --------------------------------------------------------------------------------


class MentionError(Exception):
    """An `@` mention that cannot be used; the message says which and why."""


@dataclass
class ParsedInput:
    text: str
    images: list[ImagePart] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def resolve_inside(root: Path, raw: str) -> Path:
    if "\0" in raw:  # a pasted NUL: no path can hold one (realpath raised ValueError)
        shown = raw.replace("\0", "␀")
        raise MentionError(f"@{shown}: a file name cannot contain a NUL character")
    candidate = Path(os.path.expanduser(raw))
    if not candidate.is_absolute():
        candidate = root / candidate
    real = Path(os.path.realpath(candidate))
    root_real = Path(os.path.realpath(root))
    if real != root_real and not real.is_relative_to(root_real):
        raise MentionError(f"@{raw} is outside the workspace {root_real}; mention files inside it")
    if not real.exists():
        raise MentionError(f"@{raw}: no such file in the workspace (check the name; Tab completes)")
    return real


def load_image_part(path: Path, shown: str) -> ImagePart:
    """Read, decode and prepare an image the way every front end does (kcode.images, issue #12)."""
    from kcode.images import ImageError, prepare_image_bytes

    try:
        return prepare_image_bytes(path.read_bytes(), f"@{shown}").part
    except ImageError as err:
        raise MentionError(str(err)) from err
    except OSError as err:
        raise MentionError(f"@{shown} cannot be read ({err.strerror or err})") from err


def parse_mentions(text: str, root: Path, extra_images: Iterable[Path] = ()) -> ParsedInput:
    """Validate every `@path`; images become attachments, other files stay as text mentions."""
    parsed = ParsedInput(text)
    for match in MENTION.finditer(text):
        raw = match.group(1).rstrip(".,;:!?)")
        if MCP_RESOURCE.match(raw) and not os.path.lexists(root / raw):
            continue  # `@server:uri`, an MCP resource (kcode.mcp.prompts), not a file
        path = resolve_inside(root, raw)
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            parsed.images.append(load_image_part(path, raw))
        else:
            parsed.files.append(raw)
    for image in extra_images:
        if not image.is_file():
            raise MentionError(f"image {image} does not exist")
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            raise MentionError(f"{image} is not a PNG, JPEG, GIF or WebP image")
        parsed.images.append(load_image_part(image, str(image)))
    return parsed
