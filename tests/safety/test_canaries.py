"""Canary secrets in the environment and in .env never reach logs, events, children or output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fake_openai import FakeOpenAIServer, Reply
from tests.safety.interrupts import LAUNCH, kcode_env

ENV_CANARY = "canary-env-7d2f1e0b"
FILE_CANARY = "canary-dotenv-51c9aa"
KEY_CANARY = "sk-canary-apikey-0e93"


def test_canaries_stay_out_of_everything(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".env").write_text(f"DB_PASSWORD={FILE_CANARY}\n")
    (ws / "app.py").write_text("print('canary')\n")
    script = [
        Reply.multi_call(
            ("read_file", {"path": ".env"}),
            ("grep", {"pattern": "canary", "path": "."}),
        ),
        Reply.tool_call(
            "shell",
            {"command": "env; cat .env; printenv MY_SERVICE_TOKEN; grep -r canary . || true"},
        ),
        Reply.text("done"),
    ]
    with FakeOpenAIServer(script) as server:
        env = kcode_env(tmp_path, server.base_url)
        env.update(MY_SERVICE_TOKEN=ENV_CANARY, KCODE_API_KEY=KEY_CANARY)
        done = subprocess.run(
            [
                *(sys.executable, "-c", LAUNCH, "-p", "look around", "--approval", "auto"),
                *("--output-format", "stream-json"),
            ],
            cwd=ws,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        sent = [str(r.body) for r in server.requests]
    assert done.returncode == 0, done.stderr
    assert '"shell"' in done.stdout  # the commands really ran
    logs = [p.read_text() for p in (tmp_path / "data").rglob("*.jsonl")]
    assert logs
    for where, text in [
        ("stdout", done.stdout),
        ("stderr", done.stderr),
        *[("log", t) for t in logs],
    ]:
        for canary in (ENV_CANARY, FILE_CANARY, KEY_CANARY):
            assert canary not in text, (where, canary)
    for body in sent:  # nor what the model was shown
        assert ENV_CANARY not in body and FILE_CANARY not in body
