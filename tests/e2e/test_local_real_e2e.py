"""The real `kcode` binary on local models: bad model input, a native crash, an over-long prompt,
the bundled SmolLM2 (`--model bundled`, `kcode models list`, an interactive start with nothing
configured).

Bad input must give a message naming the file and what to do, exit 2, and no session file. A
native crash (forced by the test hook KCODE_TEST_NATIVE_CRASH, which writes through a null pointer
inside a native call) must give a message, exit 3, and leave the session log readable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest

from tests.backends.real_models import needs_llama, smollm2
from tests.backends.tiny_gguf import write_llama_gguf
from tests.e2e.conftest import kcode_exe, make_repo, run_kcode

pytestmark = [pytest.mark.llama, needs_llama]


def local_env(kcode_env: dict[str, str], tmp_path: Path, config: str = "") -> dict[str, str]:
    env = {k: v for k, v in kcode_env.items() if k not in ("KCODE_API_KEY", "KCODE_MODEL")}
    env["HF_HUB_CACHE"] = str(tmp_path / "hf-cache")
    env["HF_HUB_OFFLINE"] = "1"
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")  # KV prefix files: never the user's
    path = Path(env["XDG_CONFIG_HOME"]) / "kcode" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("n_threads = 1\n" + config)
    return env


def steer(env: dict[str, str], tmp_path: Path, steps: list[object]) -> None:
    file = tmp_path / "steps.json"
    file.write_text(json.dumps(steps))
    env["KCODE_LOCAL_STEER"] = str(file)


def session_files(env: dict[str, str]) -> list[Path]:
    return sorted(Path(env["XDG_DATA_HOME"]).rglob("*.jsonl"))


def bad_models(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (model file, what the message must say)."""
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / "page.gguf"
    html.write_text("<html>404 not found</html>")
    whole = write_llama_gguf(folder / "whole.gguf").read_bytes()
    cut = folder / "cut.gguf"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    return {
        "not a gguf": (html, "not a GGUF"),
        "truncated": (cut, "truncated"),
        "unknown architecture": (
            write_llama_gguf(folder / "odd.gguf", architecture="frobnicator"),
            "frobnicator",
        ),
        "template fails": (
            write_llama_gguf(
                folder / "refuses.gguf",
                chat_template="{{ raise_exception('this template takes no tools') }}",
                context_length=32768,
            ),
            "this template takes no tools",
        ),
        "template loops": (  # stopped by its CPU time (template_sandbox.run_bounded)
            write_llama_gguf(
                folder / "loops.gguf",
                chat_template="{% for i in range(100000) %}{% for j in range(100000) %}"
                "{% endfor %}{% endfor %}",
                context_length=32768,
            ),
            "was stopped after",
        ),
        "context too small for the tools": (
            write_llama_gguf(folder / "short.gguf", context_length=1024),
            "n_ctx",
        ),
    }


def test_bad_model_input_is_a_usage_error_naming_the_file_and_writes_nothing(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = local_env(kcode_env, tmp_path)
    for name, (model, says) in bad_models(tmp_path / "models").items():
        args = ["-p", "hi", "--backend", "llama-cpp", "--model", str(model)]
        run = run_kcode(args, env, repo, timeout=120)
        assert run.code == 2, (name, run.stderr)
        assert str(model) in run.stderr and says in run.stderr, (name, run.stderr)
        assert session_files(env) == [], name


def test_prompt_that_cannot_fit_names_the_context_and_the_setting(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    model = write_llama_gguf(tmp_path / "tiny.gguf", context_length=32768)
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = local_env(kcode_env, tmp_path, "n_ctx = 16384\n")
    prompt = "please read this. " * 1500  # byte-level tokens: far over 16k
    run = run_kcode(["-p", prompt, "--model", str(model)], env, repo, timeout=180)
    assert run.code == 2, run.stderr
    assert f"16384-token context of {model} " in run.stderr and "Raise n_ctx" in run.stderr


def test_native_crash_gives_a_message_exit_3_and_keeps_the_session_log(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    model = write_llama_gguf(tmp_path / "tiny.gguf", context_length=32768)
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = local_env(kcode_env, tmp_path, "n_ctx = 16384\n")
    env["KCODE_TEST_NATIVE_CRASH"] = "1"
    run = run_kcode(["-p", "say hi", "--model", str(model)], env, repo, timeout=180)
    assert run.code == 3, run.stderr
    assert "kcode: llama.cpp crashed (SIGSEGV) while running" in run.stderr
    assert str(model) in run.stderr and "kcode -c" in run.stderr
    [log] = session_files(env)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    events = [r["event"]["type"] for r in records if r["record"] == "event"]
    assert "session_started" in events and "turn_started" in events
    messages = [r["message"] for r in records if r["record"] == "message"]
    assert messages[-1]["role"] == "user" and messages[-1]["parts"] == [{"text": "say hi"}]


@pytest.mark.slow
def test_bundled_model_runs_with_p_when_named_and_is_listed(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    path = smollm2()
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = local_env(kcode_env, tmp_path)
    listed = run_kcode(["models", "list"], env, repo)
    assert listed.code == 0 and f"bundled\t0.10 GB\t{path}\t(bundled)" in listed.stdout
    # -p with nothing configured stays a usage error: CI must say what it runs.
    unconfigured = run_kcode(["-p", "Say hello"], env, repo)
    assert unconfigured.code == 2 and "no model is configured" in unconfigured.stderr
    steer(env, tmp_path, [{"text": "Hello!"}])
    args = ["-p", "Say hello", "--model", "bundled", "--output-format", "json"]
    # The compact prompt of a small model (~900 tokens) is read once; the second run loads its
    # static prefix (system prompt and tools) from the KV file the first one left in the cache.
    run = run_kcode(args, env, repo, timeout=900)
    assert run.code == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["result"] == "Hello!" and 500 < out["usage"]["prompt_tokens"] < 1500
    [state] = list(Path(env["XDG_CACHE_HOME"]).rglob("*.kvstate"))
    written = state.stat().st_mtime_ns
    steer(env, tmp_path, [{"text": "Hello again!"}])
    again = run_kcode(args, env, repo, timeout=900)
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["result"] == "Hello again!"
    assert list(Path(env["XDG_CACHE_HOME"]).rglob("*.kvstate")) == [state]
    assert state.stat().st_mtime_ns == written  # read, not written again


@pytest.mark.slow
def test_interactive_kcode_with_nothing_configured_starts_on_the_bundled_model(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    smollm2()
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = local_env(kcode_env, tmp_path)
    steer(env, tmp_path, [{"text": "Hello from SmolLM2."}])
    env = {**env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        kcode_exe(), [], env=env, cwd=str(repo), dimensions=(40, 200), encoding="utf-8",
        timeout=900,
    )  # fmt: skip
    child.expect("bundled demo model SmolLM2-135M-Instruct.Q4_1.gguf")
    child.expect("MOONSHOT_API_KEY")
    child.expect("›")
    child.send("hello\r")
    child.expect("Hello from SmolLM2.")
    child.send("\x04")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert child.before.count("bundled demo model") <= 1
