"""Printing to a real DCMTK dcmprscp: film box attributes and image box pixels arrive as sent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from tests.support.printer import PrintServer
from viewer.core.settings import PrinterSettings
from viewer.print.job import FilmHeader, PrintJob, PrintPreset, items_for_frames
from viewer.print.pdf import write_pdf
from viewer.print.queue import JobState, PrintQueue, dicom_sender
from viewer.print.scu import PrintFailed, print_films

pytestmark = pytest.mark.network


def printer_for(server: PrintServer, *, color: bool = False) -> PrinterSettings:
    return PrinterSettings(
        name=server.ae_title.lower(), ae_title=server.ae_title, host="127.0.0.1", port=server.port, color=color
    )


@pytest.mark.parametrize(
    ("display_format", "orientation", "bits", "plut", "expected_box"),
    [
        # 8x10 in at 150 dpi: 1200x1500 portrait, 1500x1200 landscape; square images fill the box width.
        ("STANDARD\\1,1", "PORTRAIT", 8, False, (1200, 1200)),
        ("STANDARD\\1,1", "LANDSCAPE", 12, True, (1200, 1200)),
        ("STANDARD\\2,2", "PORTRAIT", 12, True, (600, 600)),
        ("STANDARD\\2,2", "LANDSCAPE", 8, False, (600, 600)),
        ("STANDARD\\3,4", "PORTRAIT", 8, True, (375, 375)),
        ("STANDARD\\4,3", "LANDSCAPE", 12, False, (375, 375)),
    ],
)
def test_films_arrive_with_their_attributes_and_pixels(
    full_printer: PrintServer,
    ct_path: str,
    mr_path: str,
    display_format: str,
    orientation: str,
    bits: int,
    plut: bool,
    expected_box: tuple[int, int],
) -> None:
    full_printer.clear()
    preset = PrintPreset(
        film_size="8INX10IN",
        orientation=orientation,
        display_format=display_format,
        bits=bits,
        use_presentation_lut=plut,
        magnification="NONE",
        border_density="BLACK",
        empty_image_density="WHITE",
        min_density=20,
        max_density=300,
        trim="NO",
        medium_type="BLUE FILM",
        film_destination="PROCESSOR",
        copies=2,
        priority="HIGH",
        identify_patient=False,  # box sizes below are the image alone (the identification band is tested apart)
    )
    items = items_for_frames([(ct_path, 1), (mr_path, 1)] * 3)  # 6 images
    job = PrintJob(items, preset)
    result = print_films(printer_for(full_printer), preset, job.payloads(), film_count=len(job.sheets()))

    films = len(job.sheets())
    assert result.films_printed == films and result.printer_status == "NORMAL"
    assert result.presentation_lut is plut
    stored = full_printer.stored_prints()
    assert len(stored) == films
    for sp in stored:
        box = sp.FilmBoxContentSequence[0]
        assert box.ImageDisplayFormat == display_format
        assert box.FilmOrientation == orientation
        assert box.FilmSizeID == "8INX10IN"
        assert box.MagnificationType == "NONE" and box.Trim == "NO"
        assert box.BorderDensity == "BLACK" and box.EmptyImageDensity == "WHITE"
        assert (box.MinDensity, box.MaxDensity) == (20, 300)
        assert ("ReferencedPresentationLUTSequence" in box) is plut
        if plut:
            assert sp.PresentationLUTContentSequence[0].PresentationLUTShape == "IDENTITY"
    images = full_printer.hardcopy_images()
    assert len(images) == len(items)
    for image in images:
        assert (image.Columns, image.Rows) == expected_box
        assert image.BitsStored == bits and image.PhotometricInterpretation == "MONOCHROME2"
        peak = int(image.pixel_array.max())
        assert peak <= (1 << bits) - 1 and peak > (255 if bits == 12 else 100)
    log = full_printer.log()
    assert "NumberOfCopies" in log and "HIGH" in log and "BLUE FILM" in log
    assert full_printer.dimse_messages("N-ACTION RQ") >= films


def test_multiframe_is_printed_frame_by_frame(full_printer: PrintServer, multiframe_path: str) -> None:
    full_printer.clear()
    preset = PrintPreset(film_size="8INX10IN", display_format="STANDARD\\2,2", use_presentation_lut=False)
    job = PrintJob(items_for_frames([(multiframe_path, 3)]), preset)
    result = print_films(printer_for(full_printer), preset, job.payloads())
    assert result.films_printed == 1
    images = full_printer.hardcopy_images()
    assert len(images) == 3
    # The frames differ (each was shifted), so three distinct images arrived.
    assert len({image.pixel_array.tobytes() for image in images}) == 3
    assert len(full_printer.stored_prints()[0].ImageBoxContentSequence) == 3


def test_compatibility_mode_sends_one_composed_image(full_printer: PrintServer, ct_path: str) -> None:
    full_printer.clear()
    preset = PrintPreset(film_size="8INX10IN", display_format="STANDARD\\2,2", dpi=100, bits=12)
    job = PrintJob(items_for_frames([(ct_path, 1)] * 4), preset, compatibility_single_image=True)
    print_films(printer_for(full_printer), preset, job.payloads())
    (sp,) = full_printer.stored_prints()
    assert sp.FilmBoxContentSequence[0].ImageDisplayFormat == "STANDARD\\1,1"
    (image,) = full_printer.hardcopy_images()
    assert (image.Columns, image.Rows) == (800, 1000) and image.BitsStored == 12


def test_colour_job_on_grayscale_only_printer_falls_back_with_a_warning(
    full_printer: PrintServer, rgb_path: str
) -> None:
    full_printer.clear()
    preset = PrintPreset(film_size="8INX10IN", annotation_box=True)
    job = PrintJob(items_for_frames([(rgb_path, 1)]), preset, color=True)
    result = print_films(printer_for(full_printer, color=True), preset, job.payloads(), color=True)
    assert not result.color and not result.annotation_box
    assert any("colour" in w for w in result.warnings)
    assert any("annotation" in w for w in result.warnings)
    (image,) = full_printer.hardcopy_images()
    assert image.PhotometricInterpretation == "MONOCHROME2" and image.SamplesPerPixel == 1
    # dcmprscp rejected the colour meta SOP class at association time, and never saw colour image boxes.
    assert "BasicColorImageBox" not in full_printer.log()


def test_printer_refusing_the_film_size_is_reported(small_printer: PrintServer, ct_path: str) -> None:
    preset = PrintPreset(film_size="14INX17IN", use_presentation_lut=False)
    job = PrintJob(items_for_frames([(ct_path, 1)]), preset)
    with pytest.raises(PrintFailed) as failure:
        print_films(printer_for(small_printer), preset, job.payloads())
    assert failure.value.status == 0x0106
    message = str(failure.value)
    assert "creating the film box" in message and "14INX17IN" in message and "refused a value" in message
    assert "illegal film size" in small_printer.log()


def test_restricted_printer_refuses_12_bit_images_and_prints_8_bit(small_printer: PrintServer, ct_path: str) -> None:
    small_printer.clear()
    preset = PrintPreset(film_size="8INX10IN", display_format="STANDARD\\2,2", bits=12, use_presentation_lut=False)
    job = PrintJob(items_for_frames([(ct_path, 1)] * 2), preset)
    with pytest.raises(PrintFailed) as failure:
        print_films(printer_for(small_printer), preset, job.payloads())
    assert failure.value.status == 0x0106 and "Film 1, image 1" in str(failure.value)
    assert small_printer.stored_prints() == []
    preset.bits = 8
    result = print_films(printer_for(small_printer), preset, PrintJob(job.items, preset).payloads())
    assert result.films_printed == 1
    assert [image.BitsStored for image in small_printer.hardcopy_images()] == [8, 8]


def test_print_per_session(full_printer: PrintServer, ct_path: str) -> None:
    full_printer.clear()
    preset = PrintPreset(film_size="8INX10IN", display_format="STANDARD\\1,1", print_per_session=True, dpi=50)
    job = PrintJob(items_for_frames([(ct_path, 1)] * 2), preset)
    before = full_printer.dimse_messages("N-ACTION RQ")
    result = print_films(printer_for(full_printer), preset, job.payloads())
    assert result.films_printed == 2
    assert full_printer.dimse_messages("N-ACTION RQ") == before + 1
    assert "BasicFilmSession" in full_printer.log().split("N-ACTION RQ")[-1][:400]
    assert len(full_printer.stored_prints()) == 2


def test_queue_prints_in_background_reports_failure_and_retries(
    full_printer: PrintServer, small_printer: PrintServer, ct_path: str, tmp_path: Path
) -> None:
    from viewer.core import audit

    trail = audit.install(tmp_path / "home")
    seen: list[JobState] = []
    print_queue = PrintQueue(dicom_sender(calling_ae="LIGHTBOX"))
    print_queue.subscribe(lambda status: seen.append(status.state))
    try:
        good = PrintJob(items_for_frames([(ct_path, 1)]), PrintPreset(film_size="8INX10IN", dpi=50), title="ok")
        bad = PrintJob(items_for_frames([(ct_path, 1)]), PrintPreset(film_size="A3"), title="bad")
        good_id = print_queue.submit(printer_for(full_printer), good)
        bad_id = print_queue.submit(printer_for(small_printer), bad)
        assert print_queue.wait(timeout=60)
        assert print_queue.status(good_id).state is JobState.DONE
        failed = print_queue.status(bad_id)
        assert failed.state is JobState.FAILED and "refused a value" in failed.message and failed.attempts == 1
        assert JobState.PRINTING in seen and JobState.QUEUED in seen
        print_queue.retry(bad_id)
        assert print_queue.wait(bad_id, timeout=60)
        assert print_queue.status(bad_id).state is JobState.FAILED and print_queue.status(bad_id).attempts == 2
        # Only the film that printed is in the audit trail, with the printer it went to.
        printed = [m for m in audit.read(trail.path) if m["Event"] == "printed"]
        assert len(printed) == 1
        assert any(p.get("UserID") == printer_for(full_printer).ae_title for p in printed[0]["ActiveParticipant"])
    finally:
        print_queue.close()
        audit.uninstall()


def test_unreachable_printer_fails_cleanly(ct_path: str) -> None:
    from tests.support.net import free_port

    printer = PrinterSettings(name="nowhere", ae_title="NOBODY", host="127.0.0.1", port=free_port())
    preset = PrintPreset()
    with pytest.raises(PrintFailed, match="Could not connect"):
        print_films(printer, preset, PrintJob(items_for_frames([(ct_path, 1)]), preset).payloads(), timeout_s=5)


def test_pdf_has_one_page_per_film_at_physical_size(tmp_path: Path, ct_path: str, mr_path: str) -> None:
    header = FilmHeader(patient_name="Doe^Jane", patient_id="PID-7", study_date="20240131")
    for film_size, orientation, points in [
        ("14INX17IN", "PORTRAIT", (1008.0, 1224.0)),
        ("24CMX30CM", "LANDSCAPE", (300 / 25.4 * 72, 240 / 25.4 * 72)),
    ]:
        preset = PrintPreset(film_size=film_size, orientation=orientation, display_format="STANDARD\\2,2")
        job = PrintJob(items_for_frames([(ct_path, 1), (mr_path, 1)] * 5), preset, header=header)
        path = tmp_path / f"{film_size}.pdf"
        assert write_pdf(job, path, dpi=60) == 3
        reader = PdfReader(str(path))
        assert len(reader.pages) == 3
        for page in reader.pages:
            assert float(page.mediabox.width) == pytest.approx(points[0], abs=0.5)
            assert float(page.mediabox.height) == pytest.approx(points[1], abs=0.5)
        text = reader.pages[0].extract_text()
        assert "Doe Jane" in text and "PID-7" in text and "Film 1 of 3" in text
        assert len(list(reader.pages[0].images)) == 1


def test_pixels_reach_the_printer_unchanged(full_printer: PrintServer, ct_path: str) -> None:
    """What dcmprscp stored for a box is exactly what the job rendered for it (12-bit, no resampling loss)."""
    full_printer.clear()
    preset = PrintPreset(film_size="8INX10IN", bits=12, dpi=40, use_presentation_lut=False)
    job = PrintJob(items_for_frames([(ct_path, 1)]), preset)
    (payload,) = list(job.payloads())
    print_films(printer_for(full_printer), preset, iter([payload]))
    (image,) = full_printer.hardcopy_images()
    sent = payload.burned()[0]  # dcmprscp has no annotation boxes: the identification is in the pixels
    assert sent is not None
    assert np.array_equal(image.pixel_array, sent.array)


def test_films_carry_the_patient_identification_by_default(full_printer: PrintServer, ct_path: str) -> None:
    """dcmprscp has no annotation boxes, so the name, ID and study date are burned above each image."""
    import pydicom

    from viewer.print.render import identification_font_px, identification_strip, render_for_print

    full_printer.clear()
    preset = PrintPreset(film_size="8INX10IN", display_format="STANDARD\\2,2", dpi=100, use_presentation_lut=False)
    assert preset.identify_patient  # on unless switched off
    header = FilmHeader.from_dataset(pydicom.dcmread(ct_path, stop_before_pixels=True))
    job = PrintJob(items_for_frames([(ct_path, 1)]), preset, header=header)
    print_films(printer_for(full_printer), preset, job.payloads())
    (image,) = full_printer.hardcopy_images()
    pixels = image.pixel_array.astype(int)
    lines = header.identification()
    assert "CompressedSamples CT1" in lines[0] and "ID 1CT1" in lines[0] and "Study 2004-01-19" in lines[0]
    assert "JFK IMAGING CENTER" in lines[1]
    # The box is 400 px wide; the image (a square CT) fills that width below the band.
    assert image.Columns == 400 and image.Rows > 400
    band = identification_strip(lines, 400, identification_font_px(100), 8, color=False).array
    assert image.Rows == 400 + band.shape[0]
    assert np.array_equal(pixels[: band.shape[0]], band) and (band > 128).sum() > 100
    from viewer.print.render import resize

    expected = resize(render_for_print(ct_path, 0, bits=8).array, 400, 400).astype(int)
    assert np.abs(pixels[band.shape[0] :] - expected).max() <= 1
    # Switched off, the same film has the image alone.
    full_printer.clear()
    preset.identify_patient = False
    print_films(printer_for(full_printer), preset, PrintJob(job.items, preset, header=header).payloads())
    (plain,) = full_printer.hardcopy_images()
    assert (plain.Columns, plain.Rows) == (400, 400)
