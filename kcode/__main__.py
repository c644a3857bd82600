"""Entry point. `--version` and top-level `--help` are answered before anything else is imported."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        from kcode import __version__

        sys.stdout.write(f"kcode {__version__}\n")
        raise SystemExit(0)
    if args in (["--help"], ["-h"]):
        from kcode.cli.help import TOP_HELP

        sys.stdout.write(TOP_HELP)
        raise SystemExit(0)
    # One parse with the one flag table (kcode.cli.flags) for the REPL, -p and every subcommand.
    from kcode.cli.main import run_cli

    raise SystemExit(run_cli(args))


if __name__ == "__main__":
    main()
