"""Layered configuration: files, environment, flags, and a repo file that may only tighten a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcode.config.loader import ConfigError, SettingsError, load_config


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
    write(repo / ".kcode/config.toml", "max_steps = 5\n")
    config = load_config(repo, {"max_parallel": 3}, env={"KCODE_BASE_URL": "http://x/v1"})
    assert config.model == "user-model"
    assert config.max_steps == 5
    assert config.base_url == "http://x/v1"
    assert config.max_parallel == 3
    assert config.sources["model"].endswith("cfg/kcode/config.toml")
    assert config.sources["max_steps"].endswith(".kcode/config.toml")
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


def test_repo_config_cannot_turn_off_the_automatic_sandbox(home: Path) -> None:
    repo = home / "repo"
    write(repo / ".kcode/config.toml", 'sandbox = "off"\n')
    config = load_config(repo, {}, env={})
    assert config.sandbox is None  # the automatic default: a sandbox wherever one can start
    assert config.warnings == [
        f"{repo / '.kcode/config.toml'}: ignored sandbox = 'off'; a repository's config may not "
        "turn sandbox off (add this repository to `trusted` in your user config to honour it)"
    ]


def test_repo_config_sets_only_allowlisted_keys(home: Path) -> None:
    repo = home / "repo"
    write(
        repo / ".kcode/config.toml",
        'base_url = "http://evil/v1"\napi_key = "k"\nbackend = "scripted"\nscript = "s.json"\n'
        'model = "m"\nadd_dirs = ["/"]\ntrusted = ["/"]\nfuture_key = 1\n',
    )
    config = load_config(repo, {}, env={})
    assert (config.base_url, config.api_key, config.backend, config.script) == ("", "", None, "")
    assert (config.model, config.add_dirs, config.trusted) == ("", [], [])
    ignored = sorted(w.split("ignored ")[1].split(";")[0] for w in config.warnings)
    assert ignored == sorted(
        ["base_url", "api_key", "backend", "script", "model", "add_dirs", "trusted", "future_key"]
    )
    assert all(w.startswith(f"{repo / '.kcode/config.toml'}: ") for w in config.warnings)


def test_repo_config_may_only_lower_limits_and_turn_flags_off(home: Path) -> None:
    repo = home / "repo"
    write(
        home / "cfg/kcode/config.toml",
        "max_steps = 50\ntimeout_s = 60\nallow_network = true\nallow_secrets = true\n",
    )
    write(
        repo / ".kcode/config.toml",
        "max_steps = 500\nmax_parallel = 64\ntimeout_s = 600\nauto_commit = true\n",
    )
    config = load_config(repo, {}, env={})
    assert (config.max_steps, config.max_parallel, config.timeout_s) == (50, 8, 60)
    assert config.auto_commit is False
    assert len(config.warnings) == 4 and all("ignored" in w for w in config.warnings)
    write(
        repo / ".kcode/config.toml",
        'max_steps = "10"\nmax_parallel = 2\ntimeout_s = 5\nallow_network = false\n'
        "allow_secrets = false\n",
    )
    config = load_config(repo, {}, env={})
    assert (config.max_steps, config.max_parallel, config.timeout_s) == (10, 2, 5)
    assert (config.allow_network, config.allow_secrets) == (False, False)
    assert config.warnings == []


def test_repo_rules_add_ask_and_deny_only(home: Path) -> None:
    repo = home / "repo"
    write(
        repo / ".kcode/config.toml",
        '[rules]\nallow = ["shell(*)"]\nask = ["shell(git push*)"]\ndeny = ["read(.env)"]\n',
    )
    config = load_config(repo, {}, env={})
    assert config.rules.as_dict() == {
        "allow": [], "ask": ["shell(git push*)"], "deny": ["read(.env)"]
    }  # fmt: skip
    assert len(config.warnings) == 1 and "allow rules" in config.warnings[0]


def test_a_trusted_repo_may_set_anything_but_trust(home: Path) -> None:
    repo = home / "repo"
    write(home / "cfg/kcode/config.toml", f"trusted = [{str(repo)!r}]\n")
    write(
        repo / ".kcode/config.toml",
        'model = "repo-model"\napproval = "auto"\ntrusted = ["/"]\n[rules]\nallow = ["shell(*)"]\n',
    )
    config = load_config(repo, {}, env={}, interactive=True)
    assert (config.model, config.approval) == ("repo-model", "auto")
    assert config.rules.allow == ["shell(*)"]
    assert config.trusted == [str(repo)]
    assert len(config.warnings) == 1 and "ignored trusted" in config.warnings[0]


def test_a_repo_config_that_is_a_symlink_out_of_the_repo_is_not_read(home: Path) -> None:
    repo = home / "repo"
    write(home / "elsewhere.toml", "max_steps = 3\n")
    (repo / ".kcode").mkdir(parents=True)
    (repo / ".kcode/config.toml").symlink_to(home / "elsewhere.toml")
    config = load_config(repo, {}, env={})
    assert config.max_steps == 100
    assert len(config.warnings) == 1 and "outside the workspace" in config.warnings[0]


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


def test_repo_limits_only_tighten_and_repo_prices_never_apply(home: Path) -> None:
    repo = home / "repo"
    write(home / "cfg/kcode/config.toml", "[limits]\nmax_cost = 2.0\n")
    write(
        repo / ".kcode/config.toml",
        '[limits]\nmax_cost = 50\nmax_tokens = 1000\n[prices."m"]\ninput = 0\noutput = 0\n',
    )
    config = load_config(repo, {}, env={})
    assert config.limits == {"max_cost": 2.0, "max_tokens": 1000}  # a new cap may be added
    assert config.prices == {}
    assert [w.split("; ")[0].rsplit(": ", 1)[1] for w in config.warnings] == [
        "ignored [limits] max_cost = 50",
        "ignored prices",
    ]
    write(repo / ".kcode/config.toml", "[limits]\nmax_cost = 0.5\n")
    config = load_config(repo, {}, env={})
    assert (config.limits, config.sources["limits"]) == (
        {"max_cost": 0.5},
        str(repo / ".kcode/config.toml"),
    )
    # A flag is the user's own choice for this run: it beats the repo's cap.
    assert load_config(repo, {"limits": {"max_cost": 3.0}}, env={}).limits == {"max_cost": 3.0}


def test_a_trusted_repo_still_cannot_lift_a_budget(home: Path) -> None:
    repo = home / "repo"
    write(home / "cfg/kcode/config.toml", f"trusted = [{str(repo)!r}]\n[limits]\nmax_tokens = 10\n")
    write(
        repo / ".kcode/config.toml",
        '[limits]\nmax_tokens = 99999\n[prices."m"]\ninput = 0\noutput = 0\n',
    )
    config = load_config(repo, {}, env={})
    assert (config.limits, config.prices) == ({"max_tokens": 10}, {})
    assert len(config.warnings) == 2


def test_a_repo_limit_that_does_not_parse_fails_the_run(home: Path) -> None:
    repo = home / "repo"
    write(home / "cfg/kcode/config.toml", "[limits]\nmax_cost = 2.0\n")
    write(repo / ".kcode/config.toml", '[limits]\nmax_cost = "free"\n')
    with pytest.raises(ConfigError, match=r"invalid configuration: limits \(.*\.kcode/config"):
        load_config(repo, {}, env={})


def test_config_values_are_typed_and_an_override_remembers_its_source(home: Path) -> None:
    config = load_config(home, {"max_steps": "12"}, env={})
    assert config.max_steps == 12 and config.settings.max_steps == 12
    switched = config.overridden("/model", backend="scripted", model="m2")
    assert (switched.backend, switched.model, switched.max_steps) == ("scripted", "m2", 12)
    assert switched.sources["model"] == "/model" and "model" not in config.sources
    with pytest.raises(SettingsError):
        config.overridden("/model", backend="nope")


def test_an_invalid_value_names_the_layer_that_set_it(home: Path) -> None:
    write(home / "cfg/kcode/config.toml", "[mcp_servers]\nx = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(home, {"approval": "yolo"}, env={})
    user = str(home / "cfg/kcode/config.toml")
    assert str(err.value) == (
        "invalid configuration: approval (flag): Input should be 'ask', 'auto-edit', 'auto', "
        f"'read-only' or 'plan'; mcp_servers.x ({user}): Input should be a valid dictionary"
    )
