"""Fixtures for the file-tool tests: a real workspace directory and helpers to call tools the way the
agent loop does (through run_tool, so argument validation and error results are exercised too)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kcode.messages import ToolCall, ToolResult
from kcode.safety.approval import ApprovalDecision, ApprovalRequest
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.registry import build_tools


class DenyAll:
    """An approver that says no, remembering what it was asked."""

    def __init__(self) -> None:
        self.requests: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(False, "denied by the test")


class RecordingApprover:
    def __init__(self) -> None:
        self.requests: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(True, "ok")


CallTool = Callable[..., Awaitable[ToolResult]]


async def call_tool(ctx: ToolContext, name: str, **arguments: Any) -> ToolResult:
    tool = build_tools([name])[name]
    return await run_tool(tool, ToolCall("call-1", name, arguments), ctx)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def approver() -> RecordingApprover:
    return RecordingApprover()


@pytest.fixture
def ctx(workspace: Path, approver: RecordingApprover) -> ToolContext:
    return ToolContext(root=workspace, approver=approver)


@pytest.fixture
def tool(ctx: ToolContext) -> CallTool:
    async def run(name: str, **arguments: Any) -> ToolResult:
        return await call_tool(ctx, name, **arguments)

    return run
