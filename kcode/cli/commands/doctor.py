"""`kcode doctor`: what kcode can use on this machine, each line with how to fix what is missing."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from kcode.config.loader import Config
from kcode.runtime import OPENAI_DEFAULT_BASE_URL, backend_label

KEY_HINT = (
    "no model configured. Set one: export MOONSHOT_API_KEY=sk-... (Kimi K2.5), "
    "export OPENAI_API_KEY=sk-... (OpenAI; OPENAI_BASE_URL for another server), "
    "export KCODE_BASE_URL=http://127.0.0.1:8080/v1 (a local server), "
    "or --backend llama-cpp --model PATH.gguf"
)


def _check_backend(config: Config) -> tuple[bool, str]:
    name = backend_label(config)
    if name == "scripted":
        return True, f"scripted backend (script {config.script or '$KCODE_SCRIPT'})"
    if name == "llama-cpp":
        if not config.model:
            if config.backend != "llama-cpp":  # nothing configured at all
                from kcode.backends.llama.models import usable_default_model

                default = usable_default_model()
                if default is not None:
                    return True, f"no model configured; the local default {default.name} is used"
                return False, KEY_HINT
            return (
                False,
                "--backend llama-cpp needs --model PATH.gguf (`kcode models list` shows local ones)",
            )
        return True, f"llama-cpp with {config.model}"
    base = (config.base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")
    if not config.api_key and not config.base_url:
        return False, KEY_HINT
    request = urllib.request.Request(f"{base}/models")
    if config.api_key:
        request.add_header("Authorization", f"Bearer {config.api_key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            return False, f"{base} refused the API key (HTTP {err.code}); check the key"
        return True, f"{base} is reachable (HTTP {err.code} on /models)"
    except (OSError, ValueError) as err:
        return False, f"cannot reach {base}: {err}; check --base-url or start the server"
    if config.model:
        return True, f"{base} answers (HTTP {status}); model {config.model}"
    from kcode.backends.openai.discovery import discover_model

    found = discover_model(base, config.api_key or "")
    if found is None:
        return False, f"{base} answers but lists no model; set one with --model or KCODE_MODEL"
    return True, f"{base} answers (HTTP {status}); {found.describe(base)}"


def _check_ripgrep() -> tuple[bool, str]:
    path = shutil.which("rg")
    if path:
        return True, f"ripgrep at {path}"
    return (
        False,
        "ripgrep missing: grep uses the slower pure-Python search (apt-get install ripgrep)",
    )


def _check_browser() -> tuple[bool, str]:
    try:
        from kcode.visual.browser import system_browser
    except ImportError as err:  # reported as a failed check, with the cause (issue #12)
        return (
            False,
            f"the visual module cannot load ({type(err).__name__}: {err}): reinstall kcode",
        )
    found = system_browser()
    if found:
        return True, f"Chromium at {found}"
    return False, "no Chromium for `kcode fix`: apt-get install chromium"


def _check_llama() -> tuple[bool, str]:
    if importlib.util.find_spec("llama_cpp") is not None:
        return True, "llama-cpp-python installed (local GGUF models)"
    return False, "llama-cpp-python not installed: pip install 'kcode[local]'"


def _check_sandbox(config: Config) -> tuple[bool, str]:
    try:
        from kcode.safety.sandbox import describe_sandbox
    except ImportError as err:  # never report a sandbox that commands could not use (issue #12)
        return (
            False,
            f"the sandbox module cannot load ({type(err).__name__}: {err}): reinstall kcode",
        )
    return describe_sandbox(config)


def _check_extensions(config: Config, root: Path) -> tuple[bool, str]:
    from kcode.extensions.report import extensions_report

    return extensions_report(config, root)


def run_doctor(config: Config, root: Path) -> int:
    checks: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("backend", lambda: _check_backend(config)),
        ("ripgrep", _check_ripgrep),
        ("browser", _check_browser),
        ("llama.cpp", _check_llama),
        ("sandbox", lambda: _check_sandbox(config)),
        ("extensions", lambda: _check_extensions(config, root)),
    ]
    all_ok = True
    # Wrapped at words for a person at a terminal; piped output keeps one line per check (grep).
    width = max(min(shutil.get_terminal_size((100, 24)).columns, 100) - 15, 30)
    if not sys.stdout.isatty():
        width = 10_000
    sys.stdout.write(f"kcode doctor — workspace {root}\n")
    for name, check in checks:
        good, detail = check()
        all_ok = all_ok and (good or name in ("llama.cpp", "browser", "extensions"))
        lines = textwrap.wrap(detail, width, break_on_hyphens=False) or [""]
        sys.stdout.write(f"  {'✓' if good else '✗'} {name:10} {lines[0]}\n")
        for more in lines[1:]:  # wrapped at words, aligned under the first line
            sys.stdout.write(f"{'':15}{more}\n")
    _report_mcp(config, root)
    return 0 if all_ok else 1


def _report_mcp(config: Config, root: Path) -> None:
    """Every MCP server, connected once; a failing server is reported, it does not fail doctor."""
    from kcode.mcp.config import load_setup

    setup = load_setup(root, config)
    if not (setup.servers or setup.untrusted or setup.warnings):
        sys.stdout.write("  - mcp        no MCP servers configured\n")
        return
    from kcode.mcp.status import check_servers

    sys.stdout.write("  mcp servers:\n")
    for line in check_servers(config, root, timeout=15.0):
        sys.stdout.write(f"    {line}\n")
