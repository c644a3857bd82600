"""`kcode -p` on a local GGUF: the installed executable, a real repo, a tiny random-weight model.

A random-weight model writes noise, so the model's choices are steered by grammars through
KCODE_LOCAL_STEER (kcode/backends/llama/steering.py): step 1 forces `read_file` with pinned arguments,
step 2 constrains the answer to a fixed sentence. Everything else is the product: the GGUF's chat
template, token-level decoding in llama.cpp under the grammar, the Hermes tool-call parser, the
real read_file tool, the agent loop, the JSON result and the exit code.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.backends.tiny_gguf import write_llama_gguf
from tests.e2e.conftest import make_repo, run_kcode

pytestmark = [
    pytest.mark.llama,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed (pip install 'kcode[local]')",
    ),
]

ANSWER = "The notes say: hello from the notes."
DEFAULT_REPO = "bartowski/Qwen2.5-Coder-7B-Instruct-GGUF"
DEFAULT_FILE = "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A long trained context so kcode's whole system prompt (byte-level tokens) fits.
    path = tmp_path_factory.mktemp("models") / "tiny.gguf"
    return write_llama_gguf(path, context_length=32768)


def local_env(kcode_env: dict[str, str], tmp_path: Path, steps: list[object]) -> dict[str, str]:
    env = {k: v for k, v in kcode_env.items() if k not in ("KCODE_API_KEY", "KCODE_MODEL")}
    steer = tmp_path / "steps.json"
    steer.write_text(json.dumps(steps))
    env["KCODE_LOCAL_STEER"] = str(steer)
    env["HF_HUB_CACHE"] = str(tmp_path / "hf-cache")  # never the user's cache
    env["HF_HUB_OFFLINE"] = "1"
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")  # KV prefix files: never the user's
    config = Path(env["XDG_CONFIG_HOME"]) / "kcode" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("n_ctx = 16384\nn_threads = 1\n")
    return env


def session_log(env: dict[str, str], session_id: str) -> list[dict[str, object]]:
    log = Path(env["XDG_DATA_HOME"]) / "kcode" / "sessions" / f"{session_id}.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_grammar_driven_turn_calls_a_tool_then_answers(
    tmp_path: Path, kcode_env: dict[str, str], tiny_model: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"notes.txt": "hello from the notes\n"})
    steps = [{"tool": "read_file", "arguments": {"path": "notes.txt"}}, {"text": ANSWER}]
    env = local_env(kcode_env, tmp_path, steps)
    args = ["-p", "what do the notes say?", "--backend", "llama-cpp", "--model", str(tiny_model)]
    run = run_kcode([*args, "--output-format", "json"], env, repo, timeout=300)
    assert run.code == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["exit_code"] == 0 and out["result"] == ANSWER
    assert out["steps"] == 2 and out["usage"]["requests"] == 2
    assert out["usage"]["prompt_tokens"] > 1000 and out["files_changed"] == []
    # The model's call reached the real tool, and its output went back into the conversation.
    text = json.dumps(session_log(env, out["session_id"]))
    assert "hello from the notes" in text and '"read_file"' in text


def test_unknown_steered_tool_fails_with_a_backend_error(
    tmp_path: Path, kcode_env: dict[str, str], tiny_model: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = local_env(kcode_env, tmp_path, [{"tool": "no_such_tool"}])
    run = run_kcode(
        [
            "-p",
            "go",
            "--backend",
            "llama-cpp",
            "--model",
            str(tiny_model),
            "--output-format",
            "json",
        ],
        env,
        repo,
        timeout=300,
    )
    assert run.code == 3 and "no_such_tool" in run.stdout + run.stderr


def put_in_hf_cache(cache: Path, repo: str, filename: str, source: Path) -> None:
    """Lay the file out the way huggingface_hub's cache does (refs/main → snapshot)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    shutil.copyfile(source, snapshot / filename)


def test_with_nothing_configured_the_cached_default_model_runs(
    tmp_path: Path, kcode_env: dict[str, str], tiny_model: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = local_env(kcode_env, tmp_path, [{"text": "hi"}])
    put_in_hf_cache(Path(env["HF_HUB_CACHE"]), DEFAULT_REPO, DEFAULT_FILE, tiny_model)
    run = run_kcode(["-p", "say hi", "--output-format", "json"], env, repo, timeout=300)
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["result"] == "hi"


def test_with_nothing_configured_and_no_cached_model_explains_the_setup(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = local_env(kcode_env, tmp_path, [])
    run = run_kcode(["-p", "say hi"], env, repo)
    assert run.code == 2
    assert "no model is configured" in run.stderr and "kcode models pull" in run.stderr
