"""Running hooks: Claude's stdin JSON, exit codes and JSON output, with a hard timeout.

Every matching hook of an event runs in parallel (identical commands once), in its own process group
with no terminal; a timeout or cancellation kills the whole group, so a hook never hangs a turn.
Exit 0: stdout that starts with `{` is the JSON answer, plain stdout is context for UserPromptSubmit
and SessionStart. Exit 2: block, stderr is the reason. Any other exit, a crash or a timeout: reported
to the user, no decision (fail-open, like every peer). Hook results are merged: deny > ask > allow,
the last `updatedInput` wins, contexts add up.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcode.extensions.hook_config import HookSpec
from kcode.safety.json_input import loads_json

BLOCK_EXIT = 2
BARE_PROGRAM = re.compile(r"^[\w./+-]+$")
CONTEXT_MAX_CHARS = 10_000
OUTPUT_MAX_BYTES = 1024 * 1024
# kcode's own model credentials are no business of a hook.
HIDDEN_ENV = frozenset({"KCODE_API_KEY", "OPENAI_API_KEY", "MOONSHOT_API_KEY"})
# kcode tool name → the names Claude Code hooks match on.
CLAUDE_NAMES: dict[str, tuple[str, ...]] = {
    "shell": ("Bash",),
    "read_file": ("Read",),
    "write_file": ("Write",),
    "edit_file": ("Edit", "MultiEdit"),
    "apply_patch": ("Edit", "MultiEdit"),
    "grep": ("Grep",),
    "glob": ("Glob",),
    "todo_write": ("TodoWrite",),
    "spawn_agents": ("Task", "Agent"),
    "skill": ("Skill",),
}
DECISION_RANK = {"allow": 1, "ask": 2, "deny": 3}


def tool_names(name: str) -> tuple[str, ...]:
    return (name, *CLAUDE_NAMES.get(name, ()))


@dataclass
class HookOutcome:
    blocked: bool = False
    reason: str = ""
    decision: str | None = None  # PreToolUse: allow | ask | deny
    updated_input: dict[str, Any] | None = None
    context: list[str] = field(default_factory=list)
    stop: str | None = None  # `continue: false`: end the agent's turn with this reason
    notices: list[str] = field(default_factory=list)  # for the user: failures, systemMessage
    ran: int = 0

    def context_text(self) -> str:
        return "\n".join(c for c in self.context if c.strip())


@dataclass
class _Run:
    spec: HookSpec
    code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    error: str = ""


def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


def hook_env(project_dir: Path, event: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENV}
    env.update(
        CLAUDE_PROJECT_DIR=str(project_dir), KCODE_PROJECT_DIR=str(project_dir),
        KCODE_HOOK_EVENT=event,
    )  # fmt: skip
    return env


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def hook_argv(command: str) -> list[str]:
    """A bare program path runs directly (a shell costs a few ms per call); anything else —
    arguments, `$VAR`, pipes — runs through bash as in Claude Code."""
    if BARE_PROGRAM.match(command):
        return [command]
    return [_shell(), "-c", command]


async def run_hook(spec: HookSpec, payload: bytes, cwd: Path, env: dict[str, str]) -> _Run:
    try:
        proc = await asyncio.create_subprocess_exec(
            *hook_argv(spec.command),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env,
            start_new_session=True,  # its own group (killed as one) and no controlling terminal
        )  # fmt: skip
    except OSError as failure:
        return _Run(spec, None, "", "", error=f"could not start: {failure}")
    try:
        out, err = await asyncio.wait_for(_exchange(proc, payload), spec.timeout_s)
    except TimeoutError:
        _kill_group(proc)
        await _reap(proc)
        return _Run(spec, None, "", "", timed_out=True)
    except asyncio.CancelledError:
        _kill_group(proc)
        raise
    _kill_group(proc)  # background children it left behind must not outlive it
    text = out.decode("utf-8", "replace")
    return _Run(spec, proc.returncode, text, err.decode("utf-8", "replace"))


async def _exchange(proc: asyncio.subprocess.Process, payload: bytes) -> tuple[bytes, bytes]:
    """communicate(), but a hook printing without end (`yes`) costs OUTPUT_MAX_BYTES, not memory
    until the timeout: the rest is read and dropped."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    async def feed(stdin: asyncio.StreamWriter) -> None:
        try:
            stdin.write(payload)
            await stdin.drain()
            stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # a hook that does not read its input is fine

    async def read(stream: asyncio.StreamReader) -> bytes:
        kept = bytearray()
        while chunk := await stream.read(65536):
            if len(kept) < OUTPUT_MAX_BYTES:
                kept += chunk[: OUTPUT_MAX_BYTES - len(kept)]
        return bytes(kept)

    _, out, err = await asyncio.gather(feed(proc.stdin), read(proc.stdout), read(proc.stderr))
    await proc.wait()
    return out, err


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for a killed hook. `proc.wait()` alone can hang: a reader paused on a full buffer (a
    flooding hook) never sees EOF, so asyncio never closes the pipe; read its rest and drop it,
    and if a leftover process in another session still holds a pipe open, close ours."""

    async def drain(stream: asyncio.StreamReader | None) -> None:
        while stream is not None and await stream.read(65536):
            pass

    try:
        await asyncio.wait_for(asyncio.gather(drain(proc.stdout), drain(proc.stderr)), 5)
    except TimeoutError:
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()
    await proc.wait()


def _short(command: str) -> str:
    one = " ".join(command.split())
    return one if len(one) <= 60 else one[:57] + "..."


def _absorb(outcome: HookOutcome, run: _Run, event: str) -> None:
    name = f"{event} hook `{_short(run.spec.command)}` ({run.spec.source})"
    if run.timed_out:
        outcome.notices.append(f"{name} timed out after {run.spec.timeout_s:g} s and was killed")
        return
    if run.code is None:
        outcome.notices.append(f"{name} {run.error}")
        return
    if run.code == BLOCK_EXIT:
        outcome.blocked = True
        reason = run.stderr.strip() or f"blocked by {name}"
        outcome.reason = "\n".join(r for r in (outcome.reason, reason[:CONTEXT_MAX_CHARS]) if r)
        return
    if run.code != 0:
        first = (run.stderr.strip() or run.stdout.strip()).splitlines()[:1]
        outcome.notices.append(
            f"{name} exited {run.code}" + (f": {first[0][:300]}" if first else "")
        )
        return
    text = run.stdout.strip()
    if not text:
        return
    if text.startswith("{"):
        try:
            data = loads_json(text)
        except ValueError:
            if len(run.stdout.encode("utf-8", "replace")) >= OUTPUT_MAX_BYTES:
                why = f"more than {OUTPUT_MAX_BYTES >> 20} MiB of JSON; it was cut there"
            else:
                why = "invalid JSON"
            outcome.notices.append(f"{name} printed {why}; its output was ignored")
            return
        if isinstance(data, dict):
            _absorb_json(outcome, data, name)
            return
    if event in ("UserPromptSubmit", "SessionStart", "SubagentStart"):
        outcome.context.append(text[:CONTEXT_MAX_CHARS])


def _absorb_json(outcome: HookOutcome, data: dict[str, Any], name: str) -> None:
    if data.get("continue") is False:
        outcome.stop = str(data.get("stopReason") or f"stopped by {name}")
    message = data.get("systemMessage")
    if isinstance(message, str) and message.strip():
        outcome.notices.append(message.strip()[:2000])
    decision = data.get("decision")
    reason = data.get("reason")
    if decision == "block":
        outcome.blocked = True
        text = reason if isinstance(reason, str) and reason.strip() else f"blocked by {name}"
        outcome.reason = "\n".join(r for r in (outcome.reason, text) if r)
    elif decision == "approve":  # the legacy spelling of permissionDecision: allow
        _decide(outcome, "allow", reason)
    specific = data.get("hookSpecificOutput")
    if not isinstance(specific, dict):
        return
    permission = specific.get("permissionDecision")
    if permission in DECISION_RANK:
        _decide(outcome, permission, specific.get("permissionDecisionReason"))
    updated = specific.get("updatedInput")
    if isinstance(updated, dict):
        outcome.updated_input = updated
    extra = specific.get("additionalContext")
    if isinstance(extra, str) and extra.strip():
        outcome.context.append(extra[:CONTEXT_MAX_CHARS])


def _decide(outcome: HookOutcome, decision: str, reason: Any) -> None:
    current = DECISION_RANK.get(outcome.decision or "", 0)
    if DECISION_RANK[decision] >= current:
        outcome.decision = decision
        if isinstance(reason, str) and reason.strip() and decision != "allow":
            outcome.reason = "\n".join(r for r in (outcome.reason, reason.strip()) if r)


class HookRunner:
    """The hooks of one session; shared by the main agent and its sub-agents."""

    def __init__(
        self, specs: Sequence[HookSpec], *, session_id: str = "", transcript_path: str = ""
    ) -> None:
        self.specs = list(specs)
        self.session_id = session_id
        self.transcript_path = transcript_path

    def matching(self, event: str, names: tuple[str, ...]) -> list[HookSpec]:
        seen: set[str] = set()
        out = []
        for spec in self.specs:
            # Events without a matcher value (UserPromptSubmit, Stop) ignore matchers, as in Claude.
            hit = spec.matches(names) if names else True
            if spec.event == event and spec.command not in seen and hit:
                seen.add(spec.command)
                out.append(spec)
        return out

    def has(self, event: str) -> bool:
        return any(spec.event == event for spec in self.specs)

    async def fire(
        self,
        event: str,
        fields: dict[str, Any],
        *,
        cwd: Path,
        names: tuple[str, ...] = (),
        mode: str = "",
        agent_id: str = "main",
        agent_type: str = "main",
    ) -> HookOutcome:
        outcome = HookOutcome()
        specs = self.matching(event, names)
        if not specs:
            return outcome
        payload: dict[str, Any] = {
            "session_id": self.session_id,
            "transcript_path": self.transcript_path,
            "cwd": str(cwd),
            "hook_event_name": event,
            "permission_mode": mode,
        }
        if agent_id != "main":
            payload.update(agent_id=agent_id, agent_type=agent_type)
        payload.update(fields)
        data = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
        env = hook_env(cwd, event)
        runs = await asyncio.gather(*(run_hook(spec, data, cwd, env) for spec in specs))
        for run in runs:  # config order, so "the last updatedInput wins" is well defined
            _absorb(outcome, run, event)
        outcome.ran = len(runs)
        return outcome
