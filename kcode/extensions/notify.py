"""Notification hooks: kcode needs the human (Claude Code's `Notification` event).

Fired where Claude fires it, with its stdin fields (`message`, `title`, `notification_type`; the
matcher matches the type):
  - `permission_prompt`: the REPL asks to approve a tool call; in a `-p` run, an action the approval
    policy does not allow (the run stops with exit 4 and waits for a human to rerun it).
  - `idle_prompt`: the REPL prompt has waited IDLE_AFTER_S seconds for input after a turn.
A notification never delays what the user sees: the REPL fires them in the background. A `-p` run
awaits its one notification, or the process would exit before the hook ran.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kcode.extensions.session import ExtensionRuntime
    from kcode.safety.approval import ApprovalRequest, ApprovalRequired
    from kcode.tools.base import ToolContext

PERMISSION = "permission_prompt"
IDLE = "idle_prompt"
IDLE_AFTER_S = 60.0  # Claude Code's default (messageIdleNotifThresholdMs)
IDLE_MESSAGE = "kcode is waiting for your input"
_background: set[asyncio.Future[Any]] = set()
_NOTIFIED = "_kcode_notified"


def permission_message(request: ApprovalRequest) -> str:
    return f"kcode needs your permission to use {request.tool}: {request.summary}"[:2000]


def fire_in_background(ext: ExtensionRuntime, message: str, kind: str, ctx: ToolContext) -> None:
    if not ext.hooks.has("Notification"):
        return
    task = asyncio.ensure_future(ext.notify(message, kind, ctx))
    _background.add(task)  # a strong reference until it is done
    task.add_done_callback(_background.discard)


async def notify_refused(ext: ExtensionRuntime, err: ApprovalRequired, ctx: ToolContext) -> None:
    """A non-interactive approval stopped the run: someone has to decide (once per refusal, also
    when the refusal travels up through a sub-agent's tool call)."""
    if getattr(err, _NOTIFIED, False) or not ext.hooks.has("Notification"):
        return
    setattr(err, _NOTIFIED, True)
    message = f"{permission_message(err.request)} (the run stopped; rerun with {err.flag})"
    await ext.notify(message, PERMISSION, ctx)


def _runtime_ext(repl: Any) -> tuple[Any, Any]:
    runtime = getattr(repl, "runtime", None)
    ctx = getattr(runtime, "ctx", None)
    return getattr(ctx, "extensions", None), ctx


def notify_permission_prompt(repl: Any, request: ApprovalRequest) -> None:
    """The REPL is about to ask the human to approve `request`."""
    ext, ctx = _runtime_ext(repl)
    if ext is not None:
        fire_in_background(ext, permission_message(request), PERMISSION, ctx)


def arm_idle_notice(repl: Any) -> None:
    """Called as the REPL's prompt opens: if the same prompt still waits IDLE_AFTER_S later, the
    Notification hooks hear `idle_prompt` (once per prompt; none while kcode's runtime is not
    built yet, as at the very first prompt)."""
    ext, _ = _runtime_ext(repl)
    if ext is None or not ext.hooks.has("Notification"):
        return
    token = object()
    repl._kcode_idle_token = token  # a newer prompt makes this timer stale

    def fire() -> None:
        ext_now, ctx = _runtime_ext(repl)
        app = getattr(getattr(repl, "prompt", None), "app", None)
        waiting = app is not None and app.is_running and getattr(repl, "turn_task", None) is None
        if ext_now is not None and waiting and getattr(repl, "_kcode_idle_token", None) is token:
            fire_in_background(ext_now, IDLE_MESSAGE, IDLE, ctx)

    asyncio.get_running_loop().call_later(IDLE_AFTER_S, fire)
