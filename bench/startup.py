"""Start-up cost: `kcode --version` and `kcode --help` against `python -c pass`, in the same run.

Target: each ≤ 3× the bare interpreter. Last line: the worse of the two ratios.
Usage: python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys

from _util import clean_env, kcode_exe, time_command


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = clean_env()
    base = time_command([sys.executable, "-c", "pass"], args.runs, env)
    version = time_command([kcode_exe(), "--version"], args.runs, env)
    helptext = time_command([kcode_exe(), "--help"], args.runs, env)
    print(f"python -c pass   {base * 1000:7.1f} ms")
    print(f"kcode --version  {version * 1000:7.1f} ms  ({version / base:.2f}x)")
    print(f"kcode --help     {helptext * 1000:7.1f} ms  ({helptext / base:.2f}x)")
    worst = max(version, helptext) / base
    print(
        f"{worst:.2f}x python startup (target <= 3x; --version {version / base:.2f}x, --help {helptext / base:.2f}x)"
    )


if __name__ == "__main__":
    main()
