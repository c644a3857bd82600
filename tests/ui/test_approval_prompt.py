from __future__ import annotations

import os
from pathlib import Path

from kcode.safety.approval import ApprovalRequest, InteractiveApprover
from kcode.ui.approval_prompt import ApprovalAsker, ProjectRules, project_rules_path
from tests.ui.helpers import text_console


def scripted_answers(*answers: str):  # type: ignore[no-untyped-def]
    queue = list(answers)

    async def read(prompt: str) -> str:
        return queue.pop(0)

    return read


async def test_always_for_this_project_is_saved_outside_the_repo(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    console, buffer = text_console()
    asker = ApprovalAsker(console, ProjectRules(root), scripted_answers("maybe", "p"))
    approver = InteractiveApprover("ask", asker)
    request = ApprovalRequest("shell", "shell", "pytest -q")
    assert (await approver.decide(request)).allowed
    assert "Please answer one of" in buffer.getvalue()
    path = project_rules_path(root)
    assert path.is_relative_to(Path(os.environ["XDG_DATA_HOME"]))
    assert not (root / ".kcode").exists()
    # A new REPL for the same project allows it without asking; other commands still ask.
    later = ApprovalAsker(console, ProjectRules(root), scripted_answers("n"))
    assert (await InteractiveApprover("ask", later).decide(request)).allowed
    other = await InteractiveApprover("ask", later).decide(
        ApprovalRequest("shell", "shell", "rm x")
    )
    assert not other.allowed


async def test_no_and_tell_the_model_why(tmp_path: Path) -> None:
    console, _ = text_console()
    asker = ApprovalAsker(console, ProjectRules(tmp_path), scripted_answers("t", "use the venv"))
    decision = await asker(ApprovalRequest("shell", "shell", "pip install x"))
    assert not decision.allowed and decision.reason == "use the venv"
