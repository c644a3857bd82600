"""What every tool shares: the Tool base class, the context a call runs in, path confinement, caps.

A tool is a small class: a pydantic argument model (which also yields the JSON schema the model sees),
a description kept next to the code, and `async run(args, ctx) -> ToolResult`. Tools raise `ToolError`
for anything the model should fix; `run_tool` turns every failure into an error result so nothing
raises into the agent loop (except `ApprovalRequired` and cancellation, which end the turn).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from kcode.events import Event
from kcode.messages import ToolCall, ToolResult
from kcode.safety.approval import AllowAll, ApprovalDecision, ApprovalRequest, Approver

if TYPE_CHECKING:
    from pydantic import ValidationError

    from kcode.tools.args import ToolArgs as ToolArgs


# The id of the tool call running in this task. Each call runs in its own asyncio task (a copy of the
# context), so parallel calls never see each other's id: approvals and forwarded sub-agent events use
# it to say which call they belong to (issue #12: front ends pair them by id, not by tool name).
_CALL_ID: ContextVar[str] = ContextVar("kcode_call_id", default="")


def current_call_id() -> str:
    """The id of the tool call this code runs under ("" outside a call)."""
    return _CALL_ID.get()


class ToolError(Exception):
    """A failure the model can act on: bad arguments, missing file, no match. Becomes ok=False."""


class ApprovalDenied(ToolError):
    pass


def __getattr__(name: str) -> Any:
    # `from kcode.tools.base import ToolArgs` keeps working; pydantic loads only when it is used.
    if name == "ToolArgs":
        from kcode.tools.args import ToolArgs

        return ToolArgs
    raise AttributeError(name)


A = TypeVar("A", bound="ToolArgs")


@dataclass
class FileChanges:
    """Which files tools wrote, and what they held before the first write (for /undo and JSON)."""

    originals: dict[Path, bytes | None] = field(default_factory=dict)
    modes: dict[Path, int] = field(default_factory=dict)

    def record_before_write(self, path: Path) -> None:
        if path in self.originals:
            return
        try:
            # O_NOFOLLOW | O_NONBLOCK: a FIFO or symlink swapped in here must not hang or leak.
            self.originals[path] = _read_plain(path)
            self.modes[path] = path.stat().st_mode
        except FileNotFoundError:
            self.originals[path] = None

    def changed_paths(self, root: Path) -> list[str]:
        out = []
        for path, before in self.originals.items():
            try:
                now: bytes | None = _read_plain(path)
            except OSError:
                now = None
            if now != before:
                out.append(_display(path, root))
        return sorted(out)


def _read_plain(path: Path) -> bytes:
    import stat

    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise FileNotFoundError(str(path)) from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(str(path))
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass
class ToolLimits:
    max_output_chars: int = 30_000
    read_max_lines: int = 2_000
    read_max_bytes: int = 100_000
    shell_timeout_s: float = 120.0
    glob_max_results: int = 500


EventSink = Callable[[Event], Awaitable[None]]


async def _drop_event(event: Event) -> None:
    return None


@dataclass
class ToolContext:
    root: Path
    extra_dirs: tuple[Path, ...] = ()
    approver: Approver = field(default_factory=AllowAll)
    agent_id: str = "main"
    emit: EventSink = _drop_event
    changes: FileChanges = field(default_factory=FileChanges)
    limits: ToolLimits = field(default_factory=ToolLimits)
    sandbox: str = "off"
    # Filled by the tools for the final report: the latest run_tests result and the todo list.
    last_tests: dict[str, Any] | None = None
    todos: list[dict[str, str]] = field(default_factory=list)
    # Set by the orchestrator on the main agent only; sub-agents cannot spawn.
    spawner: Any = None
    # Per-turn checkpoints (kcode.vcs.checkpoints) on the main agent; None disables them.
    checkpoints: Any = None
    # Secret files (.env, keys, credentials) are refused by read_file/grep unless allowed.
    allow_secrets: bool = False
    allow_network: bool = False
    # kcode.extensions.session.ExtensionRuntime: hooks and plan mode; shared with sub-agents.
    extensions: Any = None

    def __post_init__(self) -> None:
        self.root = Path(os.path.realpath(self.root))
        self.extra_dirs = tuple(Path(os.path.realpath(d)) for d in self.extra_dirs)

    def resolve(self, path: str) -> Path:
        """Resolve a model-supplied path; refuse anything that lands outside the allowed roots."""
        if not path or "\x00" in path:
            raise ToolError("empty or invalid path")
        raw = Path(os.path.expanduser(path)) if path.startswith("~") else Path(path)
        candidate = raw if raw.is_absolute() else self.root / raw
        real = Path(os.path.realpath(candidate))
        for allowed in (self.root, *self.extra_dirs):
            if real == allowed or real.is_relative_to(allowed):
                return real
        raise ToolError(
            f"{path!r} resolves to {real}, which is outside the workspace {self.root}. "
            "Use a path inside the workspace (the user can add a directory with --add-dir)."
        )

    @property
    def roots(self) -> tuple[Path, ...]:
        """The allowed roots: the workspace and the --add-dir directories (kcode.tools.confine)."""
        return (self.root, *self.extra_dirs)

    def resolve_for_write(self, path: str) -> Path:
        """resolve(), then refuse .git and kcode's control files (kcode.tools.confine)."""
        from kcode.tools.confine import check_writable

        real = self.resolve(path)
        check_writable(real, self.roots, self.display(real))
        return real

    def display(self, path: Path) -> str:
        return _display(path, self.root)

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        from kcode.tools.approval_order import approval_turn

        # One question at a time, in the order of the reply's calls (kcode.tools.approval_order).
        async with approval_turn():
            return await self._approve_now(request)

    async def _approve_now(self, request: ApprovalRequest) -> ApprovalDecision:
        from kcode.events import ApprovalDecided, ApprovalRequested

        call_id = request.call_id or current_call_id()
        request = dataclasses.replace(request, call_id=call_id)
        await self.emit(
            ApprovalRequested(
                agent=self.agent_id,
                call_id=call_id,
                action=request.action,
                tool=request.tool,
                summary=request.summary,
                detail=request.detail,
            )
        )
        decision = await self.approver.decide(request)
        await self.emit(
            ApprovalDecided(
                agent=self.agent_id,
                call_id=call_id,
                action=request.action,
                tool=request.tool,
                allowed=decision.allowed,
                reason=decision.reason,
            )
        )
        if not decision.allowed:
            why = f": {decision.reason}" if decision.reason else ""
            raise ApprovalDenied(f"the user declined {request.summary}{why}")
        return decision


