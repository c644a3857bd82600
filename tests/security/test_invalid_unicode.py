"""Text that is not valid Unicode never ends a run: the real binary against the fake OpenAI server.

Before kcode.safety.text_input, each of these ended the run with "internal error" at the first
write to the session log: a model reply or tool argument holding a "\\ud800" escape, a repository
file whose name is not UTF-8 (seen by glob, grep or ls), and a prompt with such bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.e2e.conftest import kcode_exe, make_repo
from tests.fake_openai import FakeOpenAIServer, Reply

REPLACEMENT = "\ufffd"


def run(argv: list[bytes], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [os.fsencode(kcode_exe()), *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def session_lines(env: dict[str, str]) -> list[str]:
    """Every line of every session log, decoded strictly: a log that is not UTF-8 fails here."""
    sessions = Path(env["XDG_DATA_HOME"]) / "kcode" / "sessions"
    return [
        line
        for path in sessions.glob("*.jsonl")
        for line in path.read_bytes().decode().splitlines()
    ]


def test_lone_surrogates_and_non_utf8_file_names(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "hello\n"})
    (repo / os.fsdecode(b"bad\xff.txt")).write_bytes(b"hello \xff\xfe world\n")
    script = [
        Reply.multi_call(
            ("glob", {"pattern": "*"}),
            ("grep", {"pattern": "hello"}),
            ("write_file", '{"path": "out\\ud800.txt", "content": "a\\udc00b"}'),
        ),
        Reply.text("done \ud800 here"),
    ]
    with FakeOpenAIServer(script) as server:
        kcode_env["KCODE_BASE_URL"] = server.base_url
        proc = run([b"-p", b"look \xff around", b"--approval", b"auto"], kcode_env, repo)
        bodies = [r.raw for r in server.requests]
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, stderr
    assert "internal error" not in stderr
    assert proc.stdout.decode() == f"done {REPLACEMENT} here\n"
    # What the model was sent: valid JSON, the bad bytes as U+FFFD (prompt, file names, output).
    last = json.loads(bodies[-1])
    texts = [str(m.get("content")) for m in last["messages"]]
    assert f"look {REPLACEMENT} around" in texts
    assert any(f"bad{REPLACEMENT}.txt" in t and "a.txt" in t for t in texts)  # glob
    assert any(f"hello {REPLACEMENT}{REPLACEMENT} world" in t for t in texts)  # grep
    assert (repo / f"out{REPLACEMENT}.txt").read_text() == f"a{REPLACEMENT}b"
    assert any("done" in line for line in session_lines(kcode_env))
