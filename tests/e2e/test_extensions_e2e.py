"""Extensions end to end: the real `kcode` binary, the fake OpenAI server, real git repos, and hooks
as real bash and Python scripts (issue #15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.conftest import make_repo, run_kcode
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply

GUARD = """#!/bin/bash
# A Claude Code guard hook, unchanged: block any Bash command that contains rm.
cmd=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["tool_input"].get("command",""))')
case "$cmd" in *rm*) echo "guard: rm is not allowed ($cmd)" >&2; exit 2;; esac
"""
CONTEXT_PY = """#!{python}
import json, os, sys
data = json.load(sys.stdin)
with open(os.environ["MARKER_DIR"] + "/post-read", "a") as f:
    f.write(json.dumps(data) + "\\n")
print(json.dumps({{"hookSpecificOutput": {{"hookEventName": "PostToolUse",
      "additionalContext": "context from the PostToolUse hook"}}}}))
"""
PROMPT_SH = """#!/bin/bash
touch "$MARKER_DIR/prompt-hook-ran"
echo "the deploy freeze is on"
"""


def hook_repo(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    settings = {
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [
                {"type": "command", "command": "$CLAUDE_PROJECT_DIR/.claude/hooks/guard.sh"}]}],
            "PostToolUse": [{"matcher": "Read", "hooks": [
                {"type": "command", "command": ".claude/hooks/context.py", "timeout": 20}]}],
            "UserPromptSubmit": [{"hooks": [
                {"type": "command", "command": "bash .claude/hooks/prompt.sh"}]}],
        }
    }  # fmt: skip
    files = {
        ".claude/settings.json": json.dumps(settings),
        ".claude/hooks/guard.sh": GUARD,
        ".claude/hooks/context.py": CONTEXT_PY.format(python=sys.executable),
        ".claude/hooks/prompt.sh": PROMPT_SH,
        "victim.txt": "keep me\n",
        "notes.txt": "some notes\n",
        **(extra or {}),
    }
    repo = make_repo(tmp_path / "repo", files)
    for name in ("guard.sh", "context.py", "prompt.sh"):
        (repo / ".claude/hooks" / name).chmod(0o755)
    return repo


def env_with(kcode_env: dict[str, str], srv: FakeOpenAIServer, markers: Path) -> dict[str, str]:
    markers.mkdir(exist_ok=True)
    return {**kcode_env, "KCODE_BASE_URL": srv.base_url, "MARKER_DIR": str(markers)}


def tool_messages(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def user_text(body: dict[str, Any]) -> str:
    for m in body["messages"]:
        if m["role"] == "user":
            c = m["content"]
            return c if isinstance(c, str) else "".join(p.get("text", "") for p in c)
    return ""


def test_untrusted_project_hooks_never_run(tmp_path: Path, kcode_env: dict[str, str]) -> None:
    repo = hook_repo(tmp_path)
    script = [Reply.tool_call("read_file", {"path": "notes.txt"}), Reply.text("read it")]
    with FakeOpenAIServer(script) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        run = run_kcode(["-p", "read notes"], env, repo)
        requests = srv.requests
    assert run.code == 0, run.stderr
    assert list((tmp_path / "markers").iterdir()) == []  # no hook ran: no marker file
    assert "not using .claude/settings.json: this repository is not trusted" in run.stderr
    assert "context from the PostToolUse hook" not in json.dumps(requests[-1].body)
    assert "deploy freeze" not in user_text(requests[0].body)


def test_trusted_hooks_block_add_context_in_p_mode(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = hook_repo(tmp_path)
    script = [
        Reply.tool_call("shell", {"command": "rm victim.txt"}),
        Reply.tool_call("read_file", {"path": "notes.txt"}),
        Reply.text("done"),
    ]
    with FakeOpenAIServer(script) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        args = ["-p", "tidy up", "--trust-project", "--approval", "auto", "--sandbox", "off"]
        run = run_kcode(args, env, repo)
        requests = srv.requests
    assert run.code == 0, run.stderr
    assert (repo / "victim.txt").read_text() == "keep me\n"  # blocked before it ran
    tools = tool_messages(requests[2].body)
    assert "blocked by a PreToolUse hook: guard: rm is not allowed (rm victim.txt)" in tools[0]
    assert "some notes" in tools[1] and "context from the PostToolUse hook" in tools[1]
    assert "tidy up" in user_text(requests[0].body)
    assert "the deploy freeze is on" in user_text(requests[0].body)
    assert (tmp_path / "markers/prompt-hook-ran").exists()
    seen = json.loads((tmp_path / "markers/post-read").read_text().splitlines()[0])
    assert seen["tool_name"] == "read_file" and seen["hook_event_name"] == "PostToolUse"
    assert seen["tool_response"]["ok"] is True and seen["permission_mode"] == "auto"


def test_hooks_run_in_a_sub_agent_in_its_worktree(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    record = tmp_path / "markers" / "write-hook.jsonl"
    settings = {
        "hooks": {
            "PreToolUse": [{"matcher": "Write", "hooks": [{"type": "command", "command":
                f"{{ pwd; cat; echo; }} >> {record}"}]}],
            "SubagentStart": [{"matcher": "edit", "hooks": [{"type": "command",
                "command": "echo 'sub-agent context: use tabs'"}]}],
            "PreToolUse_unused": [],
        }
    }  # fmt: skip
    repo = make_repo(tmp_path / "repo", {".kcode/hooks.json": json.dumps(settings), "a.txt": "a\n"})
    scripts = ByConversation(
        {
            "EDIT:": [Reply.tool_call("write_file", {"path": "new.txt", "content": "from sub\n"}),
                      Reply.text("wrote new.txt")],
            "*": [Reply.tool_call("spawn_agents",
                                  {"tasks": [{"role": "edit", "prompt": "EDIT: write new.txt"}]}),
                  Reply.text("all done")],
        }
    )  # fmt: skip
    with FakeOpenAIServer(scripts) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        run = run_kcode(["-p", "delegate", "--trust-project"], env, repo)
        requests = srv.requests
    assert run.code == 0, run.stderr
    assert "unknown hook event" in run.stderr and "PreToolUse_unused" in run.stderr
    assert (repo / "new.txt").read_text() == "from sub\n"  # merged back from the worktree
    lines = record.read_text().splitlines()
    cwd, payload = lines[0], json.loads(lines[1])
    assert cwd != str(repo) and payload["cwd"] == cwd  # the hook ran in the agent's worktree
    assert payload["agent_id"] == "edit-1" and payload["agent_type"] == "edit"
    sub_first = [r for r in requests if user_text(r.body).startswith("EDIT:")][0]
    assert "sub-agent context: use tabs" in user_text(sub_first.body)


def test_a_hook_that_hangs_is_killed_and_the_run_goes_on(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    hooks = {"hooks": {"PreToolUse": [{"matcher": "Read", "hooks": [
        {"type": "command", "command": "sleep 120", "timeout": 1}]}]}}  # fmt: skip
    repo = make_repo(tmp_path / "repo", {"notes.txt": "n\n"})
    (tmp_path / "xdg-config/kcode").mkdir(parents=True)
    (tmp_path / "xdg-config/kcode/hooks.json").write_text(json.dumps(hooks))  # user-level
    script = [Reply.tool_call("read_file", {"path": "notes.txt"}), Reply.text("ok")]
    with FakeOpenAIServer(script) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        run = run_kcode(["-p", "read", "--output-format", "stream-json"], env, repo, timeout=60)
    assert run.code == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    notices = [x for x in lines if x["type"] == "error" and x.get("kind") == "hook"]
    assert notices and "timed out after 1 s and was killed" in notices[0]["message"]
    finished = [x for x in lines if x["type"] == "tool_call_finished"]
    assert finished[0]["ok"] is True


def test_plan_mode_in_p_runs_only_read_tools_and_ends_with_a_plan(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": "def add(a, b):\n    return a - b\n"})
    plan = "1. In calc.py:2 change `a - b` to `a + b`.\n2. Run the tests."
    script = [
        Reply.tool_call("read_file", {"path": "calc.py"}),
        Reply.tool_call(
            "edit_file",
            {"path": "calc.py", "edits": [{"old_string": "a - b", "new_string": "a + b"}]},
        ),
        Reply.text(plan),
    ]
    with FakeOpenAIServer(script) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        run = run_kcode(
            ["-p", "fix add", "--approval", "plan", "--output-format", "json"], env, repo
        )
        requests = srv.requests
    assert run.code == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["result"] == plan and out["files_changed"] == []
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"
    assert "[kcode plan mode]" in user_text(requests[0].body)
    tools = tool_messages(requests[2].body)
    assert "return a - b" in tools[0] and "plan mode: `edit_file` does not run" in tools[1]


SKILL_MD = """---
name: greet
description: Greets people politely. Use when asked to greet.
allowed-tools: Read
---
Say hello to $ARGUMENTS, politely.
"""
COMMAND_MD = """---
description: Review one file
argument-hint: FILE
---
Review $1 carefully. Today: !`echo dynamic-output`
"""
AGENT_MD = """---
name: reviewer
description: Reviews code for bugs.
tools: Read, Grep, WebFetch
---
You are the reviewer agent. Report bugs with file:line.
"""


def test_skills_commands_and_agents_from_peer_files(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".agents/skills/greet/SKILL.md": SKILL_MD,
            ".claude/commands/review.md": COMMAND_MD,
            ".claude/agents/reviewer.md": AGENT_MD,
            "calc.py": "x = 1\n",
        },
    )
    scripts = ByConversation(
        {
            "REVIEW:": [Reply.text("calc.py:1 looks fine")],
            "*": [Reply.tool_call("skill", {"name": "greet", "arguments": "Ada"}),
                  Reply.tool_call("spawn_agents",
                                  {"tasks": [{"role": "reviewer", "prompt": "REVIEW: calc.py"}]}),
                  Reply.text("reviewed")],
        }
    )  # fmt: skip
    with FakeOpenAIServer(scripts) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        args = [
            "-p",
            "/review calc.py",
            "--trust-project",
            "--approval",
            "auto",
            "--sandbox",
            "off",
        ]
        run = run_kcode(args, env, repo)
        requests = srv.requests
    assert run.code == 0, run.stderr
    assert (
        ".claude/agents/reviewer.md: field `tools`: dropped unknown tool 'WebFetch'" in run.stderr
    )
    main = [r for r in requests if not user_text(r.body).startswith("REVIEW:")]
    first = main[0].body
    prompt = user_text(first)
    assert prompt.startswith("Review calc.py carefully. Today: dynamic-output")
    system = first["messages"][0]["content"]
    assert "- greet: Greets people politely." in system and "Say hello" not in system
    assert "- reviewer: Reviews code for bugs. (tools: read_file, grep)" in system
    assert "skill" in [t["function"]["name"] for t in first["tools"]]
    assert "Say hello to Ada, politely." in tool_messages(main[1].body)[0]
    sub = [r for r in requests if user_text(r.body).startswith("REVIEW:")][0].body
    assert sub["messages"][0]["content"].startswith("You are the reviewer agent.")
    assert sorted(t["function"]["name"] for t in sub["tools"]) == ["grep", "read_file"]
    assert "calc.py:1 looks fine" in tool_messages(main[2].body)[1]


def test_doctor_lists_untrusted_files_and_bad_ones(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".claude/settings.json": '{"hooks": {"Stop": [{"hooks": [{"command": "x"}]}], "Bogus": []}}',
            ".mcp.json": '{"mcpServers": {}}',
            ".claude/commands/deploy.md": "deploy it\n",
            ".kcode/skills/broken/SKILL.md": "---\nname: broken\n---\nno description\n",
        },
    )
    with FakeOpenAIServer([]) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        run = run_kcode(["doctor"], env, repo)
    assert "project not trusted" in run.stdout
    for listed in (".claude/settings.json", ".mcp.json", ".claude/commands/deploy.md"):
        assert f"  - {listed}" in run.stdout
    assert ".kcode/skills/broken/SKILL.md: field `description`" in run.stdout
    assert ".claude/settings.json: field `hooks.Bogus`: unknown hook event" in run.stdout


def test_a_command_s_shell_line_needs_the_same_approval_as_shell(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", {".kcode/commands/danger.md": "Go: !`touch pwned`\n"})
    with FakeOpenAIServer([Reply.text("never asked")]) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        run = run_kcode(["-p", "/danger", "--trust-project", "--output-format", "json"], env, repo)
        requests = srv.requests
    assert run.code == 4, run.stderr
    assert "--approval auto" in json.loads(run.stdout)["result"]
    assert not (repo / "pwned").exists() and requests == []


def test_a_control_dir_that_is_a_symlink_is_not_read(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    """`.claude -> tools/cfg`: the model may write tools/cfg (never .claude), so hooks read
    through the link would be the model's to plant for the next run; they are refused."""
    repo = hook_repo(tmp_path)
    (repo / "tools").mkdir()
    (repo / ".claude").rename(repo / "tools" / "cfg")
    (repo / ".claude").symlink_to("tools/cfg")
    (repo / ".mcp.json").symlink_to("tools/cfg/settings.json")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", "links"], check=True, capture_output=True)
    script = [Reply.tool_call("read_file", {"path": "notes.txt"}), Reply.text("read it")]
    with FakeOpenAIServer(script) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        run = run_kcode(["-p", "read notes", "--trust-project"], env, repo)
    assert run.code == 0, run.stderr
    assert list((tmp_path / "markers").iterdir()) == []  # no hook ran
    assert ".claude is a symlink; a control file must not be" in run.stderr


