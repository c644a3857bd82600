"""Unchanged re-reads (kcode.agents.reread): a read_file whose text the conversation already holds is
answered with a note naming the earlier call; anything else goes to the model in full.

Real Agent loop, real tools, real git repo, the fake OpenAI server over HTTP: the assertions read
the request bodies the model would have received.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcode.agents.reread import MIN_SAVED_CHARS, shorten_unchanged_read
from kcode.backends.openai.api import OpenAIBackend
from kcode.messages import Message, ToolCall, ToolResult
from tests.agents.helpers import finished, main_agent, make_repo, run
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply

MAIN = "MAIN: read twice"
MODULE = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(12))


def read(path: str, **window: int) -> Reply:
    return Reply.tool_call("read_file", {"path": path, **window})


async def tool_messages(repo: Path, scripts: dict[str, list[Reply]]) -> list[dict[str, Any]]:
    """Run the main agent on `scripts`; the tool messages of the last main-agent request."""
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = main_agent(backend, repo)
        events = await run(agent, MAIN)
        await backend.aclose()
        assert finished(events).reason == "completed"
        bodies = [r.body for r in server.requests if r.body]
    main = [b for b in bodies if _first_user(b).startswith(MAIN)]
    return [m for m in main[-1]["messages"] if m["role"] == "tool"]


def _first_user(body: dict[str, Any]) -> str:
    return next(str(m["content"]) for m in body["messages"] if m["role"] == "user")


async def test_second_read_of_an_unchanged_file_is_a_note_naming_the_first(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", {"mod.py": MODULE})
    tools = await tool_messages(repo, {MAIN: [read("mod.py"), read("mod.py"), Reply.text("done")]})
    first, second = tools
    assert "def f11(x):" in first["content"]
    assert "def f11" not in second["content"]
    assert second["content"].startswith("[unchanged since your read_file call ")
    assert first["tool_call_id"] in second["content"]


async def test_a_changed_file_or_another_window_is_sent_in_full(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"mod.py": MODULE})
    edit = {"path": "mod.py", "edits": [{"old_string": "x + 11", "new_string": "x + 12"}]}
    tools = await tool_messages(
        repo,
        {
            MAIN: [
                read("mod.py"),
                Reply.tool_call("edit_file", edit),
                read("mod.py"),  # changed by the edit: in full
                read("mod.py", offset=1, limit=20),  # a window never shown before: in full
                read("mod.py", offset=1, limit=20),  # that window again: a note
                Reply.text("done"),
            ]
        },
    )
    first, _edit, after_edit, window, window_again = tools
    assert "return x + 12" in after_edit["content"] and "return x + 11" in first["content"]
    assert "def f4(x):" in window["content"] and "unchanged" not in window["content"]
    assert window["tool_call_id"] in window_again["content"]
    assert "def f4" not in window_again["content"]


async def test_a_file_changed_behind_the_agents_back_is_sent_in_full(tmp_path: Path) -> None:
    """A user, a hook or another process edits the file between the two reads."""
    repo = make_repo(tmp_path / "repo", {"mod.py": MODULE})

    class EditsBetweenReads(ByConversation):
        def __call__(self, body: dict[str, Any]) -> Reply:
            if sum(1 for m in body["messages"] if m["role"] == "tool") == 1:
                (repo / "mod.py").write_text(MODULE.replace("x + 3", "x - 3"))
            return super().__call__(body)

    with FakeOpenAIServer(
        EditsBetweenReads({MAIN: [read("mod.py"), read("mod.py"), Reply.text("done")]})
    ) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        events = await run(main_agent(backend, repo), MAIN)
        await backend.aclose()
        assert finished(events).reason == "completed"
        last = server.requests[-1].body
    assert last is not None
    second = [m for m in last["messages"] if m["role"] == "tool"][1]
    assert "return x - 3" in second["content"]


async def test_a_sub_agent_gets_the_file_though_its_parent_read_it(tmp_path: Path) -> None:
    """The parent's history is not the sub-agent's: its own first read is the whole file."""
    repo = make_repo(tmp_path / "repo", {"mod.py": MODULE})
    report = "RESULT: ok\nFINDINGS:\n- mod.py:1 f0\nNOTES: none"
    scripts = {
        MAIN: [
            read("mod.py"),
            Reply.tool_call(
                "spawn_agents", {"tasks": [{"role": "search", "prompt": "task S1: f0"}]}
            ),
            Reply.text("done"),
        ],
        "task S1": [read("mod.py"), Reply.text(report)],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        events = await run(main_agent(backend, repo), MAIN)
        await backend.aclose()
        assert finished(events).reason == "completed"
        sub = [r.body for r in server.requests if r.body and _first_user(r.body).startswith("task")]
    sub_tools = [m for m in sub[-1]["messages"] if m["role"] == "tool"]
    assert len(sub_tools) == 1 and "def f11(x):" in sub_tools[0]["content"]


# --- the rule itself, on histories no scripted run produces ------------------------------------
def _history(tool_name: str, call_id: str, text: str) -> list[Message]:
    call = ToolCall(call_id, tool_name, {"path": "mod.py"})
    return [
        Message.user("go"),
        Message.assistant("", (call,)),
        Message.tool(ToolResult(call_id, True, text)),
    ]


def test_only_read_file_results_count_as_earlier_reads() -> None:
    """A shell `cat` or an MCP tool that printed the same text promised nothing about the file."""
    text = "x" * (MIN_SAVED_CHARS + 1)
    call = ToolCall("c2", "read_file", {"path": "mod.py"})
    result = ToolResult("c2", True, text)
    assert shorten_unchanged_read(_history("shell", "c1", text), call, result) is result
    shortened = shorten_unchanged_read(_history("read_file", "c1", text), call, result)
    assert shortened is not None and "c1" in shortened.content


def test_another_file_with_the_same_text_is_sent_in_full() -> None:
    """A vendored copy reads like the original, but the model asked for another file."""
    text = "v" * (MIN_SAVED_CHARS + 1)
    history = _history("read_file", "c1", text)  # read mod.py
    copy = ToolCall("c2", "read_file", {"path": "vendor/mod.py"})
    result = ToolResult("c2", True, text)
    assert shorten_unchanged_read(history, copy, result) is result
    same = ToolCall("c3", "read_file", {"path": "./mod.py"})  # the same file, spelt otherwise
    shortened = shorten_unchanged_read(history, same, ToolResult("c3", True, text))
    assert shortened is not None and "c1" in shortened.content


def test_compacted_away_small_failed_or_image_results_are_kept() -> None:
    big = "y" * (MIN_SAVED_CHARS + 1)
    call = ToolCall("c2", "read_file", {"path": "mod.py"})
    compacted = [Message.user("go"), Message.assistant("summary of the earlier work")]
    kept = ToolResult("c2", True, big)
    assert shorten_unchanged_read(compacted, call, kept) is kept
    small = ToolResult("c2", True, "z" * 10)
    assert shorten_unchanged_read(_history("read_file", "c1", "z" * 10), call, small) is small
    failed = ToolResult("c2", False, big)
    assert shorten_unchanged_read(_history("read_file", "c1", big), call, failed) is failed
    assert shorten_unchanged_read(_history("read_file", "c1", big), call, None) is None
