"""Time from launching `kcode -p "Say OK"` to its first request reaching a local OpenAI-compatible
server, and the size of that request's fixed part (system prompt + tool schemas, tokens ≈ chars / 4).

Targets: ≤ 0.5 s and ≤ 5,000 tokens with every SPEC tool present. The bare interpreter start-up is
measured in the same run for scale. Last line: seconds to first request, then tokens.
Usage: python bench/first_request.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from _util import REPO, clean_env, kcode_exe, time_command

sys.path.insert(0, str(REPO))
from tests.fake_openai import FakeOpenAIServer, Reply

SPEC_TOOLS = {
    "read_file", "write_file", "edit_file", "apply_patch", "grep", "glob", "shell", "run_tests",
    "spawn_agents", "todo_write", "view_image",
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    latencies = []
    body: dict = {}
    with (
        tempfile.TemporaryDirectory() as work,
        FakeOpenAIServer(lambda _b: Reply.text("OK")) as srv,
    ):
        env = clean_env(
            KCODE_BASE_URL=srv.base_url, KCODE_MODEL="fake", XDG_DATA_HOME=f"{work}/data",
            XDG_CONFIG_HOME=f"{work}/cfg",
        )  # fmt: skip
        for i in range(args.runs + 1):
            seen = len(srv.requests)
            t0 = time.monotonic()
            run = subprocess.run(
                [kcode_exe(), "-p", "Say OK"], env=env, cwd=work, capture_output=True, check=False
            )
            chat = [r for r in srv.requests[seen:] if r.path.endswith("/chat/completions")]
            if not chat:
                stderr = run.stderr.decode(errors="replace").strip()[-600:]
                sys.exit(f"kcode sent no request (exit {run.returncode}): {stderr or 'no stderr'}")
            if i:
                latencies.append(chat[0].arrived - t0)
            body = chat[0].body or {}
        base = time_command([sys.executable, "-c", "pass"], args.runs, env)
    system = "".join(
        m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system"
    )
    tools = body.get("tools", [])
    names = {t["function"]["name"] for t in tools}
    fixed_chars = len(system) + len(json.dumps(tools))
    tokens = fixed_chars // 4
    median = statistics.median(latencies)
    print(f"python -c pass: {base:.3f} s")
    print(
        f"launch -> first request: median {median:.3f} s, best {min(latencies):.3f} s over "
        f"{len(latencies)} runs ({median / base:.1f}x python)"
    )
    print(
        f"system prompt {len(system)} chars, tool schemas {len(json.dumps(tools))} chars, {len(tools)} tools"
    )
    missing = SPEC_TOOLS - names
    if missing:
        print(f"missing tools: {sorted(missing)}")
    print(
        f"{median:.3f} s to first request (target <= 0.5); {tokens} tokens fixed (target <= 5000)"
    )


if __name__ == "__main__":
    main()