def test_a_refused_approval_in_p_mode_is_a_notification(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    """-p cannot ask: the run stops with exit 4, and the Notification hooks hear that a human is
    needed (Claude's permission_prompt), before the process exits."""
    notify_sh = '#!/bin/bash\ncat >> "$MARKER_DIR/notifications.jsonl"\necho >> "$MARKER_DIR/notifications.jsonl"\n'
    settings = {"hooks": {"Notification": [{"matcher": "permission_prompt", "hooks": [
        {"type": "command", "command": ".claude/hooks/notify.sh"}]}]}}  # fmt: skip
    repo = make_repo(
        tmp_path / "repo",
        {".claude/settings.json": json.dumps(settings), ".claude/hooks/notify.sh": notify_sh},
    )
    (repo / ".claude/hooks/notify.sh").chmod(0o755)
    script = [Reply.tool_call("shell", {"command": "touch made-by-shell"}), Reply.text("never")]
    with FakeOpenAIServer(script) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        run = run_kcode(["-p", "make a file", "--trust-project", "--sandbox", "off"], env, repo)
    assert run.code == 4, run.stderr
    assert not (repo / "made-by-shell").exists()
    lines = (tmp_path / "markers/notifications.jsonl").read_text().split("\n")
    [seen] = [json.loads(line) for line in lines if line.strip()]
    assert seen["hook_event_name"] == "Notification"
    assert seen["notification_type"] == "permission_prompt" and seen["title"] == "kcode"
    assert seen["message"].startswith(
        "kcode needs your permission to use shell: touch made-by-shell"
    )
    assert "rerun with --approval auto" in seen["message"]


def bad_input_repo(tmp_path: Path) -> Path:
    """One good thing of each kind next to one broken thing of each kind (the issue's list)."""
    servers = Path(__file__).resolve().parent.parent / "mcp" / "servers.py"
    mcp = {"mcpServers": {
        "good": {"command": sys.executable, "args": [str(servers), "quiet"]},
        "ws": {"type": "websocket", "url": "ws://127.0.0.1:9/x"},
        "nocmd": {"type": "stdio", "args": ["--port", "1"]},
    }}  # fmt: skip
    hooks = {"hooks": {
        "UserPromptSubmit": [{"hooks": [{"type": "command", "command": 'touch "$MARKER_DIR/ran"'}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "timeout": "soon"}]}],
    }}  # fmt: skip
    return make_repo(
        tmp_path / "repo",
        {
            ".mcp.json": json.dumps(mcp),
            ".kcode/mcp.json": '{"mcpServers": {"x": ',
            ".claude/settings.json": json.dumps(hooks),
            ".kcode/skills/good/SKILL.md": "---\nname: good\ndescription: A fine skill.\n---\nHi\n",
            ".kcode/skills/bad/SKILL.md": "---\nname: [unclosed\n---\nbody\n",
            ".claude/agents/rev.md": "---\nname: rev\ndescription: Reviews.\n"
            "tools: Read, Telepathy\n---\nYou review.\n",
        },
    )


