"""A chat template that loops is stopped by its CPU time (template_sandbox.run_bounded) with a
message naming the model file, instead of hanging kcode."""

from __future__ import annotations

import time

import pytest

from kcode.backends.base import BackendError
from kcode.backends.llama import template_sandbox
from kcode.backends.llama.chat_template import ChatTemplate
from kcode.backends.llama.template_sandbox import TemplateTimeout, run_bounded
from kcode.messages import Message

NESTED_RANGES = (
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    "{{ messages[0].content }}"
)


def test_a_busy_loop_is_stopped_and_nothing_fires_later() -> None:
    def spin() -> None:
        while True:
            pass

    start = time.monotonic()
    with pytest.raises(TemplateTimeout):
        run_bounded(spin, seconds=0.3)
    assert time.monotonic() - start < 60  # CPU time, so a loaded machine stretches it
    for _ in range(300):  # quick renders: no watchdog exception ever surfaces afterwards
        assert run_bounded(lambda: sum(range(1000)), seconds=0.3) == 499500
    time.sleep(0.3)
    assert sum(range(10)) == 45


def test_waiting_is_not_cpu_time() -> None:
    assert run_bounded(lambda: time.sleep(0.5) or "slept", seconds=0.2) == "slept"


def test_a_looping_template_is_a_config_error_naming_the_model_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(template_sandbox, "MAX_RENDER_CPU_SECONDS", 0.5)
    template = ChatTemplate(NESTED_RANGES, origin="/models/evil.gguf")
    with pytest.raises(BackendError) as err:
        template.render([Message.system("s"), Message.user("hi")])
    assert err.value.kind == "config"
    assert "chat template of /models/evil.gguf was stopped after 0.5 s of CPU" in err.value.message
    # The same template object still renders what it can: the next call is bounded again.
    with pytest.raises(BackendError):
        template.render([Message.user("again")])
    assert ChatTemplate("{{ messages[0].content }}").render([Message.user("ok")]) == "ok"
