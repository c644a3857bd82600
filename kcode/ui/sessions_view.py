"""Sessions on screen: replaying a resumed conversation, and the `kcode -r` picker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from kcode.messages import Message
from kcode.safety.terminal_text import visible
from kcode.ui.render import markdown, tool_label


def replay_history(console: Console, history: Sequence[Message]) -> None:
    """Show a resumed conversation: user lines, answers as markdown, tool calls as compact lines."""
    results = {m.tool_call_id: m for m in history if m.role == "tool"}
    for message in history:
        if message.role == "user":
            console.print(Text(f"› {visible(message.text)}", style="bold"))
        elif message.role == "assistant":
            if message.text.strip():
                console.print(markdown(message.text))
            for call in message.tool_calls:
                result = results.get(call.id)
                first = result.text.splitlines()[0][:80] if result and result.text else ""
                first = visible(first, one_line=True)
                console.print(Text(f"• {tool_label(call.name, call.arguments)} → {first}", "dim"))
    if len(history) > 1:
        console.rule("resumed", style="dim")


def pick_session(root: Path) -> str | None:
    """For `kcode -r` without an id: list this directory's sessions and let the user choose."""
    from prompt_toolkit import prompt

    from kcode.session import list_sessions

    console = Console(highlight=False)
    sessions = list_sessions(root)[:20]
    if not sessions:
        console.print(f"No saved sessions for {root}. Start one with `kcode`.")
        return None
    for number, info in enumerate(sessions, 1):
        line = Text()
        line.append(f"{number:>2}", style="bold")
        line.append(f" {visible(info.session_id, one_line=True)}  ")
        line.append(f"{info.messages} msgs", style="dim")
        line.append(f"  {visible(info.first_prompt or '(no prompt)', one_line=True)}")
        console.print(line)
    while True:
        try:
            answer = prompt("Resume which session? [1] ").strip() or "1"
        except (KeyboardInterrupt, EOFError):
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(sessions):
            return sessions[int(answer) - 1].session_id
        match = [s for s in sessions if s.session_id.startswith(answer)]
        if len(match) == 1:
            return match[0].session_id
        console.print(f"Type a number from 1 to {len(sessions)} (or a session id).")
