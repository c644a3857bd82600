"""The shell tool: one `bash -c` command in the workspace, after approval (SPEC §5)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from kcode.messages import ToolResult
from kcode.safety.approval import ApprovalRequest
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError
from kcode.tools.process import ProcessResult, run_process, wrap_command


class ShellArgs(ToolArgs):
    command: str = Field(description="bash command, run in the workspace root")
    timeout_s: float | None = Field(default=None, gt=0, le=3600, description="timeout in seconds")


def describe_process_result(result: ProcessResult, timeout_s: float) -> str:
    output = result.output.rstrip("\n")
    if result.timed_out:
        status = (
            f"[timed out after {timeout_s:g}s; the command and all its child processes were "
            "killed. Run it with a larger timeout_s or make it finish sooner.]"
        )
    else:
        status = f"[exit code {result.exit_code}]"
    return f"{output}\n{status}" if output else f"(no output)\n{status}"


class ShellTool(Tool[ShellArgs]):
    name = "shell"
    description = (
        "Run a bash command in the workspace root and return its combined stdout/stderr and exit "
        "code. Long output keeps head and tail. Non-interactive: stdin is empty. Prefer grep/glob/"
        "read_file for searching and reading."
    )
    args_model = ShellArgs
    exclusive: ClassVar[bool] = True

    def call_reads_only(self, args: ShellArgs) -> bool:
        """A read-only command (kcode.safety.shell_readonly) may run beside other reads (scheduling)."""
        from kcode.safety.shell_readonly import is_read_only_command

        return is_read_only_command(args.command)

    async def run(self, args: ShellArgs, ctx: ToolContext) -> ToolResult:
        command = args.command.strip()
        if not command:
            raise ToolError("command is empty; pass the bash command to run")
        await ctx.approve(ApprovalRequest(action="shell", tool="shell", summary=command))
        timeout_s = args.timeout_s or ctx.limits.shell_timeout_s
        argv = wrap_command(["bash", "-c", command], ctx)
        # Leave room for the status line so the final cap in run_tool does not cut again.
        budget = max(ctx.limits.max_output_chars - 500, 1_000)
        result = await run_process(argv, ctx.root, timeout_s, budget)
        data = {
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "output_bytes": result.output_bytes,
            "truncated": result.truncated,
        }
        return ToolResult(
            call_id="",
            ok=not result.timed_out,
            content=describe_process_result(result, timeout_s),
            data=data,
        )
