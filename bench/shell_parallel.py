"""Read-only shell calls in parallel: 8 calls of `sleep 1; grep ...` in one model reply.

Setup: the fake OpenAI server (tests/fake_openai.py, in this process: it only serves two small
replies) scripts one reply with 8 `shell` calls, each `sleep 1; grep -c ... FILE`, then an answer.
Everything else is real: Agent loop, OpenAIBackend over HTTP, the shell tool, bash, and the sandbox
(bubblewrap or Landlock) when one works here, else none (said in the output).

Figures, each the best of --repeat runs:
  one call    wall time of the tool phase (first call started -> last call finished) for a reply
              with a single such call: the 1 s sleep plus process and sandbox start-up
  8 calls     the same for the reply with 8 calls (target <= 1.5 x 1 s)
  serial      the 8 calls with read-only detection switched off (how every shell call ran before),
              for reference; --no-serial skips it (8 s)
The last line is the 8-call wall time as a ratio of 1 s.

    .venv/bin/python bench/shell_parallel.py
    .venv/bin/python bench/shell_parallel.py --repeat 1 --no-serial
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kcode.agents.loop import Agent
from kcode.backends.base import BackendOptions
from kcode.backends.openai.api import OpenAIBackend
from kcode.events import ToolCallFinished, ToolCallStarted
from kcode.messages import Message
from kcode.safety.approval import AllowAll
from kcode.tools.base import ToolContext
from kcode.tools.registry import build_tools
from kcode.tools.shell import ShellTool
from tests.fake_openai import FakeOpenAIServer, Reply

CALLS = 8
COMMAND = "sleep 1; grep -c needle haystack-{i}.txt"


def sandbox_mode() -> tuple[str, str]:
    try:
        from kcode.safety import sandbox

        backend, detail = sandbox.active_backend()
    except Exception as err:  # no sandbox module or no way to start one
        return "off", f"no sandbox ({err})"
    if backend is None:
        return "off", f"no sandbox ({detail})"
    return "workspace-write", f"sandbox workspace-write via {backend}"


async def tool_phase(workdir: Path, calls: int, mode: str) -> float:
    commands = [COMMAND.format(i=i) for i in range(calls)]
    reply = Reply.multi_call(*[("shell", {"command": c}) for c in commands])
    with FakeOpenAIServer([reply, Reply.text("done")]) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = Agent(
            backend=backend,
            tools=build_tools(["shell"]),
            ctx=ToolContext(root=workdir, approver=AllowAll(), sandbox=mode),
            system_prompt="bench",
            options=BackendOptions(model="fake-model"),
        )
        started: list[float] = []
        ended: list[float] = []
        loop = asyncio.get_running_loop()
        async for event in agent.run_turn(Message.user("grep them all")):
            if isinstance(event, ToolCallStarted):
                started.append(loop.time())
            elif isinstance(event, ToolCallFinished):
                ended.append(loop.time())
                if not event.ok or "[exit code 0]" not in event.content:
                    raise SystemExit(f"a call failed: {event.content}")
        await backend.aclose()
    assert len(ended) == calls
    return max(ended) - min(started)


async def best(workdir: Path, calls: int, mode: str, repeat: int) -> float:
    return min([await tool_phase(workdir, calls, mode) for _ in range(repeat)])


async def main(args: Any) -> None:
    mode, described = sandbox_mode()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for i in range(CALLS):
            (workdir / f"haystack-{i}.txt").write_text("hay\nneedle\n" * 1000)
        print(f"{CALLS} x `{COMMAND.format(i='N')}` in one reply; {described}")
        one = await best(workdir, 1, mode, args.repeat)
        print(f"one call   : {one:6.2f} s")
        many = await best(workdir, CALLS, mode, args.repeat)
        print(f"{CALLS} calls    : {many:6.2f} s  ({many / one:.2f} x one call)")
        if not args.no_serial:
            original = ShellTool.call_reads_only
            ShellTool.call_reads_only = lambda self, a: False  # type: ignore[method-assign]
            try:
                serial = await tool_phase(workdir, CALLS, mode)
            finally:
                ShellTool.call_reads_only = original  # type: ignore[method-assign]
            print(f"serial     : {serial:6.2f} s  (read-only detection off, as before)")
    print(
        f"shell_parallel: {CALLS} read-only 1 s calls in one reply take {many:.2f} s = "
        f"{many / 1.0:.2f}x of 1 s (target <= 1.5x; one call alone {one:.2f} s; {described})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-serial", action="store_true")
    asyncio.run(main(parser.parse_args()))
