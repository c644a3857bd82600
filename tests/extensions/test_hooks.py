"""Hooks as real scripts (bash and Python): block, rewrite input, add context, time out, fail open."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kcode.agents.loop import Agent
from kcode.backends.base import BackendOptions
from kcode.backends.scripted import ScriptedBackend
from kcode.events import Error, Event, ToolCallFinished, TurnFinished
from kcode.extensions.files import Warnings
from kcode.extensions.hook_config import HookSpec, parse_claude_hooks, parse_kimi_hooks
from kcode.extensions.hooks import HookRunner, tool_names
from kcode.extensions.session import ExtensionRuntime
from kcode.messages import Message
from kcode.safety.approval import AllowAll, ApprovalRequest, NonInteractiveApprover
from kcode.tools.base import ToolContext
from kcode.tools.registry import build_tools
from tests.waiting import wait_until


def script(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


def spec(event: str, command: str, matcher: str = "", timeout: float = 10) -> HookSpec:
    return HookSpec(event, matcher, command, timeout, "test", "user")


def make_agent(
    tmp: Path, turns: list[dict], specs: list[HookSpec], approver: object = None
) -> Agent:
    ctx = ToolContext(root=tmp, approver=approver or AllowAll())  # type: ignore[arg-type]
    ctx.extensions = ExtensionRuntime(root=tmp, hooks=HookRunner(specs), interactive=False)
    tools = build_tools(["read_file", "write_file", "shell", "grep"])
    return Agent(
        backend=ScriptedBackend(turns),
        tools=tools,
        ctx=ctx,
        system_prompt="sys",
        options=BackendOptions(model="m"),
    )


def call(name: str, args: dict) -> dict:
    return {"tool_calls": [{"name": name, "arguments": args}]}


async def run(agent: Agent, prompt: str = "go") -> list[Event]:
    return [e async for e in agent.run_turn(Message.user(prompt))]


GUARD_SH = """#!/bin/bash
# A Claude-style guard: reads tool_input.command from stdin JSON, blocks rm.
input=$(cat)
cmd=$(printf '%s' "$input" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tool_input"].get("command",""))')
if [[ "$cmd" == *rm* ]]; then echo "no rm here: $cmd" >&2; exit 2; fi
exit 0
"""


async def test_bash_hook_blocks_a_shell_call_with_its_stderr_as_reason(tmp_path: Path) -> None:
    guard = script(tmp_path, "guard.sh", GUARD_SH)
    (tmp_path / "victim.txt").write_text("x")
    agent = make_agent(
        tmp_path,
        [call("shell", {"command": "rm victim.txt"}), {"text": "ok"}],
        [spec("PreToolUse", guard, "Bash")],
    )
    events = await run(agent)
    finished = [e for e in events if isinstance(e, ToolCallFinished)][0]
    assert not finished.ok
    assert "blocked by a PreToolUse hook: no rm here: rm victim.txt" in finished.content
    assert (tmp_path / "victim.txt").exists()
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "completed"


REWRITE_PY = """#!/usr/bin/env python3
import json, sys
data = json.load(sys.stdin)
inp = dict(data["tool_input"])
inp["content"] = inp["content"].upper()
print(json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse",
      "permissionDecision": "allow", "updatedInput": inp,
      "additionalContext": "note from the python hook"}}))
