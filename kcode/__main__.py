"""Entry point. `--version`, top-level `--help` and a plain REPL start never import typer."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        from kcode import __version__

        sys.stdout.write(f"kcode {__version__}\n")
        raise SystemExit(0)
    if args in (["--help"], ["-h"]):
        from kcode.cli_help import TOP_HELP

        sys.stdout.write(TOP_HELP)
        raise SystemExit(0)
    # Plain `kcode [PROMPT]` in a terminal and plain `kcode -p PROMPT` skip typer entirely.
    from kcode.ui.launch import fast_headless, fast_repl

    code = fast_repl(args)
    if code is None:
        code = fast_headless(args)
    if code is not None:
        raise SystemExit(code)
    from kcode.cli import run_cli

    raise SystemExit(run_cli(args))


if __name__ == "__main__":
    main()
