"""Repeated reads (kcode.agents.reread): a read_file that returns what the latest read of the same
file and window returned is answered with a note naming that call; anything else goes in full.

Real Agent loop, real tools, real git repo, the fake OpenAI server over HTTP: the assertions read
the request bodies the model would have received.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcode.agents.compaction import compact_history
from kcode.agents.reread import MIN_SAVED_CHARS, note_repeated_read, restore_summarised_reads
from kcode.backends.base import BackendOptions
from kcode.backends.openai.api import OpenAIBackend
from kcode.backends.scripted import ScriptedBackend
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
    assert second["content"].startswith("[same text as your earlier read_file of mod.py (call ")
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
    assert "def f4(x):" in window["content"] and "same text" not in window["content"]
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
TEXT = "v" * (MIN_SAVED_CHARS + 1)


def _read_call(call_id: str, path: str = "mod.py", **window: int) -> ToolCall:
    return ToolCall(call_id, "read_file", {"path": path, **window})


def _exchange(call: ToolCall, text: str) -> list[Message]:
    return [Message.assistant("", (call,)), Message.tool(ToolResult(call.id, True, text))]


def _again(history: list[Message], call: ToolCall, text: str = TEXT) -> Message:
    return note_repeated_read(history, call, Message.tool(ToolResult(call.id, True, text)))


def test_only_read_file_results_count_as_earlier_reads() -> None:
    """A shell `cat` or an MCP tool that printed the same text promised nothing about the file."""
    shell = ToolCall("c1", "shell", {"command": "cat mod.py"})
    history = [Message.user("go"), *_exchange(shell, TEXT)]
    assert _again(history, _read_call("c2")).text == TEXT
    history += _exchange(_read_call("c2"), TEXT)
    assert "call c2" in _again(history, _read_call("c3")).text


def test_a_file_that_reads_like_an_older_version_is_sent_in_full() -> None:
    """v1, then v2, then reverted to v1: the model last saw v2, so a note pointing at the v1
    read would make it take v2 for current; the file goes in full."""
    v2 = "w" * (MIN_SAVED_CHARS + 1)
    history = [
        Message.user("go"),
        *_exchange(_read_call("a"), TEXT),
        *_exchange(_read_call("b"), v2),
    ]
    assert _again(history, _read_call("c")).text == TEXT


def test_another_file_with_the_same_text_is_sent_in_full() -> None:
    """A vendored copy reads like the original, but the model asked for another file."""
    history = [Message.user("go"), *_exchange(_read_call("c1"), TEXT)]
    assert _again(history, _read_call("c2", "vendor/mod.py")).text == TEXT
    assert "call c1" in _again(history, _read_call("c3", "./mod.py")).text  # the same file


def test_reused_call_ids_never_pair_a_read_with_another_tools_result() -> None:
    """Some providers number calls per reply (`call_0` every time)."""
    history = [
        Message.user("go"),
        *_exchange(_read_call("call_0"), TEXT),
        *_exchange(ToolCall("call_0", "grep", {"pattern": "x"}), "mod.py:1:x"),
    ]
    assert "call call_0" in _again(history, _read_call("call_0")).text
    history += _exchange(_read_call("call_0"), "w" * (MIN_SAVED_CHARS + 1))
    assert _again(history, _read_call("call_0")).text == TEXT  # the latest read says otherwise


def test_small_or_image_results_are_kept() -> None:
    history = [Message.user("go"), *_exchange(_read_call("c1"), "z" * 10)]
    assert _again(history, _read_call("c2"), "z" * 10).text == "z" * 10


def test_a_note_of_a_note_names_the_result_that_holds_the_text() -> None:
    history = [Message.user("go"), *_exchange(_read_call("a"), TEXT)]
    history += [Message.assistant("", (_read_call("b"),)), _again(history, _read_call("b"))]
    assert "(call a)" in _again(history, _read_call("c")).text


async def test_compaction_gives_a_note_its_text_back_when_its_source_is_summarised() -> None:
    """Turn 1 reads the file, turn 2 reads it again (a note); compaction summarises turn 1 and
    keeps turn 2 verbatim: the kept note would point at nothing, so it holds the text again."""
    history = [Message.system("sys"), Message.user("turn 1"), *_exchange(_read_call("a"), TEXT)]
    history += [Message.assistant("done"), Message.user("turn 2")]
    history += [Message.assistant("", (_read_call("b"),)), _again(history, _read_call("b"))]
    assert history[-1].text != TEXT
    assert restore_summarised_reads(history) == history  # its source is still there
    result = await compact_history(
        history, ScriptedBackend([{"text": "summary"}]), BackendOptions()
    )
    assert result is not None
    kept = [m for m in result.history if m.role == "tool"]
    assert [m.text for m in kept] == [TEXT] and kept[0].tool_call_id == "b"