class Tool(Generic[A]):
    name: ClassVar[str]
    description: ClassVar[str]
    args_model: ClassVar[type[ToolArgs]]
    # Read-only tools run concurrently with each other; writers to the same path run in order.
    read_only: ClassVar[bool] = False
    # Tools that touch unknown paths (shell, run_tests) run alone, never beside another call.
    exclusive: ClassVar[bool] = False

    async def run(self, args: A, ctx: ToolContext) -> ToolResult:
        raise NotImplementedError

    def written_paths(self, args: A) -> list[str]:
        """Paths this call writes, for ordering concurrent calls. None known → runs exclusively."""
        return []

    def schema(self) -> dict[str, Any]:
        # Cached per argument model: pydantic takes milliseconds per schema, and spawn_agents builds
        # a tool set per sub-agent (64 agents x 3 tools would stall the event loop for ~0.5 s).
        cached = _SCHEMA_CACHE.get(self.args_model)
        if cached is None:
            cached = self.args_model.model_json_schema()
            cached.pop("title", None)
            for prop in cached.get("properties", {}).values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
            _SCHEMA_CACHE[self.args_model] = cached
        return cached  # shared by every instance: read it, never mutate it


_SCHEMA_CACHE: dict[type[ToolArgs], dict[str, Any]] = {}


def ok(content: str, data: dict[str, Any] | None = None) -> ToolResult:
    """A successful result; `run_tool` fills in the call id."""
    return ToolResult(call_id="", ok=True, content=content, data=data)


def cap_text(text: str, max_chars: int) -> str:
    """Keep the head and the tail of long output and say how much was cut from the middle."""
    if len(text) <= max_chars:
        return text
    head = max_chars * 2 // 3
    tail = max_chars - head
    cut = len(text) - head - tail
    cut_lines = text[head : len(text) - tail].count("\n")
    return (
        text[:head]
        + f"\n[... {cut} characters ({cut_lines} lines) cut from the middle of this output ...]\n"
        + text[len(text) - tail :]
    )


def format_validation_error(tool: str, err: ValidationError) -> str:
    problems = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(arguments)"
        problems.append(f"{loc}: {e['msg']}")
    return f"invalid arguments for {tool}: " + "; ".join(problems)


async def run_tool(tool: Tool[Any], call: ToolCall, ctx: ToolContext) -> ToolResult:
    """Validate and run one call; every failure becomes an error result the model can act on."""
    import pydantic

    from kcode.safety.approval import ApprovalRequired

    if call.invalid_arguments is not None:
        return ToolResult(
            call.id,
            False,
            f"the arguments of this {call.name} call are not valid JSON "
            f"({call.invalid_arguments[:200]!r}); send them again as one JSON object",
        )
    try:
        args = tool.args_model.model_validate(call.arguments)
    except pydantic.ValidationError as err:
        return ToolResult(call.id, False, format_validation_error(tool.name, err))
    token = _CALL_ID.set(call.id)
    try:
        result = await tool.run(args, ctx)
    except (ApprovalRequired, asyncio.CancelledError):
        raise
    except ToolError as err:
        return ToolResult(call.id, False, str(err))
    except Exception as err:  # a bug or an OS error in a tool must not kill the turn
        return ToolResult(call.id, False, f"{tool.name} failed: {type(err).__name__}: {err}")
    finally:
        _CALL_ID.reset(token)
    return ToolResult(
        result.call_id or call.id,
        result.ok,
        cap_text(result.content, ctx.limits.max_output_chars),
        result.data,
        result.images,
    )