"""


async def test_python_hook_rewrites_input_and_adds_context(tmp_path: Path) -> None:
    hook = script(tmp_path, "rewrite.py", REWRITE_PY.replace("python3", sys.executable, 1))
    agent = make_agent(
        tmp_path,
        [call("write_file", {"path": "out.txt", "content": "hello"}), {"text": "done"}],
        [spec("PreToolUse", hook, "Write")],
    )
    events = await run(agent)
    assert (tmp_path / "out.txt").read_text() == "HELLO"
    finished = [e for e in events if isinstance(e, ToolCallFinished)][0]
    assert finished.ok and "[hook] note from the python hook" in finished.content
    tool_msg = [m for m in agent.history if m.role == "tool"][0]
    assert "note from the python hook" in tool_msg.text  # the model sees it


async def test_claude_file_path_is_shown_and_a_rewrite_of_it_moves_the_write(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "seen.json"
    hook = script(
        tmp_path,
        "move.py",
        f"#!{sys.executable}\nimport json,sys\nd=json.load(sys.stdin)\n"
        f"open({str(seen)!r},'w').write(json.dumps(d))\n"
        "i=dict(d['tool_input']); i['file_path']=i['file_path'].replace('a.txt','b.txt')\n"
        "print(json.dumps({'hookSpecificOutput':{'updatedInput':i}}))\n",
    )
    agent = make_agent(
        tmp_path,
        [call("write_file", {"path": "a.txt", "content": "x"}), {"text": "done"}],
        [spec("PreToolUse", hook, "Write|Edit")],
    )
    await run(agent)
    data = json.loads(seen.read_text())
    assert data["hook_event_name"] == "PreToolUse" and data["tool_name"] == "write_file"
    assert data["tool_input"]["file_path"] == str(tmp_path.resolve() / "a.txt")
    assert data["cwd"] == str(tmp_path.resolve()) and "session_id" in data
    assert (tmp_path / "b.txt").read_text() == "x" and not (tmp_path / "a.txt").exists()


async def test_timeout_kills_the_hook_and_its_children_and_the_call_proceeds(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child.pid"
    hook = script(
        tmp_path, "slow.sh", f"#!/bin/bash\nsleep 300 &\necho $! > {pid_file}\nsleep 300\n"
    )
    (tmp_path / "f.txt").write_text("content\n")
    agent = make_agent(
        tmp_path,
        [call("read_file", {"path": "f.txt"}), {"text": "done"}],
        [spec("PreToolUse", hook, "read_file", timeout=0.5)],
    )
    events = await run(agent)
    finished = [e for e in events if isinstance(e, ToolCallFinished)][0]
    assert finished.ok and "content" in finished.content  # fail-open: no decision
    notices = [e for e in events if isinstance(e, Error) and e.kind == "hook"]
    assert any("timed out after 0.5 s" in n.message for n in notices)
    child = int(pid_file.read_text())

    def gone() -> bool:  # the group was SIGKILLed; the zombie is reaped by init shortly
        try:
            return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
        except OSError:  # reaped (possibly between two checks)
            return True

    wait_until(gone, "the hook's background child to die after the timeout", 20)


async def test_other_exit_codes_are_reported_and_do_not_block(tmp_path: Path) -> None:
    hook = script(tmp_path, "fail.sh", "#!/bin/bash\necho oops >&2\nexit 1\n")
    (tmp_path / "f.txt").write_text("x\n")
    agent = make_agent(
        tmp_path,
        [call("read_file", {"path": "f.txt"}), {"text": "done"}],
        [spec("PreToolUse", hook)],
    )
    events = await run(agent)
    assert [e for e in events if isinstance(e, ToolCallFinished)][0].ok
    assert any(isinstance(e, Error) and "exited 1: oops" in e.message for e in events)


async def test_user_prompt_submit_context_and_block(tmp_path: Path) -> None:
    ctx_hook = script(tmp_path, "ctx.sh", "#!/bin/bash\necho 'branch is main'\n")
    agent = make_agent(tmp_path, [{"text": "hi"}], [spec("UserPromptSubmit", ctx_hook)])
    await run(agent, "hello")
    assert "branch is main" in agent.history[1].text and agent.history[1].text.startswith("hello")

    block = script(tmp_path, "block.sh", "#!/bin/bash\necho 'no secrets in prompts' >&2\nexit 2\n")
    agent = make_agent(tmp_path, [{"text": "never asked"}], [spec("UserPromptSubmit", block)])
    events = await run(agent, "my password is hunter2")
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "blocked"
    assert "no secrets in prompts" in events[-1].result
    assert all("hunter2" not in m.text for m in agent.history)  # the prompt is erased


async def test_stop_hook_forces_another_step_once(tmp_path: Path) -> None:
    hook = script(
        tmp_path,
        "stop.py",
        f"#!{sys.executable}\nimport json,sys\nd=json.load(sys.stdin)\n"
        "if not d['stop_hook_active']:\n"
        "    print(json.dumps({'decision':'block','reason':'run the tests first'}))\n",
    )
    agent = make_agent(tmp_path, [{"text": "done?"}, {"text": "done."}], [spec("Stop", hook)])
    events = await run(agent)
    assert isinstance(events[-1], TurnFinished) and events[-1].result == "done."
    assert any("run the tests first" in m.text for m in agent.history if m.role == "user")


async def test_continue_false_ends_the_turn(tmp_path: Path) -> None:
    hook = script(
        tmp_path, "halt.sh", '#!/bin/bash\necho \'{"continue": false, "stopReason": "quota"}\'\n'
    )
    (tmp_path / "f.txt").write_text("x\n")
    agent = make_agent(
        tmp_path,
        [call("read_file", {"path": "f.txt"}), {"text": "never"}],
        [spec("PostToolUse", hook)],
    )
    events = await run(agent)
    assert isinstance(events[-1], TurnFinished)
    assert (events[-1].reason, events[-1].result) == ("stopped_by_hook", "quota")


async def test_ask_decision_goes_through_the_approval_policy(tmp_path: Path) -> None:
    hook = script(
        tmp_path,
        "ask.sh",
        """#!/bin/bash\necho '{"hookSpecificOutput": {"permissionDecision": "ask", """
        """"permissionDecisionReason": "sure?"}}'\n""",
    )
    (tmp_path / "f.txt").write_text("x\n")
    agent = make_agent(
        tmp_path,
        [call("read_file", {"path": "f.txt"}), {"text": "never"}],
        [spec("PreToolUse", hook)],
        approver=NonInteractiveApprover("auto-edit"),
    )
    events = await run(agent)
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "approval_required"


