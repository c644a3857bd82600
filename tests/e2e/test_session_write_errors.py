"""A session log that cannot be written (a full disk, a data directory that cannot be created) is
said once and the run goes on: the real binary against the fake OpenAI server.

It used to end the run with "internal error" (OSError from the log writer) and a message claiming
the session was saved. The full disk is played by RLIMIT_FSIZE, which holds for root too: past the
limit a write fails with EFBIG (Python ignores SIGXFSZ), as it fails with ENOSPC on a full disk.
"""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path

from tests.e2e.conftest import Run, kcode_exe, make_repo
from tests.fake_openai import FakeOpenAIServer, Reply

LIMIT = 64 * 1024  # bytes any file of the run may grow to


def run_limited(args: list[str], env: dict[str, str], cwd: Path) -> Run:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    proc = subprocess.run(
        [kcode_exe(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        stdin=subprocess.DEVNULL,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def test_a_full_disk_stops_the_log_not_the_run(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    repo = make_repo(tmp_path / "repo", {"big.txt": "0123456789abcdef\n" * 6_000})  # ~100 KB
    script = [
        Reply.tool_call("read_file", {"path": "big.txt"}),
        Reply.text("read it all"),
        Reply.text("resumed fine"),  # the resumed run's answer
    ]
    with FakeOpenAIServer(script) as server:
        kcode_env["KCODE_BASE_URL"] = server.base_url
        run = run_limited(["-p", "read big.txt"], kcode_env, repo)
        assert run.code == 0, run.stderr
        assert run.stdout == "read it all\n"
        assert "internal error" not in run.stderr
        assert run.stderr.count("cannot write the session log") == 1, run.stderr
        assert "resumed only up to here" in run.stderr
        # What was written is resumable: the torn last line is cut off, the prompt is there.
        resumed = subprocess.run(
            [kcode_exe(), "-c", "-p", "go on", "--output-format", "json"],
            env=kcode_env,
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["result"] == "resumed fine"
        last = server.requests[-1].body
    assert last is not None
    assert any(m.get("content") == "read big.txt" for m in last["messages"])


def test_a_data_directory_that_cannot_be_created(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be\n")
    kcode_env["XDG_DATA_HOME"] = str(blocker / "data")  # mkdir fails with ENOTDIR, root or not
    with FakeOpenAIServer([Reply.text("fine")]) as server:
        kcode_env["KCODE_BASE_URL"] = server.base_url
        run = run_limited(["-p", "hello"], kcode_env, tmp_path)
    assert run.code == 0, run.stderr
    assert run.stdout == "fine\n"
    assert "cannot create the session directory" in run.stderr
    assert "cannot be resumed" in run.stderr and "internal error" not in run.stderr


def test_a_snapshot_that_fails_is_said_and_the_turn_goes_on(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    """The checkpoint before the turn cannot store an untracked file bigger than the disk allows:
    the user is told /undo cannot restore this turn, and the turn runs. It was "internal error"."""
    import base64
    import os

    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    (repo / "noise.txt").write_text(base64.b64encode(os.urandom(150_000)).decode())
    with FakeOpenAIServer([Reply.text("answered")]) as server:
        kcode_env["KCODE_BASE_URL"] = server.base_url
        run = run_limited(["-p", "hello", "--output-format", "stream-json"], kcode_env, repo)
    assert run.code == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    errors = [e for e in events if e["type"] == "error" and e["kind"] == "checkpoint"]
    assert len(errors) == 1 and "/undo" in errors[0]["message"]
    finished = [e for e in events if e["type"] == "turn_finished"]
    assert finished and finished[-1]["result"] == "answered"
