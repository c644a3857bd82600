from __future__ import annotations

from kcode.events import (
    AgentFinished,
    AgentSpawned,
    ApprovalRequested,
    AssistantMessage,
    ReasoningDelta,
    StepStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
    Usage,
)
from kcode.safety.approval import ApprovalRequest
from kcode.ui.agents_view import AgentsView
from kcode.ui.approval_prompt import approval_view
from kcode.ui.render import Renderer, commit_point
from tests.ui.helpers import text_console

DIFF = "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def main():\n-    return 1\n+    return 2\n"


def render(*events: object) -> str:
    console, buffer = text_console()
    renderer = Renderer(console)
    for event in events:
        renderer.handle(event)  # type: ignore[arg-type]
    renderer.finish()
    return buffer.getvalue()


def test_grep_call_is_one_line_with_its_outcome() -> None:
    out = render(
        ToolCallStarted(call_id="c1", name="grep", arguments={"pattern": "def main"}),
        ToolCallFinished(
            call_id="c1", name="grep", ok=True,
            content="src/a.py:3:def main\nsrc/b.py:9:def main\ntests/t.py:1:def main",
        ),
    )  # fmt: skip
    assert out.strip() == '✓ grep "def main" → 3 files'


def test_failed_call_shows_the_error_first_line() -> None:
    out = render(
        ToolCallStarted(call_id="c1", name="read_file", arguments={"path": "nope.py"}),
        ToolCallFinished(
            call_id="c1", name="read_file", ok=False, content="nope.py: no such file\nx"
        ),
    )
    assert out.strip() == "✗ read_file nope.py → nope.py: no such file"


def test_edit_shows_the_diff_after_the_call() -> None:
    out = render(
        ToolCallStarted(call_id="c1", name="edit_file", arguments={"path": "app.py", "edits": []}),
        ApprovalRequested(
            call_id="c1", action="edit", tool="edit_file", summary="edit app.py", detail=DIFF
        ),
        ToolCallFinished(call_id="c1", name="edit_file", ok=True, content="Edited app.py (+1 -1)"),
    )
    lines = out.splitlines()
    assert lines[0] == "✓ edit_file app.py → Edited app.py (+1 -1)"
    assert "-    return 1" in lines and "+    return 2" in lines


def test_run_tests_shows_counts_and_todo_list_is_drawn() -> None:
    items = [{"text": "find bug", "status": "done"}, {"text": "fix it", "status": "in_progress"}]
    out = render(
        ToolCallStarted(call_id="t", name="run_tests", arguments={}),
        ToolCallFinished(call_id="t", name="run_tests", ok=True, content="log",
                         data={"passed": 12, "failed": 1, "errors": 0}),
        ToolCallStarted(call_id="d", name="todo_write", arguments={"items": items}),
        ToolCallFinished(call_id="d", name="todo_write", ok=True, content="2 items"),
    )  # fmt: skip
    assert "✓ run_tests → 12 passed, 1 failed" in out
    assert "  ✓ find bug" in out and "  ▶ fix it" in out


def test_reasoning_is_folded_to_one_line_and_answer_rendered_as_markdown() -> None:
    out = render(
        ReasoningDelta(text="Let me think\nabout the "),
        ReasoningDelta(text="problem."),
        TextDelta(text="# Done\n\nAll **good**.\n"),
        AssistantMessage(text="# Done\n\nAll **good**.\n"),
        TurnFinished(reason="completed"),
    )
    lines = [line for line in out.splitlines() if line.strip()]
    assert (
        lines[0].startswith("✻ thought for")
        and "(6 words): Let me think about the problem." in lines[0]
    )
    assert "Done" in lines[1] and "All good." in out and "**" not in out


def test_streamed_markdown_commits_only_complete_blocks() -> None:
    assert commit_point("para one\n\npara tw") == len("para one\n\n")
    assert commit_point("```py\nx = 1\n\ny = 2\n") == 0  # blank line inside an open fence
    assert commit_point("```py\nx = 1\n```\nmore") == len("```py\nx = 1\n```\n")


def test_sub_agent_table_and_collapsed_summaries() -> None:
    view = AgentsView()
    view.update(AgentSpawned(agent_id="a1", role="search", prompt="find x"))
    view.update(AgentSpawned(agent_id="a2", role="edit", prompt="fix y"))
    view.update(StepStarted(agent="a1", step=2))
    view.update(ToolCallStarted(agent="a1", call_id="c", name="grep", arguments={}))
    view.update(Usage(agent="a2", prompt_tokens=1000, completion_tokens=234))
    console, buffer = text_console()
    console.print(view.table(now=view.rows["a1"].started + 1.5))
    table = buffer.getvalue()
    assert table.split("\n")[0].split() == ["agent", "role", "step", "tool", "elapsed", "tokens"]
    assert "a1" in table and "search" in table and "grep" in table and "1,234" in table
    view.update(AgentFinished(agent_id="a1", role="search", ok=True, report="found at a.py:3",
                              steps=2, duration_s=1.5, prompt_tokens=10, completion_tokens=5))  # fmt: skip
    view.update(AgentFinished(agent_id="a2", role="edit", ok=False, report="", error="boom",
                              steps=1, duration_s=2.0))  # fmt: skip
    assert not view.active
    lines = [line.plain for line in view.summaries()]
    assert lines[0] == "  ✓ a1 search · 2 steps · 1.5s · 15 tok · found at a.py:3"
    assert lines[1] == "  ✗ a2 edit · 1 steps · 2.0s · 1,234 tok · boom"


def test_approval_prompt_shows_exact_command_and_diff() -> None:
    console, buffer = text_console()
    console.print(approval_view(ApprovalRequest("shell", "shell", "rm -rf build && make")))
    console.print(approval_view(ApprovalRequest("edit", "edit_file", "edit app.py", DIFF)))
    out = buffer.getvalue()
    assert "$ rm -rf build && make" in out
    assert "shell wants to run" in out and "edit_file wants to edit app.py" in out
    assert "+    return 2" in out and "[p] always (this project)" in out


def test_swarm_summaries_are_cut_at_a_word() -> None:
    from kcode.ui.agents_view import word_cut

    text = "Found the parser in src/parse.py and the tokenizer in src/lex.py; both need the fix"
    cut = word_cut(text, 40)
    assert cut.endswith("…") and len(cut) <= 40
    assert text.startswith(cut[:-1]) and text[len(cut) - 1] == " "
    assert word_cut("short", 40) == "short"