def test_matchers_accept_claude_names_regexes_and_mcp_names() -> None:
    assert spec("PreToolUse", "x", "Bash").matches(tool_names("shell"))
    assert spec("PreToolUse", "x", "Edit|Write").matches(tool_names("apply_patch"))
    assert not spec("PreToolUse", "x", "Edit").matches(tool_names("shell"))
    assert spec("PreToolUse", "x", "mcp__github__.*").matches(tool_names("mcp__github__issue"))
    assert not spec("PreToolUse", "x", "mcp__github__.*").matches(tool_names("mcp__gitlab__x"))
    assert spec("PreToolUse", "x", "*").matches(tool_names("grep"))
    assert spec("PreToolUse", "x", "").matches(tool_names("grep"))
    assert spec("PreToolUse", "x", "Read, Grep").matches(tool_names("grep"))


def test_malformed_hook_config_warns_with_file_and_field() -> None:
    warnings = Warnings()
    data = {
        "hooks": {
            "PreToolUse": [
                {"matcher": "Bash(", "hooks": [{"type": "command", "command": "a"}]},
                {"matcher": "Bash", "hooks": [{"type": "prompt", "prompt": "x"}]},
                {"matcher": "Bash", "hooks": [{"command": "ok.sh", "timeout": -1}]},
            ],
            "BeforeLunch": [],
            "Stop": "nope",
        }
    }
    specs = parse_claude_hooks(data, "/r/.claude/settings.json", "project", warnings)
    assert [s.command for s in specs] == ["ok.sh"]
    text = "\n".join(warnings.items)
    assert "/r/.claude/settings.json: field `hooks.PreToolUse[0].matcher`" in text
    assert "hooks.PreToolUse[1].hooks[0].type" in text
    assert "hooks.PreToolUse[2].hooks[0].timeout" in text
    assert "field `hooks.BeforeLunch`: unknown hook event" in text
    assert "field `hooks.Stop`" in text
    kimi = parse_kimi_hooks(
        [{"event": "PreToolUse", "matcher": "Bash", "command": "g.sh", "timeout": 5}, {"x": 1}],
        "config.toml",
        warnings,
    )
    assert [(k.command, k.timeout_s, k.regex_only) for k in kimi] == [("g.sh", 5.0, True)]
    assert any("hooks[1]" in w for w in warnings.items)


