"""The one flag table (SPEC §2): every flag and command of `kcode`, declared once.

kcode.cli.parse reads argv with this table alone, for the fast REPL / `-p` start and for every
subcommand, and writes each command's `--help` from it. Choice sets are the config's own Literal
types (kcode.config.schema), so a new backend or approval mode needs no edit here.

Global flags may stand before or after a subcommand; each command names the global flags that
make sense for it (`uses`), and its own flags (`flags`) are valid only after its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from kcode.config.schema import ApprovalMode, BackendName, EffortLevel, OutputFormat, SandboxMode

Kind = Literal["str", "int", "float", "path", "switch"]


@dataclass(frozen=True)
class Flag:
    """One flag. `switch` flags take no value (`negation` sets False); the others take one."""

    names: tuple[str, ...]  # the long name last: it names the flag in messages
    dest: str
    kind: Kind
    help: str
    metavar: str = ""
    choices: tuple[str, ...] = ()
    negation: str | None = None  # "--no-thinking"
    multiple: bool = False  # repeatable: values collect in a list
    config: str | None = None  # the config setting it sets (load_config flags); None: not one
    default: object = None

    @property
    def name(self) -> str:
        return self.names[-1]

    def spelled(self) -> str:
        """`--model NAME`, `--thinking/--no-thinking`: how help and messages show it."""
        if self.kind == "switch":
            return f"{self.name}/{self.negation}" if self.negation else self.name
        return f"{self.name} {self.metavar}"


@dataclass(frozen=True)
class Arg:
    """A positional argument. `many`: the rest of the words (after `--` too)."""

    name: str  # metavar: IMAGE
    dest: str
    help: str
    required: bool = True
    kind: Kind = "str"
    many: bool = False
    default: object = None


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("mcp", "add"); () is the plain `kcode [PROMPT]`
    help: str
    args: tuple[Arg, ...] = ()
    flags: tuple[Flag, ...] = ()  # the command's own flags: only after its name
    uses: tuple[str, ...] = ()  # dests of the global flags it takes
    handler: str = ""  # "module:function", imported only when the command runs
    epilog: str = ""

    @property
    def title(self) -> str:
        return " ".join(("kcode", *self.path))


def _choices(literal: object) -> tuple[str, ...]:
    return tuple(str(choice) for choice in get_args(literal))


def _bar(choices: tuple[str, ...]) -> str:
    return " | ".join(choices)


GLOBAL_FLAGS: tuple[Flag, ...] = (
    Flag(("-p", "--non-interactive"), "non_interactive", "switch",
         "run to completion with no prompts; print the result; exit with a code"),
    Flag(("--output-format",), "output_format", "str", _bar(_choices(OutputFormat)), "FORMAT",
         _choices(OutputFormat), config="output_format"),
    Flag(("--backend",), "backend", "str", _bar(_choices(BackendName)), "NAME",
         _choices(BackendName), config="backend"),
    Flag(("--model",), "model", "str", "model name, or PATH.gguf / owner/repo:file.gguf",
         "NAME", config="model"),
    Flag(("--base-url",), "base_url", "str", "OpenAI-compatible endpoint", "URL",
         config="base_url"),
    Flag(("--approval",), "approval", "str", _bar(_choices(ApprovalMode)), "MODE",
         _choices(ApprovalMode), config="approval"),
    Flag(("--sandbox",), "sandbox", "str", _bar(_choices(SandboxMode)), "MODE",
         _choices(SandboxMode), config="sandbox"),
    Flag(("--max-steps",), "max_steps", "int", "limit on model calls in one turn", "N",
         config="max_steps"),
    Flag(("--max-parallel",), "max_parallel", "int", "sub-agents running at once", "N",
         config="max_parallel"),
    Flag(("--timeout",), "timeout", "float", "wall-clock limit for the run", "SECONDS",
         config="timeout_s"),
    # Budgets stay text here: kcode.agents.budget reads "50k", "$2" and says what is wrong.
    Flag(("--max-tokens",), "max_tokens", "str", "token budget for the run (exit 5 when hit)",
         "N"),
    Flag(("--max-cost",), "max_cost", "str", "cost budget in USD for the run (exit 5 when hit)",
         "USD"),
    Flag(("--effort",), "effort", "str", f"{_bar(_choices(EffortLevel))} (reasoning_effort)", "LEVEL",
         _choices(EffortLevel), config="effort"),
    Flag(("-i", "--image"), "image", "path", "attach an image to the prompt (repeatable)", "PATH",
         multiple=True),
    Flag(("-C", "--cwd"), "cwd", "path", "work in DIR instead of the current directory", "DIR"),
    Flag(("--add-dir",), "add_dir", "path", "allow the tools to use DIR too (repeatable)", "DIR",
         multiple=True, config="add_dirs"),
    Flag(("--thinking",), "thinking", "switch", "ask the model to think",
         negation="--no-thinking", config="thinking"),
    Flag(("--auto-commit",), "auto_commit", "switch", "make one git commit per turn",
         negation="--no-auto-commit", config="auto_commit"),
    Flag(("--trust-project",), "trust_project", "switch",
         "run this repository's hooks, commands, agents and MCP servers", config="trust_project"),
    Flag(("-c", "--continue"), "continue_", "switch", "continue the last session here"),
    # Without a session id `-r` opens a picker: the value is taken only when it is an id.
    Flag(("-r", "--resume"), "resume", "str", "resume a session (a picker when no ID)", "[ID]"),
)  # fmt: skip
GLOBAL = {flag.dest: flag for flag in GLOBAL_FLAGS}

# Which global flags make sense where.
RUN = ("non_interactive", "output_format", "backend", "model", "base_url", "approval", "sandbox",
       "max_steps", "max_parallel", "max_tokens", "max_cost", "effort", "cwd", "add_dir",
       "thinking", "trust_project")  # fmt: skip
CONFIG_FLAGS = (*tuple(f.dest for f in GLOBAL_FLAGS if f.config), "max_tokens", "max_cost", "cwd")
BACKEND = ("backend", "model", "base_url", "cwd")

ENTRY = Flag(("--entry",), "entry", "str", "HTML file to render", "FILE")
URL = Flag(("--url",), "url", "str", "loopback dev-server URL", "URL")
SCOPE = Flag(("-s", "--scope"), "scope", "str", "user | project", "SCOPE", ("user", "project"))

COMMANDS: tuple[Command, ...] = (
    Command((), "a coding agent for your terminal",
            (Arg("PROMPT", "prompt", "what to do", required=False),),
            uses=tuple(GLOBAL), handler="kcode.cli.launch:run_chat"),
    Command(("fix",),
            "Visual fix loop: render, compare with IMAGE, let the model edit, repeat "
            "(exit 0 = threshold reached).",
            (Arg("IMAGE", "image_target", "target design, or a screenshot with a red circle",
                 kind="path"),
             Arg("INSTRUCTIONS", "instructions", "what is wrong / what to do", required=False,
                 default="")),
            (ENTRY, URL,
             Flag(("--max-iters",), "max_iters", "int", "model turns at most", "N", default=6),
             Flag(("--threshold",), "threshold", "float", "score to reach", "S", default=0.95)),
            RUN, "kcode.cli.commands.visual:fix_cli",
            "Edits are approved by the auto-edit policy unless --approval says otherwise (the loop "
            "runs unattended in both modes; shell commands need --approval auto)."),
    Command(("visual", "compare"),
            "Render the page (or take --image), compare with TARGET, print score and regions.",
            (Arg("TARGET", "target", "the design / expected screenshot (PNG)", kind="path"),),
            (ENTRY, URL,
             Flag(("--image",), "compare_image", "path", "compare with this PNG", "PNG"),
             Flag(("--json",), "as_json", "switch", "print the metrics as JSON")),
            ("cwd",), "kcode.cli.commands.visual:compare_command"),
    Command(("models", "list"), "The bundled model and the models downloaded into the cache.",
            handler="kcode.cli.commands.models:list_models"),
    Command(("models", "pull"),
            "Download a model (progress on stderr; an interrupted download resumes).",
            (Arg("SPEC", "spec", "owner/repo[:file.gguf]; default: the default local model",
                 required=False),),
            handler="kcode.cli.commands.models:pull"),
    Command(("models", "path"), "Print the local file of a model without downloading it.",
            (Arg("SPEC", "spec", "owner/repo[:file.gguf] or a path"),),
            handler="kcode.cli.commands.models:path"),
    Command(("sessions", "list"), "Sessions of this directory (or --all), newest first.",
            flags=(Flag(("--all",), "all_dirs", "switch", "sessions of every directory"),),
            uses=("cwd",), handler="kcode.cli.main:sessions_list"),
    Command(("sessions", "show"), "Print a session's conversation.",
            (Arg("ID", "session_id", "the session id"),), handler="kcode.cli.main:sessions_show"),
    Command(("config", "show"), "The effective value of every setting and where it comes from.",
            uses=CONFIG_FLAGS, handler="kcode.cli.main:config_show"),
    Command(("config", "path"), "Where the user and repository config files are.",
            uses=("cwd",), handler="kcode.cli.main:config_path"),
    Command(("config", "init"), "Write a commented user config file (never overwrites).",
            handler="kcode.cli.main:config_init"),
    Command(("doctor",), "Check what kcode can use here: backend, ripgrep, browser, llama.cpp, "
            "sandbox.", uses=BACKEND, handler="kcode.cli.main:doctor"),
    Command(("undo",), "Undo the last N turns of the latest session here (shell changes too).",
            (Arg("N", "n", "how many turns to undo", required=False, kind="int", default=1),),
            uses=("cwd",), handler="kcode.cli.commands.undo:undo_command"),
    Command(("mcp", "list"), "Every configured server with its state (connects to each unless "
            "--no-check).",
            flags=(Flag(("--check",), "check", "switch", "connect to each",
                        negation="--no-check", default=True),),
            uses=("cwd", "trust_project"), handler="kcode.cli.commands.mcp:list_servers"),
    Command(("mcp", "get"), "One server's settings (env and header values are masked).",
            (Arg("NAME", "name", "server name"),), uses=("cwd", "trust_project"),
            handler="kcode.cli.commands.mcp:get"),
    Command(("mcp", "add"),
            "Add a server: `kcode mcp add NAME -- COMMAND ARGS` or `--transport http NAME URL`.",
            (Arg("NAME", "name", "server name"),
             Arg("TARGET", "target", "-- COMMAND ARGS..., or a URL", required=False, many=True)),
            (Flag(("-t", "--transport"), "transport", "str", "stdio | http | sse", "KIND",
                  default="stdio"),
             Flag(("-e", "--env"), "env", "str", "KEY=VALUE for the server (repeatable)",
                  "KEY=VALUE", multiple=True),
             Flag(("-H", "--header"), "header", "str", "'Name: value' (repeatable)", "HEADER",
                  multiple=True),
             SCOPE),
            ("cwd",), "kcode.cli.commands.mcp:add"),
    Command(("mcp", "remove"), "Remove a server from the user file (or the one given with "
            "--scope).", (Arg("NAME", "name", "server name"),), (SCOPE,), ("cwd",),
            "kcode.cli.commands.mcp:remove"),
)  # fmt: skip
GROUPS = {
    "visual": "Render, compare and locate (no model).",
    "models": "Local GGUF models.",
    "sessions": "Saved sessions.",
    "config": "Configuration.",
    "mcp": "MCP servers.",
}
SUBCOMMANDS = frozenset(c.path[0] for c in COMMANDS if c.path)
BY_PATH = {c.path: c for c in COMMANDS}
CHAT = BY_PATH[()]
