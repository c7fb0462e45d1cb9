"""Film geometry, job pagination, sheet composition and status explanations (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.print.film import (
    FILM_SIZES_MM,
    DisplayFormat,
    FilmError,
    film_size_mm,
    film_size_pixels,
    fit_size,
    standard_formats,
)
from viewer.print.job import FilmHeader, PrintItem, PrintJob, PrintPreset, density_to_pvalue, items_for_frames
from viewer.print.render import PrintPixels, resize, to_grayscale
from viewer.print.statuses import explain_printer_status, explain_status, status_category


def test_film_sizes_are_physical_and_orientation_swaps() -> None:
    assert film_size_mm("14INX17IN") == pytest.approx((355.6, 431.8))
    assert film_size_mm("14INX17IN", "LANDSCAPE") == pytest.approx((431.8, 355.6))
    assert film_size_mm("A4") == (210.0, 297.0)
    assert film_size_mm("24CMX30CM", "LANDSCAPE") == (300.0, 240.0)
    for name in ("8INX10IN", "8INX12IN", "10INX12IN", "10INX14IN", "11INX14IN", "11INX17IN", "14INX14IN", "A3"):
        assert name in FILM_SIZES_MM
    assert film_size_pixels("8INX10IN", "PORTRAIT", 150) == (1200, 1500)
    with pytest.raises(FilmError):
        film_size_mm("9INX9IN")


def test_standard_format_boxes_are_row_major_and_tile_the_film() -> None:
    fmt = DisplayFormat.parse("STANDARD\\3,4")
    boxes = fmt.boxes()
    assert fmt.box_count == 12 and [b.position for b in boxes] == list(range(1, 13))
    # Position 2 is right of 1 on the first row; position 4 starts the second row.
    assert boxes[1].x > boxes[0].x and boxes[1].y == boxes[0].y
    assert boxes[3].x == 0 and boxes[3].y > 0
    rects = [b.pixels(1200, 1500) for b in boxes]
    assert sum(w * h for _, _, w, h in rects) == 1200 * 1500


def test_row_and_col_formats() -> None:
    row = DisplayFormat.parse("ROW\\1,3")
    assert row.box_count == 4
    first, second = row.boxes()[:2]
    assert first.width == 1.0 and second.width == pytest.approx(1 / 3) and second.y == 0.5
    col = DisplayFormat.parse("COL\\2,1")
    boxes = col.boxes()
    # COL numbers top to bottom within the first column, then the next column.
    assert boxes[0].x == boxes[1].x == 0 and boxes[1].y == 0.5 and boxes[2].x == 0.5 and boxes[2].height == 1.0
    assert DisplayFormat.parse("row\\2,2").text == "ROW\\2,2"
    for bad in ("STANDARD\\2", "CUSTOM\\1", "STANDARD\\0,2", "SLIDE"):
        with pytest.raises(FilmError):
            DisplayFormat.parse(bad)
    formats = standard_formats()
    assert formats[0] == "STANDARD\\1,1" and "STANDARD\\4,6" in formats and len(formats) == 24


def test_fit_keeps_aspect() -> None:
    assert fit_size(512, 256, 400, 400) == (400, 200)
    assert fit_size(100, 400, 400, 400) == (100, 400)
    assert fit_size(128, 128, 375, 400) == (375, 375)


def test_multiframe_prints_frame_by_frame_and_paginates(ct_path: str, multiframe_path: str) -> None:
    items = items_for_frames([(ct_path, 1), (multiframe_path, 3)])
    assert [(i.path, i.frame) for i in items] == [(ct_path, 0)] + [(multiframe_path, f) for f in range(3)]
    job = PrintJob(items * 2, PrintPreset(display_format="STANDARD\\2,2"))
    sheets = job.sheets()
    assert len(sheets) == 2 and all(len(s.items) == 4 for s in sheets)
    job3 = PrintJob(items, PrintPreset(display_format="STANDARD\\3,1"))
    assert [sum(i is not None for i in s.items) for s in job3.sheets()] == [3, 1]


def test_box_images_fit_their_boxes_at_film_resolution(ct_path: str, mr_path: str) -> None:
    preset = PrintPreset(film_size="8INX10IN", display_format="STANDARD\\2,2", bits=12)
    job = PrintJob([PrintItem(ct_path), PrintItem(mr_path), PrintItem(ct_path)], preset)
    payload = job.box_images(job.sheets()[0])
    assert len(payload.images) == 4 and payload.images[3] is None
    for image in payload.images[:3]:
        assert image is not None and not image.is_color and image.bits == 12
        # 8x10 in at 150 dpi = 1200x1500; a 2x2 box is 600x750, the square images become 600x600.
        assert (image.width, image.height) == (600, 600)
        assert image.array.max() <= 4095 and image.array.max() > 255


def test_compatibility_mode_composes_one_image_per_film(ct_path: str) -> None:
    preset = PrintPreset(film_size="8INX10IN", display_format="STANDARD\\2,2", border_density="WHITE", dpi=50)
    job = PrintJob([PrintItem(ct_path)] * 5, preset, compatibility_single_image=True)
    payloads = list(job.payloads())
    assert len(payloads) == 2
    assert all(p.display_format == "STANDARD\\1,1" and len(p.images) == 1 for p in payloads)
    sheet = payloads[1].images[0]
    assert sheet is not None and (sheet.width, sheet.height) == (400, 500)
    # Only box 1 is filled on the second film; the rest is white border / empty-image density.
    assert sheet.array[400, 300] == 255 and sheet.array[:250, :200].min() < 255


def test_density_mapping() -> None:
    preset = PrintPreset(min_density=20, max_density=320)
    assert density_to_pvalue("BLACK", preset, 8) == 0
    assert density_to_pvalue("WHITE", preset, 12) == 4095
    assert density_to_pvalue("320", preset, 8) == 0 and density_to_pvalue("20", preset, 8) == 255
    assert 100 < density_to_pvalue("150", preset, 8) < 160


def test_resize_and_grayscale_conversion() -> None:
    ramp = np.tile(np.arange(0, 256, dtype=np.uint16), (10, 1))
    small = resize(ramp, 64, 5)
    assert small.shape == (5, 64) and small[0, 0] < small[0, -1]
    rgb = PrintPixels(np.zeros((4, 4, 3), np.uint8) + np.array([255, 0, 0], np.uint8), 8)
    gray = to_grayscale(rgb, 12)
    assert gray.bits == 12 and int(gray.array[0, 0]) == round(0.299 * 4095)


def test_preset_validation_and_round_trip() -> None:
    preset = PrintPreset(film_size="A3", bits=12, copies=2, priority="HIGH")
    preset.validate()
    assert PrintPreset.from_dict({**preset.to_dict(), "unknown": 1}) == preset
    for bad in (PrintPreset(bits=10), PrintPreset(copies=0), PrintPreset(film_size="X"), PrintPreset(priority="NOW")):
        with pytest.raises(FilmError):
            bad.validate()


def test_header_lines() -> None:
    header = FilmHeader(patient_name="Doe^Jane", patient_id="123", study_date="20240131", study_description="CT")
    assert header.lines() == ["Doe Jane  ID 123", "Study 2024-01-31  CT"]


@pytest.mark.parametrize(
    ("code", "category", "words"),
    [
        (0xB600, "warning", "memory allocation"),
        (0xB602, "warning", "empty page"),
        (0xB603, "warning", "empty film"),
        (0xB604, "warning", "shrank"),
        (0xB605, "warning", "density"),
        (0xB609, "warning", "cropped"),
        (0xB60A, "warning", "decimated"),
        (0xC602, "failure", "queue is full"),
        (0xC603, "failure", "larger than its image box"),
        (0xC605, "failure", "memory"),
        (0xC613, "failure", "composed print image"),
        (0xC616, "failure", "previous film"),
        (0x0106, "failure", "refused a value"),
        (0xB6FF, "warning", "warning"),
        (0xC6FF, "failure", "failure"),
    ],
)
def test_every_status_is_explained(code: int, category: str, words: str) -> None:
    assert status_category(code) == category
    text = explain_status(code)
    assert words in text.lower() and f"0x{code:04X}" in text


def test_printer_status_info_explained() -> None:
    assert "out of 14x17 in blue film" in explain_printer_status("WARNING", "EMPTY 14X17 BLUE")
    assert "running low on 8x10 in film" in explain_printer_status("WARNING", "LOW 8X10")
    assert "cover" in explain_printer_status("FAILURE", "COVER OPEN").lower()
    assert explain_printer_status("NORMAL", "NORMAL") == "Printer ready."
    assert "VENDOR X" in explain_printer_status("WARNING", "VENDOR X")


def test_presentation_state_is_burned_in(tmp_path, ct_path: str) -> None:
    """A GSPS made by DCMTK's dcmpsmk, set to an INVERSE Presentation LUT with dcmodify, changes the film."""
    import subprocess

    from tests.support.net import require_tool
    from viewer.print.render import render_for_print, render_with_presentation_state

    state = tmp_path / "gsps.dcm"
    subprocess.run([require_tool("dcmpsmk"), "+Vw", ct_path, str(state)], check=True, capture_output=True)
    subprocess.run(
        [require_tool("dcmodify"), "-nb", "-m", "(2050,0020)=INVERSE", str(state)], check=True, capture_output=True
    )
    plain = render_for_print(ct_path, 0, bits=12)
    burned = render_with_presentation_state(ct_path, 0, str(state), bits=12)
    assert burned.bits == 12 and not burned.is_color
    assert (burned.width, burned.height) == (plain.width, plain.height)
    # Inverse presentation: bright on plain is dark once the state is applied.
    bright = plain.array > np.percentile(plain.array, 90)
    assert burned.array[bright].mean() < plain.array[bright].mean()
    job = PrintJob([PrintItem(ct_path, presentation_state_path=str(state))], PrintPreset(dpi=20))
    payload = job.box_images(job.sheets()[0])
    assert payload.images[0] is not None
