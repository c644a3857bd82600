"""#11 class 5 (terminal injection) and the output part of class 7 (API keys in printed output)."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console

from kcode.events import (
    AgentFinished,
    AgentSpawned,
    ApprovalDecided,
    ApprovalRequested,
    AssistantMessage,
    Error,
    ReasoningDelta,
    Retrying,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from kcode.safety.approval import ApprovalRequest
from kcode.safety.terminal_text import visible
from kcode.ui.approval_prompt import approval_view
from kcode.ui.printers import make_printer
from kcode.ui.render import Renderer
from tests.security.conftest import SECRET_KEY, Victim

HOSTILE = "x\x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;http://evil\x07link\x1b]8;;\x07\r\x1b[2K\u202eok\x9b1A\u200b"
RAW = ("\x1b]52;", "\x1b]8;", "\x1b[2K", "\r", "\u202e", "\x9b", "\u200b", "\x07")
# rich's own Live region uses \r and \x1b[2K; these are the hostile ones, in their context.
HOSTILE_RAW = ("\x1b]52;", "\x1b]8;", "\r\x1b[2K\u202e", "\x1b[2K\u202e", "\u202e", "\x9b")


def terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=200, color_system="truecolor"), buffer


def assert_clean(out: str, raws: tuple[str, ...] = RAW) -> None:
    for raw in raws:
        assert raw not in out, repr(raw)


def test_visible_maps_controls_bidi_and_zero_width() -> None:
    assert visible("a\x1b[2Kb\rc\x7f\x85\u202e\u2066\ufeff\n\t") == (
        "a\\x1b[2Kb\\rc\\x7f\\x85<U+202E><U+2066><U+FEFF>\n\t"
    )
    assert visible("a\nb", one_line=True) == "a\\nb"


def test_every_event_type_renders_hostile_strings_visibly() -> None:
    console, buffer = terminal()
    renderer = Renderer(console)
    events: list[Any] = [
        ReasoningDelta(text=HOSTILE),
        TextDelta(text=f"answer {HOSTILE}\n\n[click](http://evil) [bold red]x[/]\n\n"),
        AssistantMessage(text=HOSTILE),
        ToolCallStarted(call_id="1", name="shell", arguments={"command": HOSTILE}),
        ToolCallFinished(call_id="1", name="shell", ok=True, content=HOSTILE, data={}),
        ToolCallStarted(call_id="2", name="write_file", arguments={"path": HOSTILE}),
        ApprovalRequested(
            call_id="2", action="edit", tool="write_file", summary=HOSTILE, detail=f"+{HOSTILE}"
        ),
        ToolCallFinished(
            call_id="2", name="write_file", ok=True, content=HOSTILE, data={"diff": f"+{HOSTILE}"}
        ),
        ToolCallStarted(call_id="3", name="todo_write", arguments={"items": [{"text": HOSTILE}]}),
        ToolCallFinished(call_id="3", name="todo_write", ok=True, content="ok"),
        ApprovalDecided(call_id="1", action="shell", tool="shell", allowed=False, reason=HOSTILE),
        Retrying(attempt=1, delay_s=0.1, reason=HOSTILE),
        AgentSpawned(agent_id="a1", role=HOSTILE, prompt=HOSTILE),
        AgentFinished(agent_id="a1", role=HOSTILE, ok=False, report=HOSTILE, error=HOSTILE),
        ToolCallStarted(call_id="4", name="spawn_agents", arguments={"tasks": []}),
        ToolCallFinished(call_id="4", name="spawn_agents", ok=True, content=HOSTILE),
        Error(message=HOSTILE, kind="x"),
    ]
    for event in events:
        renderer.handle(event)
    renderer.finish()
    out = buffer.getvalue()
    assert_clean(out, (*HOSTILE_RAW, "\u200b", "\x07"))
    assert "\\x1b]52;" in out and "<U+202E>" in out
    assert "[bold red]x[/]" in out  # shown literally, not as markup


def test_approval_prompt_shows_the_real_command() -> None:
    console, buffer = terminal()
    command = "rm -rf x\r\x1b[2K$ npm test"
    console.print(approval_view(ApprovalRequest(action="shell", tool="shell", summary=command)))
    out = buffer.getvalue()
    assert "rm -rf x" in out and "\\x1b[2K$ npm test" in out
    assert_clean(out)


def test_approval_prompt_shows_the_real_path_of_an_edit() -> None:
    console, buffer = terminal()
    path = ".git/config\x1b[1A\r[bold]README.md"
    request = ApprovalRequest(
        action="edit", tool="write_file", summary=f"edit {path}", detail="", paths=(path,)
    )
    console.print(approval_view(request))
    out = buffer.getvalue()
    assert ".git/config\\x1b[1A\\r[bold]README.md" in out
    assert "\x1b[1A" not in out and "\r" not in out


def test_printers_make_controls_visible_and_redact_keys() -> None:
    for fmt in ("text", "json", "stream-json"):
        out, err = io.StringIO(), io.StringIO()
        printer = make_printer(fmt, out, err, [SECRET_KEY])
        half = len(SECRET_KEY) // 2
        printer.event(TextDelta(text=f"key {SECRET_KEY[:half]}"))
        printer.event(TextDelta(text=f"{SECRET_KEY[half:]} {HOSTILE}"))
        printer.event(Error(message=f"{SECRET_KEY} {HOSTILE}", kind="x"))
        printer.finish({"result": f"{SECRET_KEY} {HOSTILE}"})
        for text in (out.getvalue(), err.getvalue()):
            assert SECRET_KEY not in text and SECRET_KEY[:half] not in text, fmt
            assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text, fmt
        if fmt == "stream-json":
            lines = [json.loads(line) for line in out.getvalue().splitlines()]
            streamed = "".join(x["text"] for x in lines if x["type"] == "text_delta")
            assert streamed.startswith("key [redacted] x\x1b]52;")  # values intact, only escaped


def _read_turns(path: str, text: str) -> list[dict[str, Any]]:
    return [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": path}}]},
        {"text": text},
    ]


def test_real_binary_prints_no_raw_escape(victim: Victim) -> None:
    victim.write("notes.txt", f"hello {HOSTILE}\n")
    victim.commit()
    for args in ((), ("--output-format", "json"), ("--output-format", "stream-json")):
        attack = victim.run(_read_turns("notes.txt", f"done {HOSTILE}"), *args)
        assert attack.code == 0, attack.stderr
        for stream in (attack.stdout, attack.stderr):
            assert "\x1b" not in stream and "\x9b" not in stream and "\u202e" not in stream


def test_real_binary_never_prints_the_api_key(victim: Victim) -> None:
    victim.write("config.txt", f"token = {SECRET_KEY}\n")
    victim.commit()
    for args in ((), ("--output-format", "json"), ("--output-format", "stream-json")):
        attack = victim.run(_read_turns("config.txt", f"the key is {SECRET_KEY}"), *args)
        assert attack.code == 0, attack.stderr
        assert SECRET_KEY not in attack.stdout and SECRET_KEY not in attack.stderr
        assert SECRET_KEY[:13] not in attack.stdout
        assert "[redacted]" in attack.stdout


def test_repl_renderer_redacts_the_key_like_the_printers() -> None:
    # The REPL renderer shares the printers' redaction (kcode.safety.secrets.redact over the values the
    # runtime registered), so a key a tool prints or the model repeats never reaches the screen.
    from kcode.safety.secrets import register_display_secrets

    key = "sk-repl-registered-0123456789"
    register_display_secrets([key])
    console, buffer = terminal()
    renderer = Renderer(console)
    leaky = f"the key is {key} and {SECRET_KEY}"
    for event in (
        TextDelta(text=f"{leaky}\n\n"),
        AssistantMessage(text=leaky),
        ToolCallStarted(call_id="1", name="shell", arguments={"command": f"echo {key}"}),
        ToolCallFinished(call_id="1", name="shell", ok=True, content=leaky, data={}),
        Error(message=leaky, kind="x"),
    ):
        renderer.handle(event)
    renderer.finish()
    out = buffer.getvalue()
    assert key not in out and "[redacted]" in out
