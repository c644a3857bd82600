"""Edit fidelity: do kcode's edit tools reproduce `git apply` byte for byte on real patches?

    .venv/bin/python bench/edit_fidelity.py --corpus /work/shared/data/edit-corpus

For every case (CASE/before, CASE/patch.diff, CASE/after) the patch is replayed in a fresh temp copy of
before/ through the real tools (kcode.tools.base.run_tool) in several modes and the tree is compared
with after/:
  - apply_patch: the whole patch.diff in one call;
  - edit_file ctxN (N = 0..3): every change block of every hunk becomes one edit whose old_string is N
    context lines + the removed lines + N context lines and whose new_string has the added lines in
    their place (blocks whose context would overlap are merged), one edit_file call per file.
    Created files go through write_file. edit_file cannot delete or rename, so in the edit modes this
    script does deletions and renames itself (counted and printed), then edits the renamed file.
  - baseline: `git apply` itself on the same copy (when git is installed), to check the corpus.
A case passes when apply_patch AND edit_file ctx3 both reproduce after/. The last line is
`N passed, M failed`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kcode.messages import ToolCall, ToolResult
from kcode.tools.apply_patch import ApplyPatchTool
from kcode.tools.base import ToolContext, run_tool
from kcode.tools.edit_file import EditFileTool
from kcode.tools.fileio import decode_bytes
from kcode.tools.patch_parse import FilePatch, Hunk, parse_patch
from kcode.tools.write_file import WriteFileTool

CONTEXTS = (0, 1, 2, 3)


def read_patch(case: Path) -> str:
    raw = (case / "patch.diff").read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # matches the tools' latin-1 reading of non-UTF-8 files


def tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def hunk_edits(hunk: Hunk, n: int) -> list[dict[str, Any]]:
    """Edits for one hunk with n lines of context around each change block."""
    lines = hunk.lines
    blocks: list[list[int]] = []  # [start, end) of runs of -/+ lines
    i = 0
    while i < len(lines):
        if lines[i][0] == " ":
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i][0] != " ":
            i += 1
        if blocks and start - blocks[-1][1] <= 2 * n:
            blocks[-1][1] = i  # contexts would overlap: one edit
        else:
            blocks.append([start, i])
    edits = []
    for start, end in blocks:
        lo = start
        while lo > 0 and start - lo < n and lines[lo - 1][0] == " ":
            lo -= 1
        hi = end
        while hi < len(lines) and hi - end < n and lines[hi][0] == " ":
            hi += 1
        span = lines[lo:hi]
        old = "".join(t for k, t in span if k != "+")
        new = "".join(t for k, t in span if k != "-")
        old_line = hunk.old_start + sum(1 for k, _ in lines[:lo] if k != "+")
        if old != new:
            edits.append({"old_string": old, "new_string": new, "_line": old_line})
    return edits


def widen_ambiguous(edits: list[dict[str, Any]], path: Path) -> int:
    """What a model does after an "old_string matches N times" error: quote more of the file.

    Each edit whose old_string occurs more than once in the file gets surrounding lines from the
    file (around the occurrence nearest the hunk's stated line) until it is unique. Returns how
    many edits were widened.
    """
    text = decode_bytes(path.read_bytes()).text
    widened = 0
    for edit in edits:
        old, new = edit["old_string"], edit["new_string"]
        starts = [i for i in range(len(text)) if text.startswith(old, i)] if old else []
        if len(starts) < 2:
            continue
        at = min(starts, key=lambda s: abs(text.count("\n", 0, s) + 1 - edit["_line"]))
        lo, hi = at, at + len(old)
        while text.count(old) > 1 or old == "":
            new_lo = text.rfind("\n", 0, max(lo - 1, 0)) + 1 if lo > 0 else 0
            new_hi = text.find("\n", hi) + 1 if hi < len(text) else len(text)
            if new_hi == 0:
                new_hi = len(text)
            if (new_lo, new_hi) == (lo, hi):
                break
            old = text[new_lo:lo] + old + text[hi:new_hi]
            new = text[new_lo:lo] + new + text[hi:new_hi]
            lo, hi = new_lo, new_hi
        edit["old_string"], edit["new_string"] = old, new
        widened += 1
    return widened


def clean(edits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in edits]


async def call(tool: Any, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return await run_tool(tool, ToolCall("bench", tool.name, args), ctx)


async def run_edit_mode(
    fps: list[FilePatch], work: Path, n: int, stats: Counter[str]
) -> tuple[bool, list[str]]:
    ctx = ToolContext(root=work)
    problems = []
    for fp in fps:
        if fp.new_path is None:
            assert fp.old_path is not None
            (work / fp.old_path).unlink()
            stats["deletions done by the script"] += 1
            continue
        if fp.old_path is None:
            content = "".join("".join(h.after) for h in fp.hunks)
            result = await call(WriteFileTool(), ctx, {"path": fp.new_path, "content": content})
        else:
            if fp.old_path != fp.new_path:
                dest = work / fp.new_path
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = work / fp.old_path
                (shutil.move if fp.is_rename else shutil.copy2)(source, dest)
                stats["renames/copies done by the script"] += 1
            edits = [e for h in fp.hunks for e in hunk_edits(h, n)]
            if not edits:
                continue
            if any(not e["old_string"] for e in edits):
                stats["pure insertions with no anchor (ctx0)"] += 1
            result = await call(EditFileTool(), ctx, {"path": fp.new_path, "edits": clean(edits)})
            if not result.ok and "matches" in result.content and "times" in result.content:
                stats["ambiguous"] += 1
                if widen_ambiguous(edits, work / fp.new_path):
                    stats["ambiguous, retried with more context from the file"] += 1
                    result = await call(
                        EditFileTool(), ctx, {"path": fp.new_path, "edits": clean(edits)}
                    )
        if not result.ok:
            problems.append(f"{fp.target}: {result.content.splitlines()[0][:200]}")
    return not problems, problems


async def run_case(case: Path, git: str | None) -> dict[str, Any]:
    patch = read_patch(case)
    fps = parse_patch(patch)
    expected = tree(case / "after")
    outcome: dict[str, Any] = {"stats": Counter()}

    async def in_copy(mode: str, action: Any) -> None:
        with tempfile.TemporaryDirectory(prefix="kcode-fidelity-") as tmp:
            work = Path(tmp)
            if (case / "before").is_dir():
                shutil.copytree(case / "before", work, dirs_exist_ok=True)
            detail = await action(work)
            outcome[mode] = tree(work) == expected
            outcome[mode + ":detail"] = detail

    async def patch_mode(work: Path) -> str:
        result = await call(ApplyPatchTool(), ToolContext(root=work), {"patch": patch})
        return result.content

    await in_copy("apply_patch", patch_mode)
    for n in CONTEXTS:

        async def edit_mode(work: Path, n: int = n) -> str:
            stats: Counter[str] = Counter()
            _, problems = await run_edit_mode(fps, work, n, stats)
            for k, v in stats.items():
                outcome["stats"][f"ctx{n}: {k}"] += v
            return "; ".join(problems)

        await in_copy(f"edit_file ctx{n}", edit_mode)
    if git:

        async def git_mode(work: Path) -> str:
            proc = await asyncio.to_thread(
                subprocess.run,
                [git, "apply", "-"],
                input=(case / "patch.diff").read_bytes(),
                cwd=work,
                capture_output=True,
            )
            return proc.stderr.decode("utf-8", "replace")

        await in_copy("baseline git apply", git_mode)
    return outcome


async def main_async(corpus: Path, verbose: bool) -> int:
    cases = sorted(p for p in corpus.iterdir() if (p / "patch.diff").is_file())
    if not cases:
        print(f"no cases (CASE/patch.diff) under {corpus}", file=sys.stderr)
        return 2
    git = shutil.which("git")
    modes = ["apply_patch", *(f"edit_file ctx{n}" for n in CONTEXTS)]
    if git:
        modes.append("baseline git apply")
    identical: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    passed = failed = 0
    for case in cases:
        outcome = await run_case(case, git)
        stats.update(outcome["stats"])
        for mode in modes:
            identical[mode] += bool(outcome[mode])
        if outcome["apply_patch"] and outcome["edit_file ctx3"]:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {case.name}")
            for mode in ("apply_patch", "edit_file ctx3"):
                if not outcome[mode]:
                    print(f"    {mode}: {str(outcome[mode + ':detail'])[:400]}")
        if verbose:
            print(
                f"{case.name}: " + ", ".join(f"{m}={'ok' if outcome[m] else 'DIFF'}" for m in modes)
            )
    total = len(cases)
    print(f"cases: {total}")
    for mode in modes:
        print(f"{mode:>20}: {identical[mode]}/{total} identical to after/")
    ambiguous = sum(v for k, v in stats.items() if k == "ctx0: ambiguous")
    print(f"ambiguous matches at 0 lines of context (edit_file calls refused): {ambiguous}")
    for key in sorted(stats):
        if key != "ctx0: ambiguous":
            print(f"  {key}: {stats[key]}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, required=True, help="directory of edit-corpus cases")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = parser.parse_args()
    return asyncio.run(main_async(args.corpus, args.verbose))


if __name__ == "__main__":
    sys.exit(main())
