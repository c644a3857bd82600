"""The top-level `kcode --help` text, printed without importing the flag table (start-up budget).

tests/core/test_cli.py checks that every global flag of kcode.cli.flags appears here; each
command's own `--help` is written from the table (kcode.cli.parse.help_text).
"""

EXIT_CODES = """\
Exit codes:
  0    the task finished and the agent reports success (fix: threshold reached)
  1    the task finished but failed (agent reports failure, tests still red, fix threshold not reached)
  2    usage or configuration error (bad flag, no model configured, unreadable image)
  3    backend error after retries (unreachable, auth, model not found)
  4    an action needed approval that the non-interactive policy does not grant
  5    a limit was hit (--max-steps, --max-tokens, --max-cost, --timeout)
  130  interrupted (Ctrl-C); the session is saved and resumable (kcode -c)
"""

TOP_HELP = f"""\
Usage: kcode [OPTIONS] [PROMPT]
       kcode COMMAND [ARGS]...

kcode: a coding agent for your terminal. Run it inside a repository and talk to it.

  kcode                              interactive session (REPL)
  kcode "add a --json flag"          REPL that starts with that prompt
  kcode -p "make the tests pass" --output-format json     run unattended (CI)
  kcode fix ui.png ["the header is misaligned"]           visual fix loop

Commands:
  fix IMAGE [INSTRUCTIONS]   render the page, compare with IMAGE, edit until it matches
  visual compare TARGET      render + compare once and print the metrics (no model)
  models list|pull|path      local GGUF models
  sessions list|show ID      saved sessions
  config show|path|init      effective configuration and where each value comes from
  doctor                     check backend, browser, ripgrep, llama.cpp, sandbox
  undo [N]                   restore the files changed by the last N turns
  mcp list|get|add|remove    MCP servers (`kcode mcp add NAME -- COMMAND ARGS...`)

Options (before or after COMMAND where they apply; `kcode COMMAND --help` lists its own):
  -p, --non-interactive      run to completion with no prompts; print the result; exit with a code
  --output-format FORMAT     text | json | stream-json (with -p)
  --backend NAME             openai | llama-cpp | scripted
  --model NAME               model name, or PATH.gguf / owner/repo:file.gguf for llama-cpp
  --base-url URL             OpenAI-compatible endpoint (Moonshot, OpenAI, OpenRouter, vLLM, llama.cpp)
  --approval MODE            ask | auto-edit | auto | read-only | plan (default: ask; auto-edit
                             with -p; plan: read tools only, the answer is a plan)
  --sandbox MODE             off | workspace-write | read-only
  --max-steps N              limit on model calls in one turn
  --max-parallel N           sub-agents running at once (default 8, up to 128)
  --timeout SECONDS          wall-clock limit for the run
  --max-tokens N             token budget for the run, all agents (exit 5 when used up)
  --max-cost USD             cost budget for the run in US dollars (exit 5; needs a known price)
  -i, --image PATH           attach an image to the prompt (repeatable)
  -C, --cwd DIR              work in DIR instead of the current directory
  --add-dir DIR              allow the tools to use DIR too (repeatable)
  --thinking/--no-thinking   ask the model to think (Kimi K2.5 and others)
  --effort LEVEL             low | medium | high: reasoning_effort, for APIs that take it
  --auto-commit/--no-auto-commit   make one git commit per turn
  --trust-project            run this repository's hooks, commands, agents and MCP servers
  -c, --continue             continue the last session in this directory
  -r, --resume [ID]          resume a session (a picker when no ID)
  --version                  print the version and exit
  -h, --help                 show this message and exit

Configuration, lowest to highest: defaults < ~/.config/kcode/config.toml < .kcode/config.toml
(may not loosen approval or sandbox) < environment (KCODE_BACKEND, KCODE_MODEL, KCODE_BASE_URL,
KCODE_API_KEY, MOONSHOT_API_KEY, OPENAI_API_KEY, OPENAI_BASE_URL) < flags.

{EXIT_CODES}"""
