"""Repository files that hung or crashed the real binary (found by a crash hunt): a FIFO named by a
git `include.path`, a FIFO pyproject.toml read by run_tests, a 255-byte file name, broken and
bomb images given to `-i` and `kcode fix`."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import kcode_exe
from tests.security.conftest import Attack, Victim

DONE = [{"text": "done"}]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def broken_png() -> bytes:
    """A real PNG whose second IDAT chunk has a type that is not letters: Pillow's decoder raises
    SyntaxError ("broken PNG file"), which is neither OSError nor ValueError."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(out, "PNG")
    data = out.getvalue()
    at = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[at - 4 : at])
    pixels = data[at + 4 : at + 4 + length]
    half = len(pixels) // 2
    return (
        data[: at - 4]
        + png_chunk(b"IDAT", pixels[:half])
        + png_chunk(b"Y\xc5b\xb1", pixels[half:])
        + png_chunk(b"IEND", b"")
    )


def bomb_png() -> bytes:
    """A header claiming 100000 x 100000 pixels: Pillow's DecompressionBombError."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def kcode(victim: Victim, *args: str, timeout: float = 60) -> Attack:
    proc = subprocess.run(
        [*victim.prefix, kcode_exe(), *args],
        env={**victim.env, "KCODE_BACKEND": "scripted", "KCODE_SCRIPT": str(script(victim))},
        cwd=victim.repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Attack(proc.returncode, proc.stdout, proc.stderr)


def script(victim: Victim) -> Path:
    path = victim.home / "script.json"
    if not path.exists():
        path.write_text('[{"text": "done"}]')
    return path


def test_a_fifo_in_a_git_include_is_a_bounded_wait_not_a_hang(victim: Victim) -> None:
    """`include.path = ../.gitconfig` is a common pattern; a command in the sandbox can plant a
    FIFO there, and every git call (all of them read the config) waited for ever."""
    subprocess.run(["git", "config", "include.path", "../.gitconfig"], cwd=victim.repo, check=True)
    os.mkfifo(victim.repo / ".gitconfig")
    victim.hand_over()
    attack = victim.run(DONE, timeout=90)
    assert attack.code == 0, attack.stderr
    assert attack.stdout == "done\n"


def test_run_tests_does_not_block_on_a_fifo_or_read_a_device(victim: Victim) -> None:
    os.mkfifo(victim.repo / "pyproject.toml")
    (victim.repo / "setup.cfg").symlink_to("/dev/zero")
    (victim.repo / "package.json").symlink_to("/dev/zero")
    victim.hand_over()
    turns = [{"tool_calls": [{"name": "run_tests", "arguments": {}}]}, {"text": "done"}]
    attack = victim.run(turns, "--approval", "auto", timeout=90)
    assert attack.code in (0, 1), attack.stderr  # 1: the (absent) tests did not pass
    assert "internal error" not in attack.stderr


def test_a_255_byte_file_name_can_be_written_and_undone(victim: Victim) -> None:
    name = "L" * 255
    victim.write(name, "v1")
    victim.commit()
    turns = [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": name, "content": "v2"}}]},
        {"text": "done"},
    ]
    attack = victim.run(turns, "--approval", "auto")
    assert attack.code == 0, attack.stderr
    assert (victim.repo / name).read_text() == "v2"
    undo = kcode(victim, "undo")
    assert undo.code == 0, undo.stderr
    assert (victim.repo / name).read_text() == "v1"


def plant_image(victim: Victim, name: str, kind: str) -> None:
    """A broken PNG, a bomb, or a FIFO named like an image, in the victim's repository."""
    path = victim.repo / name
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(broken_png() if kind == "broken" else bomb_png())
    victim.hand_over()


@pytest.mark.parametrize("kind", ["broken", "bomb", "fifo"])
def test_bad_images_for_dash_i_are_a_usage_error(victim: Victim, kind: str) -> None:
    plant_image(victim, "shot.png", kind)
    attack = kcode(victim, "-p", "look", "-i", "shot.png")
    assert attack.code == 2, attack.stderr
    assert "internal error" not in attack.stderr and "shot.png" in attack.stderr


@pytest.mark.parametrize("kind", ["broken", "bomb", "fifo"])
def test_bad_target_images_for_kcode_fix_are_refused(victim: Victim, kind: str) -> None:
    (victim.repo / "index.html").write_text("<h1>hi</h1>\n")
    plant_image(victim, "target.png", kind)
    attack = kcode(victim, "fix", "target.png", "--entry", "index.html")
    assert attack.code == 2, attack.stderr
    assert "internal error" not in attack.stderr and "target.png" in attack.stderr
