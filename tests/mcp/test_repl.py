"""MCP in the REPL: `/mcp`, the approval prompt for an MCP tool, `/mcp__server__prompt` and
`@server:uri` resource mentions."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from kcode.backends.scripted import ScriptedBackend
from kcode.mcp.config import McpSetup, parse_server
from kcode.mcp.manager import McpManager
from kcode.mcp.tools import McpToolset
from kcode.messages import Message
from kcode.ui.repl import Repl
from tests.mcp.conftest import stdio_entry
from tests.ui.helpers import make_runtime, scripted_config, text_console
from tests.ui.test_repl import wait_for_text


def last_user(messages: Sequence[Message]) -> dict[str, Any]:
    said = [m.text for m in messages if m.role == "user"][-1]
    return {"text": "you said: " + said.replace("<", "(").replace(">", ")")}  # not markdown HTML


async def test_mcp_status_approval_prompts_and_resources(tmp_path: Path) -> None:
    console, out = text_console(width=140)
    config = scripted_config(tmp_path)
    backend = ScriptedBackend(
        [
            {"tool_calls": [{"name": "mcp__basic__echo", "arguments": {"text": "one"}}]},
            {"tool_calls": [{"name": "mcp__basic__echo", "arguments": {"text": "two"}}]},
            {"text": "echoed twice"},
            last_user,
            last_user,
        ]
    )
    server = parse_server("basic", stdio_entry("basic"), "test.json", "user", [])
    assert server is not None
    manager = McpManager(McpSetup([server]), tmp_path, tmp_path / "logs")
    manager.start()
    with create_pipe_input() as pipe:
        repl = Repl(config, tmp_path, console=console, input=pipe, output=DummyOutput())

        def build() -> Any:
            runtime = make_runtime(config, tmp_path, backend, repl.approver)
            runtime.agent.tools = McpToolset(runtime.agent.tools, manager)
            runtime.mcp = manager
            return runtime

        repl._runtime_factory = build
        task = asyncio.create_task(repl.run(None, []))
        await manager.wait_ready(120)
        pipe.send_text("/mcp\r")
        await wait_for_text(out, "✓ basic: connected (stdio")
        pipe.send_text("echo twice\r")
        await wait_for_text(out, "mcp__basic__echo wants to call mcp__basic__echo")
        assert '"text": "one"' in out.getvalue()
        pipe.send_text("a\r")  # always, for this session: the second call is not asked
        await wait_for_text(out, "echoed twice")
        assert out.getvalue().count("wants to call") == 1
        pipe.send_text("/mcp__basic__review the parser\r")
        await wait_for_text(out, "you said: Please review the parser carefully.")
        pipe.send_text("read @basic:note://hello now\r")
        await wait_for_text(out, "hello from the note resource")
        pipe.send_text("\x04")
        assert await asyncio.wait_for(task, 30) == 0
    assert manager.statuses()[0].state == "closed"  # the REPL's runtime closed the servers
