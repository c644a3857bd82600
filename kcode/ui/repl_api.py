"""What the REPL's helpers (slash commands, the extensions' UI, `!cmd`) may use of the REPL.

They are typed against this Protocol, not against kcode.ui.repl.Repl, so the REPL imports them and
they never import it back: no ui.repl ↔ ui.slash cycle, and every reach into the REPL is declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from rich.console import Console

    from kcode.config.loader import Config
    from kcode.messages import Message
    from kcode.runtime import Runtime
    from kcode.safety.approval import InteractiveApprover
    from kcode.ui.render import Renderer
    from kcode.ui.status import BusyStatus


class ReplApi(Protocol):
    config: Config
    root: Path
    console: Console
    renderer: Renderer
    approver: InteractiveApprover
    prompt: PromptSession[str]
    runtime: Runtime | None
    snapshot: Any  # kcode.ui.slash_changes.StartSnapshot, taken when the runtime was built
    should_exit: bool
    pending_context: str
    plan_previous: str  # the approval mode to go back to when plan mode ends

    def model_name(self) -> str: ...

    def begin_busy(self, label: str) -> BusyStatus: ...

    async def ensure_runtime(self) -> Runtime | None:
        """The runtime, built (or waited for) now; None after saying why it cannot be built."""

    async def built_runtime(self) -> Runtime | None:
        """The runtime if it exists or is being built; never starts building one."""

    async def switch_session(self, resume_id: str) -> Runtime | None:
        """Close the current runtime and build one on the saved session `resume_id`."""

    async def run_turn(self, message: Message) -> None: ...

    async def read_choice(self, message: str) -> str: ...