BAD_INPUT_WARNINGS = (
    ".mcp.json: mcpServers.ws.type: unknown transport 'websocket'",
    ".mcp.json: mcpServers.nocmd.command: missing",
    ".kcode/mcp.json: not valid JSON",
    ".claude/settings.json: field `hooks.PreToolUse[0].hooks[0].command`",
    ".kcode/skills/bad/SKILL.md: field `front matter`: invalid YAML",
    ".claude/agents/rev.md: field `tools`: dropped unknown tool 'Telepathy'",
)


def test_bad_input_warns_naming_file_and_field_and_the_rest_works(
    tmp_path: Path, kcode_env: dict[str, str]
) -> None:
    repo = bad_input_repo(tmp_path)
    script = [Reply.tool_call("mcp__good__echo", {"text": "hi"}), Reply.text("done")]
    with FakeOpenAIServer(script) as srv:
        env = env_with(kcode_env, srv, tmp_path / "markers")
        args = ["-p", "go", "--trust-project", "--approval", "auto", "--sandbox", "off"]
        run = run_kcode(args, env, repo, timeout=120)
        requests = srv.requests
        doctor = run_kcode(["doctor"], env, repo, timeout=120)  # not trusted: checked, not run
    assert run.code == 0, run.stderr
    for warning in BAD_INPUT_WARNINGS:
        assert f"{repo}/{warning}" in run.stderr, warning
        assert warning in doctor.stdout, warning
    assert (tmp_path / "markers/ran").exists()  # the good hook ran
    assert "echo: hi" in tool_messages(requests[-1].body)[0]  # the good MCP server answered
    system = requests[0].body["messages"][0]["content"]
    assert "good" in system and "- rev: Reviews." in system  # the good skill; the agent kept Read
