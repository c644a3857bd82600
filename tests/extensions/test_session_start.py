"""SessionStart in `-p` (issue #15 leftover): a real hook script fires once at launch with source
"startup" (or "resume" with --resume), its additionalContext goes with the prompt, its plain stdout
too, and the session log holds one `session_started` per launch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kcode.config.loader import load_config
from kcode.headless import run_headless
from kcode.session import Session, list_sessions


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write_hooks(tmp_path: Path, log: Path) -> None:
    hook = tmp_path / "start.sh"
    # A bash hook whose plain stdout is context (Claude adds it for SessionStart).
    hook.write_text(
        "#!/bin/bash\ninput=$(cat)\n"
        f"printf '%s\\n' \"$input\" >> {log}\n"
        'echo "context for $(printf "%s" "$input" | '
        f'{sys.executable} -c \'import json,sys; print(json.load(sys.stdin)["source"])\')"\n'
    )
    hook.chmod(0o755)
    config_dir = tmp_path / "xdg-config/kcode"
    config_dir.mkdir(parents=True)
    hooks = {"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": str(hook)}]}]}}
    (config_dir / "hooks.json").write_text(json.dumps(hooks))


def test_p_fires_session_start_once_and_sends_its_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    log = tmp_path / "hook.log"
    write_hooks(tmp_path, log)
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "done one"}, {"text": "done two"}]))
    config = load_config(root, {"backend": "scripted", "script": str(script)}, env={},
                         interactive=False)  # fmt: skip
    assert run_headless(config, root, "first task", [], None) == 0
    assert capsys.readouterr().out.strip() == "done one"
    [info] = list_sessions(root)
    assert run_headless(config, root, "second task", [], info.session_id) == 0
    assert capsys.readouterr().out.strip() == "done two"

    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert [d["source"] for d in seen] == ["startup", "resume"]
    assert all(d["hook_event_name"] == "SessionStart" for d in seen)
    users = [m.text for m in Session.open_existing(info.session_id).load_history()
             if m.role == "user"]  # fmt: skip
    assert users[0].startswith("first task") and "context for startup" in users[0]
    assert users[1].startswith("second task") and "context for resume" in users[1]
    records = [json.loads(line) for line in info.path.read_text().splitlines()]
    started = [r for r in records if r.get("event", {}).get("type") == "session_started"]
    assert len(started) == 2  # one per launch: the first run and the resumed one
