"""OutputGuard: end-of-turn markers never pass, at any chunk boundary; loops are caught, prose is not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kcode.backends.llama.output_guard import LOOP_MIN_CHARS, OutputGuard, repeating_period

MARKERS = ("<|im_end|>", "<|im_start|>")


def run(chunks: list[str], markers: tuple[str, ...] = MARKERS) -> tuple[str, str | None]:
    guard = OutputGuard(markers)
    out = ""
    for chunk in chunks:
        out += guard.feed(chunk)
        if guard.stopped:
            break
    return out + guard.flush(), guard.stopped


def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(text[last:point])
        last = point
    return [*pieces, text[last:]]


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=12))
def test_marker_is_cut_wherever_the_chunks_split_it(cuts: list[int]) -> None:
    text = "Hello there, <b>friend</b>.<|im_end|>\n<|im_start|>user\nmore"
    out, stopped = run(split_at(text, cuts))
    assert out == "Hello there, <b>friend</b>." and stopped == "stop"


def test_a_partial_marker_that_never_completes_is_shown_at_the_end() -> None:
    out, stopped = run(["a <|im", "_e", "nd"])
    assert out == "a <|im_end" and stopped is None


def test_gemma_turn_text_in_one_token() -> None:
    out, stopped = run(["Sure.<end_of_turn>\n<start_of_turn>user"], ("<end_of_turn>",))
    assert (out, stopped) == ("Sure.", "stop")


def test_a_loop_is_caught_and_prose_or_code_is_not() -> None:
    looping = "I will now read the file. " * 80
    guard = OutputGuard()
    for i in range(0, len(looping), 4):
        guard.feed(looping[i : i + 4])
        if guard.stopped:
            break
    assert guard.stopped == "repetition"
    prose = " ".join(f"line {i}: value = compute({i}, {i * i})" for i in range(300))
    assert repeating_period(prose) == 0
    assert repeating_period("=" * (LOOP_MIN_CHARS - 1)) == 0
    assert repeating_period("ab" * LOOP_MIN_CHARS) == 2
