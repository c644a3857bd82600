"""KCODE_LOCAL_STEER files: what they make the model write, and clear errors for bad ones."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from kcode.backends.base import BackendError, BackendOptions, TextChunk, ToolCallChunk, ToolSpec
from kcode.backends.llama.steering import load_steering
from kcode.messages import Message

from .tiny_gguf import write_llama_gguf

READ = ToolSpec(
    "read_file",
    "Read a file",
    {
        "type": "object",
        "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["path"],
    },
)


@pytest.mark.parametrize(
    "content",
    ["not json", '{"tool": "x"}', '[{"tool": 3}]', '[{"text": "a", "tool": "b"}]', '[{"x": 1}]'],
)
def test_unusable_steering_files_are_config_errors(tmp_path: Path, content: str) -> None:
    steps = tmp_path / "steps.json"
    steps.write_text(content)
    with pytest.raises(BackendError) as err:
        load_steering(steps)
    assert err.value.kind == "config" and "KCODE_LOCAL_STEER" in err.value.message


def test_missing_steering_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as err:
        load_steering(tmp_path / "absent.json")
    assert "absent.json" in err.value.message


@pytest.mark.llama
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python")
async def test_steps_make_the_model_write_exactly_what_they_say(tmp_path: Path) -> None:
    from kcode.backends.llama.llama_cpp import LlamaCppBackend

    steps = tmp_path / "steps.json"
    steps.write_text(
        json.dumps([{"tool": "read_file", "arguments": {"path": "a b\n.txt"}}, {"text": "Done: ü"}])
    )
    model = write_llama_gguf(tmp_path / "tiny.gguf")
    backend = LlamaCppBackend(model, n_ctx=2048, n_threads=1, steer=steps)
    messages = [Message.system("test"), Message.user("go")]
    first = [d async for d in backend.stream(messages, [READ], BackendOptions(temperature=1.0))]
    calls = [d for d in first if isinstance(d, ToolCallChunk)]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("read_file", {"path": "a b\n.txt"})
    ]
    second = [d async for d in backend.stream(messages, [READ], BackendOptions(temperature=1.0))]
    assert "".join(d.text for d in second if isinstance(d, TextChunk)) == "Done: ü"
    await backend.aclose()
