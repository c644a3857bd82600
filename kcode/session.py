"""Sessions: an id, an append-only JSONL log flushed and fsynced per record, and resume.

Each line is one record: {"record": "meta" | "message" | "event" | "history", ...}. "message" records
append to the conversation; a "history" record replaces it (compaction). Replaying the file rebuilds the
conversation, so a session survives a kill -9 at any moment: at worst the last line is torn, and a torn
last line is skipped on load. Secrets (API keys) are redacted before anything is written.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcode.config.loader import data_dir
from kcode.events import Event, ReasoningDelta, TextDelta
from kcode.messages import Message, TextPart, message_from_json, message_to_json
from kcode.safety.json_input import loads_json
from kcode.safety.text_input import valid_unicode
from kcode.session_ids import SESSION_ID, new_session_id

# Deltas are not logged: the AssistantMessage event and the message record carry the full text.
_UNLOGGED_EVENTS = (TextDelta, ReasoningDelta)


def sessions_dir() -> Path:
    return data_dir() / "sessions"


class SessionError(Exception):
    pass


@dataclass
class SessionInfo:
    session_id: str
    path: Path
    cwd: str
    created: float
    first_prompt: str = ""
    messages: int = 0


@dataclass
class Session:
    session_id: str
    path: Path
    cwd: Path
    redact: list[str] = field(default_factory=list)
    _fd: int | None = None
    # Why the log stopped being written (a full disk, a read-only data directory), once it has:
    # the run goes on without it, and the runtime says so once (Runtime.run_turn).
    write_error: str | None = None

    @classmethod
    def create(
        cls, cwd: Path, meta: dict[str, Any] | None = None, redact: list[str] | None = None
    ) -> Session:
        directory = sessions_dir()
        sid = new_session_id()
        session = cls(sid, directory / f"{sid}.jsonl", cwd, [s for s in (redact or []) if s])
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            session.write_error = (
                f"cannot create the session directory {directory} ({err.strerror})"
            )
            return session
        record = {"record": "meta", "session_id": sid, "cwd": str(cwd), "created": time.time()}
        session._append({**record, **(meta or {})})
        return session

    @classmethod
    def open_existing(cls, session_id: str, redact: list[str] | None = None) -> Session:
        # Only an id kcode could have made: `/resume /tmp/notes` or `../../x` named any .jsonl
        # file, which the resumed session then appended its records to (and 300 characters
        # crashed the lookup with "file name too long").
        if not SESSION_ID.fullmatch(session_id):
            raise SessionError(
                f"{session_id[:80]!r} is not a session id (like 20261207-184727-50527a); "
                "`kcode sessions list` shows them"
            )
        path = sessions_dir() / f"{session_id}.jsonl"
        if not path.is_file():
            raise SessionError(
                f"no session {session_id!r} in {sessions_dir()}; `kcode sessions list` shows them"
            )
        info = read_info(path)
        return cls(session_id, path, Path(info.cwd), [s for s in (redact or []) if s])

    def _append(self, record: dict[str, Any]) -> None:
        # valid_unicode: the last guard; text is made valid where it enters (model, tools).
        line = valid_unicode(json.dumps(record, ensure_ascii=False))
        for secret in self.redact:
            line = line.replace(secret, "[redacted]")
        if self.write_error is not None:
            return  # the log ends at the last whole record: resumable up to there
        try:
            if self._fd is None:
                self._fd = _open_for_append(self.path)
            data = memoryview((line + "\n").encode("utf-8"))
            while data:  # a write may be short (a full disk, a signal): the rest follows it
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as err:
            # A torn last line is cut off by the next _open_for_append (a resume, or a retry).
            self.write_error = f"cannot write the session log {self.path} ({err.strerror or err})"

    def log_event(self, event: Event) -> None:
        if isinstance(event, _UNLOGGED_EVENTS):
            return
        self._append({"record": "event", "event": event.to_json()})

    def log_message(self, message: Message) -> None:
        self._append({"record": "message", "message": message_to_json(message)})

    def log_history(self, history: list[Message]) -> None:
        self._append({"record": "history", "messages": [message_to_json(m) for m in history]})

    def load_history(self) -> list[Message]:
        history: list[Message] = []
        for record in _records(self.path):
            if record.get("record") == "message":
                history.append(message_from_json(record["message"]))
            elif record.get("record") == "history":
                history = [message_from_json(m) for m in record["messages"]]
        return repair_history(history)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _open_for_append(path: Path) -> int:
    """The log opened for appending, after cutting off a line torn by a kill mid-write.

    Without the cut, the first record appended after a resume would continue the torn line and
    be unreadable with it, and the file would no longer be "intact but for the last line"."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            keep = _end_of_last_line(fd, size)
            os.ftruncate(fd, keep)
            os.fsync(fd)
        elif not size:
            # A new log: make its directory entry durable too (the records are fsynced).
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _end_of_last_line(fd: int, size: int) -> int:
    """The offset just after the last newline before `size` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SessionError(f"cannot read session file {path}: {err}") from err
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(loads_json(line))
        except ValueError:
            continue  # a line torn by a kill mid-write; everything before it is intact
    return out


def repair_history(history: list[Message]) -> list[Message]:
    """Make a loaded history valid for the next request: every tool call gets a result."""
    repaired: list[Message] = []
    pending: list[str] = []
    for msg in history:
        if msg.role != "tool" and pending:
            repaired.extend(_interrupted(call_id) for call_id in pending)
            pending = []
        if msg.role == "assistant":
            pending = [c.id for c in msg.tool_calls]
        elif msg.role == "tool" and msg.tool_call_id in pending:
            pending.remove(msg.tool_call_id)
        elif msg.role == "tool":
            continue  # a result without its call cannot be sent
        repaired.append(msg)
    repaired.extend(_interrupted(call_id) for call_id in pending)
    return repaired


def _interrupted(call_id: str) -> Message:
    return Message(
        "tool",
        (TextPart("interrupted: this call did not finish (the session was stopped)"),),
        tool_call_id=call_id,
    )


def read_info(path: Path) -> SessionInfo:
    records = _records(path)
    meta = next((r for r in records if r.get("record") == "meta"), {})
    messages = [r for r in records if r.get("record") == "message"]
    first = next(
        (
            "".join(p.get("text", "") for p in r["message"].get("parts", []))
            for r in messages
            if r["message"].get("role") == "user"
        ),
        "",
    )
    return SessionInfo(
        session_id=meta.get("session_id", path.stem),
        path=path,
        cwd=meta.get("cwd", ""),
        created=meta.get("created", path.stat().st_mtime),
        first_prompt=first[:80],
        messages=len(messages),
    )


def list_sessions(cwd: Path | None = None) -> list[SessionInfo]:
    directory = sessions_dir()
    if not directory.is_dir():
        return []
    infos = []
    for path in directory.glob("*.jsonl"):
        try:
            info = read_info(path)
        except (SessionError, OSError):
            continue
        if cwd is None or Path(info.cwd) == cwd:
            infos.append(info)
    return sorted(infos, key=lambda i: i.path.stat().st_mtime, reverse=True)
