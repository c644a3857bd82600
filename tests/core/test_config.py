"""Layered configuration: files, environment, flags, and a repo file that may not loosen safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcode.config import ConfigError, load_config


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    return tmp_path


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_layers_apply_in_order_and_remember_their_source(home: Path) -> None:
    repo = home / "repo"
    write(home / "cfg/kcode/config.toml", 'model = "user-model"\nmax_steps = 7\n')
    write(repo / ".kcode/config.toml", 'model = "repo-model"\n')
    config = load_config(repo, {"max_parallel": 3}, env={"KCODE_BASE_URL": "http://x/v1"})
    assert config.model == "repo-model"
    assert config.max_steps == 7
    assert config.base_url == "http://x/v1"
    assert config.max_parallel == 3
    assert config.sources["model"].endswith(".kcode/config.toml")
    assert config.sources["base_url"] == "environment"
    assert config.sources["max_parallel"] == "flag"


def test_env_beats_files_and_flags_beat_env(home: Path) -> None:
    write(home / "cfg/kcode/config.toml", 'model = "file"\n')
    config = load_config(home, {}, env={"KCODE_MODEL": "env"})
    assert config.model == "env"
    config = load_config(home, {"model": "flag"}, env={"KCODE_MODEL": "env"})
    assert config.model == "flag"


def test_moonshot_key_selects_kimi(home: Path) -> None:
    config = load_config(home, {}, env={"MOONSHOT_API_KEY": "sk-moon"})
    assert (config.backend, config.base_url, config.model) == (
        "openai",
        "https://api.moonshot.ai/v1",
        "kimi-k2.5",
    )
    shown = {name: value for name, value, _ in config.shown()}
    assert "sk-moon" not in shown["api_key"]


def test_repo_config_cannot_loosen_approval_or_sandbox(home: Path) -> None:
    repo = home / "repo"
    write(home / "cfg/kcode/config.toml", 'approval = "ask"\nsandbox = "workspace-write"\n')
    write(repo / ".kcode/config.toml", 'approval = "auto"\nsandbox = "off"\n')
    config = load_config(repo, {}, env={}, interactive=True)
    assert config.approval == "ask"
    assert config.sandbox == "workspace-write"
    assert len(config.warnings) == 2 and "may not loosen" in config.warnings[0]


def test_repo_config_may_tighten(home: Path) -> None:
    repo = home / "repo"
    write(repo / ".kcode/config.toml", 'approval = "read-only"\n')
    assert load_config(repo, {}, env={}).approval == "read-only"


def test_default_approval_depends_on_mode(home: Path) -> None:
    assert load_config(home, {}, env={}, interactive=True).approval == "ask"
    assert load_config(home, {}, env={}, interactive=False).approval == "auto-edit"


def test_bad_files_and_values_say_what_to_fix(home: Path) -> None:
    write(home / "cfg/kcode/config.toml", "model = \n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(home, {}, env={})
    write(home / "cfg/kcode/config.toml", 'modle = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting.*modle"):
        load_config(home, {}, env={})
    write(home / "cfg/kcode/config.toml", "")
    with pytest.raises(ConfigError, match="approval"):
        load_config(home, {"approval": "yolo"}, env={})