async def test_lifecycle_events_reach_their_hooks(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    recorder = script(
        tmp_path,
        "record.py",
        f"#!{sys.executable}\nimport json,sys\nd=json.load(sys.stdin)\n"
        f"open({str(log)!r},'a').write(json.dumps(d)+'\\n')\n"
        "if d['hook_event_name']=='SessionStart': print('started fresh')\n"
        "if d['hook_event_name']=='PreCompact':\n"
        "    sys.stderr.write('keep the full log'); sys.exit(2)\n",
    )
    events = ("SessionStart", "SessionEnd", "PreCompact", "Notification", "SubagentStart",
              "SubagentStop", "Stop")  # fmt: skip
    specs = [spec(e, recorder) for e in events]
    agent = make_agent(tmp_path, [{"text": "main answer"}], specs)
    await run(agent, "hello")
    assert "started fresh" in agent.history[1].text
    ext = agent.ctx.extensions
    assert await ext.pre_compact("manual", agent.ctx) == "keep the full log"
    await ext.notify("kcode needs your permission", "permission_prompt", agent.ctx)
    await ext.session_end("exit", agent.ctx)
    sub_ctx = ToolContext(root=tmp_path, agent_id="search-1")
    sub_ctx.extensions = ext
    sub = Agent(
        backend=ScriptedBackend([{"text": "sub answer"}]),
        tools=build_tools(["read_file"]),
        ctx=sub_ctx,
        system_prompt="sub",
        options=BackendOptions(model="m"),
        agent_id="search-1",
        role="search",
    )
    await run(sub, "find x")
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    names = [d["hook_event_name"] for d in seen]
    assert names == ["SessionStart", "Stop", "PreCompact", "Notification", "SessionEnd",
                     "SubagentStart", "SubagentStop"]  # fmt: skip
    by = {d["hook_event_name"]: d for d in seen}
    assert by["SessionStart"]["source"] == "startup"
    assert by["Stop"]["last_assistant_message"] == "main answer"
    assert by["PreCompact"]["trigger"] == "manual"
    assert by["Notification"]["notification_type"] == "permission_prompt"
    assert (
        by["SubagentStop"]["agent_type"] == "search"
        and by["SubagentStop"]["agent_id"] == "search-1"
    )
    assert by["SubagentStop"]["stop_hook_active"] is False


async def test_a_hook_that_floods_stdout_is_capped_and_killed(tmp_path: Path) -> None:
    runner = HookRunner([spec("Stop", "yes", timeout=1)])
    got = await runner.fire("Stop", {}, cwd=tmp_path)
    assert any("timed out after 1 s" in n for n in got.notices)
    quick = HookRunner([spec("Stop", "head -c 3000000 /dev/zero | tr '\\0' x; exit 2")])
    got = await quick.fire("Stop", {}, cwd=tmp_path)
    assert got.blocked  # exit 2 after 3 MB of output: the reason is stderr (empty) → a default


async def test_a_refused_approval_is_one_notification_even_when_it_travels_up(
    tmp_path: Path,
) -> None:
    """-p: a shell call the policy refuses ends the turn and is a permission_prompt Notification;
    the same refusal re-raised by an outer tool call (a sub-agent's, via spawn_agents) is not
    announced twice."""
    from kcode.extensions.notify import notify_refused
    from kcode.safety.approval import ApprovalRequired

    log = tmp_path / "n.jsonl"
    recorder = script(tmp_path, "n.sh", f"#!/bin/bash\ncat >> {log}\necho >> {log}\n")
    agent = make_agent(
        tmp_path,
        [call("shell", {"command": "echo hi"}), {"text": "unreached"}],
        [spec("Notification", recorder, matcher="permission_prompt")],
        approver=NonInteractiveApprover("ask"),
    )
    events = await run(agent)
    finished = [e for e in events if isinstance(e, TurnFinished)]
    assert finished[-1].reason == "approval_required"
    seen = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert len(seen) == 1 and seen[0]["notification_type"] == "permission_prompt"
    assert seen[0]["message"].startswith("kcode needs your permission to use shell: echo hi")
    err = ApprovalRequired(ApprovalRequest("shell", "shell", "echo again"), "--approval auto")
    ext = agent.ctx.extensions
    await notify_refused(ext, err, agent.ctx)
    await notify_refused(ext, err, agent.ctx)  # the same refusal, seen again further up
    assert len([line for line in log.read_text().splitlines() if line.strip()]) == 2


async def test_json_cut_at_the_output_cap_is_not_called_invalid(tmp_path: Path) -> None:
    """10 MB of `additionalContext` is cut at 1 MiB, so it never parses: say so, rather than
    "printed invalid JSON", which sends the user looking for a syntax error."""
    big = 'printf \'{"additionalContext": "\'; head -c 3000000 /dev/zero | tr "\\0" x; echo \'"}\''
    got = await HookRunner([spec("Stop", big)]).fire("Stop", {}, cwd=tmp_path)
    assert any("more than 1 MiB" in n and "cut" in n for n in got.notices), got.notices
    bad = await HookRunner([spec("Stop", "echo '{not json'")]).fire("Stop", {}, cwd=tmp_path)
    assert any("invalid JSON" in n for n in bad.notices), bad.notices
