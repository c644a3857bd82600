"""Scores, regions, heatmap and red-mark detection on images drawn with Pillow (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from kcode.visual.annotate import find_red_mark, mark_is_annotation
from kcode.visual.compare import compare_images, heatmap
from kcode.visual.errors import VisualError
from kcode.visual.pipeline import check_sizes
from kcode.visual.sources import resolve_page_source
from kcode.visual.target_images import detect_viewport, image_for_model, load_image


def card_page(cards: int = 3, button: str = "#2563eb") -> Image.Image:
    image = Image.new("RGB", (800, 500), "#f4f5f7")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 800, 60), fill="#1e293b")
    draw.text((30, 20), "Acme pricing", fill="white")
    for i in range(cards):
        x = 30 + i * 250
        draw.rectangle((x, 100, x + 220, 400), fill="white")
        draw.text((x + 20, 120), f"Plan {i}", fill="#1f2933")
        draw.rectangle((x + 20, 340, x + 200, 380), fill=button)
    return image


def test_identical_images_score_one() -> None:
    page = card_page()
    result = compare_images(page, page.copy())
    assert result.score == 1.0
    assert result.mismatch == 0.0
    assert result.regions == []


def test_blank_page_does_not_score_high() -> None:
    result = compare_images(card_page(), Image.new("RGB", (800, 500), "#f4f5f7"))
    assert result.score < 0.3
    white = compare_images(card_page(), Image.new("RGB", (800, 500), "white"))
    assert white.score < 0.3


def test_missing_card_scores_visibly_lower_and_is_the_largest_region() -> None:
    result = compare_images(card_page(3), card_page(2))
    assert result.score < 0.85
    # The white card on a light grey page is below pixelmatch's colour threshold; its button and
    # title are not: the button is the largest region, and every region lies in the third card.
    button = result.regions[0]
    assert (button.x, button.y, button.w, button.h) == (550, 340, 181, 41)
    assert all(530 <= r.x and r.x + r.w <= 751 for r in result.regions)


def test_wrong_colour_scores_lower_than_right_colour() -> None:
    right = compare_images(card_page(), card_page())
    wrong = compare_images(card_page(), card_page(button="#16a34a"))
    assert wrong.score < right.score
    assert len(wrong.regions) == 3
    areas = [r.area for r in wrong.regions]
    assert areas == sorted(areas, reverse=True)


def test_one_pixel_antialiasing_shift_is_tolerated() -> None:
    page = card_page()
    shifted = Image.new("RGB", page.size, "#f4f5f7")
    shifted.paste(page.crop((0, 0, 799, 500)), (1, 0))
    assert compare_images(page, shifted).mismatch < 0.001


def test_size_mismatch_compares_overlap_with_a_penalty() -> None:
    page = card_page()
    taller = Image.new("RGB", (800, 550), "#f4f5f7")
    taller.paste(page, (0, 0))
    result = compare_images(page, taller)
    assert result.render_size == (800, 550) and result.target_size == (800, 500)
    assert 0.85 < result.score < 0.95
    with pytest.raises(VisualError, match="too different"):
        check_sizes(page, Image.new("RGB", (200, 120)), "image")


def test_heatmap_marks_differences_in_red() -> None:
    comparison = compare_images(card_page(3), card_page(2))
    heat = heatmap(card_page(3), comparison)
    assert heat.size == (800, 500)
    assert heat.getpixel((600, 360)) == (230, 20, 40)
    assert heat.getpixel((100, 450)) != (230, 20, 40)


def test_red_circle_is_found_but_a_red_button_is_not() -> None:
    page = card_page(button="#dc2626")
    assert find_red_mark(page) is None
    marked = page.copy()
    ImageDraw.Draw(marked).ellipse((270, 90, 500, 300), outline=(255, 0, 0), width=5)
    mark = find_red_mark(marked)
    assert mark is not None
    x, y, w, h = mark
    assert abs(x - 270) <= 2 and abs(y - 90) <= 2 and abs(w - 231) <= 3 and abs(h - 211) <= 3
    assert mark_is_annotation(mark, page)


def test_not_an_image_and_tiny_image_are_clear_errors(tmp_path: Path) -> None:
    bogus = tmp_path / "ui.png"
    bogus.write_text("this is not a png")
    with pytest.raises(VisualError, match="not a readable image"):
        load_image(bogus)
    with pytest.raises(VisualError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    Image.new("RGB", (10, 10)).save(tmp_path / "tiny.png")
    with pytest.raises(VisualError, match="too small"):
        load_image(tmp_path / "tiny.png")


def test_viewport_rule_for_retina_screenshots(tmp_path: Path) -> None:
    assert detect_viewport(Image.new("RGB", (1280, 800))).scale == 1.0
    assert detect_viewport(Image.new("RGB", (1920, 1080))).scale == 1.0
    retina = detect_viewport(Image.new("RGB", (2880, 1800)))
    assert (retina.width, retina.height, retina.scale) == (1440, 900, 2.0)
    Image.new("RGB", (1600, 1000)).save(tmp_path / "mac.png", dpi=(144, 144))
    assert detect_viewport(load_image(tmp_path / "mac.png")).scale == 2.0
    with pytest.raises(VisualError, match="no page size"):
        detect_viewport(Image.new("RGB", (300, 30000)))


def test_images_for_the_model_are_resized() -> None:
    part = image_for_model(Image.new("RGB", (3000, 2000), "white"))
    import io

    assert max(Image.open(io.BytesIO(part.data)).size) == 1568
    assert part.data_url().startswith("data:image/png;base64,")


def test_bad_page_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VisualError, match="not a loopback address"):
        resolve_page_source(tmp_path, None, "https://example.com/")
    with pytest.raises(VisualError, match=r"no index\.html"):
        resolve_page_source(tmp_path, None, None)
    with pytest.raises(VisualError, match="outside the workspace"):
        resolve_page_source(tmp_path, "../etc/passwd", None)
    assert resolve_page_source(tmp_path, None, "http://[::1]:5173/").url == "http://[::1]:5173/"
