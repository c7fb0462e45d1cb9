"""Print takes what is on screen: the viewports' view states, composed into the image boxes.

The film and the PDF must show the presentation state the reader chose in the viewer (not the store's newest
one), the reader's window, rotation, flip, inversion, zoom and pan, the state's shutter and annotations and
the reader's measurements, composed at the box's resolution: a user zoom is scaled by box size / viewport
size (`Viewport.view_size()`), so the box shows the part of the image the viewport shows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.render.test_stack_cache_measure import make_ct_series
from tests.support.printer import PrintServer
from viewer.core.context import AppContext
from viewer.core.settings import PrinterSettings
from viewer.print.film import fit_size
from viewer.print.job import PrintPreset
from viewer.print.queue import JobState, PrintQueue, dicom_sender
from viewer.print.render import identification_font_px, identification_strip, identification_strip_height, resize
from viewer.render.displaylist import GraphicItem, TextItem, rasterize
from viewer.render.gsps_writer import GspsContent, build_gsps
from viewer.render.measure import Distance
from viewer.render.view import ViewState, compose

DPI = 80  # 8x10 in film: 640×800 px


def _state(
    headers: list[pydicom.Dataset],
    center: float,
    width: float,
    label: str,
    when: dt.datetime,
    *,
    shutter: tuple[int, int, int, int],
) -> pydicom.Dataset:
    """A grayscale state for the whole series: its own window, a rectangular shutter, a line and a text."""
    content = GspsContent(
        items=[
            GraphicItem("POLYLINE", ((8.0, 100.0), (120.0, 100.0))),
            TextItem(label.upper(), anchor=(20.0, 20.0)),
        ],
        window_center=center,
        window_width=width,
        label=label,
    )
    ps = build_gsps(headers, content, now=when)
    ps.ShutterShape = "RECTANGULAR"
    (
        ps.ShutterLeftVerticalEdge,
        ps.ShutterRightVerticalEdge,
        ps.ShutterUpperHorizontalEdge,
        ps.ShutterLowerHorizontalEdge,
    ) = shutter
    ps.ShutterPresentationValue = 0
    return ps


@pytest.fixture
def window(qtbot, tmp_path: Path, lightbox_home: Path):
    """A CT series with two states in the store, open in the viewer: the store's newest state applies by
    default, then the reader picks the older one in the viewport's presentation menu."""
    from viewer.ui.main_window import MainWindow

    ctx = AppContext.open(lightbox_home)
    (tmp_path / "ct").mkdir()
    paths = make_ct_series(tmp_path / "ct", 3)
    for path in paths:
        ctx.store.add_file(path)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    chosen = _state(headers, 40, 120, "chosen", dt.datetime(2024, 1, 2, 10, 0), shutter=(6, 118, 10, 124))
    newest = _state(headers, 0, 4000, "newest", dt.datetime(2025, 6, 1, 10, 0), shutter=(30, 90, 30, 90))
    ctx.store.add_dataset(chosen, source="test")
    ctx.store.add_dataset(newest, source="test")
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    (study,) = ctx.store.studies()
    series = [s for s in ctx.store.series_for_study(study.study_uid) if s.modality != "PR"]
    window.open_series(series[0].series_uid)
    viewport = window.viewer_area.active
    qtbot.waitUntil(lambda: viewport.stack is not None and viewport.displayed_index is not None, timeout=10000)
    newest_path = ctx.store.instance(str(newest.SOPInstanceUID)).path
    chosen_path = ctx.store.instance(str(chosen.SOPInstanceUID)).path
    qtbot.waitUntil(lambda: viewport.view_state().presentation == str(newest_path), timeout=10000)
    menu = window.viewer_area.presentation_menu(viewport)
    menu.setCurrentIndex(menu.findData(str(chosen.SOPInstanceUID)))
    qtbot.waitUntil(
        lambda: viewport.view_state().presentation == str(chosen_path) and viewport.presentation is not None,
        timeout=10000,
    )
    window.test_states = {"chosen": str(chosen_path), "newest": str(newest_path)}
    yield window
    window.viewer_area.close_cache()
    window.close()
    ctx.store.close()


def read_the_way_a_radiologist_does(viewport) -> None:
    """Everything a film used to lose: rotation, flip, inversion, the reader's window and zoom, a measurement."""
    viewport.set_rotation(90)
    viewport.set_flip(horizontal=True)
    viewport.set_invert(True)
    viewport.adjust_window(40.0, -25.0)
    viewport.set_zoom(viewport.zoom_factor() * 1.4)
    viewport.add_measurement(Distance((30.5, 40.5), (90.5, 70.5)))


def composed_for_box(state: ViewState, view_size: tuple[int, int], box: tuple[int, int]) -> np.ndarray:
    """The view state composed for an image box: the viewport's aspect ratio fitted into the box, the zoom
    scaled by box size / viewport size (the text with it), grey 8 bit (the printers here are grayscale)."""
    vw, vh = view_size
    tw, th = fit_size(vw, vh, *box)
    factor = min(tw / vw, th / vh)
    scaled = state.replace(zoom=state.zoom * factor) if state.zoom is not None else state
    rgb = rasterize(compose(scaled), tw, th, font_size=max(8, round(12 * factor))).astype(np.float64)
    # A coloured measurement on a grayscale film: its luminance (Rec. 601).
    return np.rint(rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114).astype(int)


def test_print_items_carry_the_viewport_view_state(qtbot, window) -> None:
    from viewer.ui.print_dialog import PrintDialog, open_print_dialog

    viewport = window.viewer_area.active
    read_the_way_a_radiologist_does(viewport)
    state = viewport.view_state()
    assert state.presentation == window.test_states["chosen"]
    assert state.rotation == 90 and state.flip_h and state.invert and state.zoom is not None and state.items
    dialog = open_print_dialog(window)
    assert isinstance(dialog, PrintDialog)
    (item,) = dialog.job().items
    assert item.view is not None and item.view.state == state
    assert (item.view.width, item.view.height) == viewport.view_size()
    # The whole series: the same settings on every image; the measurement only on the image it was drawn on.
    dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("series"))
    items = dialog.job().items
    assert len(items) == 3
    for index, other in enumerate(items):
        assert other.view is not None
        assert other.view.state.replace(path="", sop_instance_uid="", frame=0, items=()) == state.replace(
            path="", sop_instance_uid="", frame=0, items=()
        )
        assert bool(other.view.state.items) == (index == viewport.index)
    # Without burn-in: no annotations, overlays or measurements, the rest of the view stays.
    dialog.burn_in_check.setChecked(False)
    dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("current"))
    (bare,) = dialog.job().items
    assert bare.view is not None and not bare.view.state.items and not bare.view.state.show_annotations
    assert bare.view.state.presentation == state.presentation and bare.view.state.rotation == 90
    dialog.close()


def test_pdf_sheet_is_the_viewport_as_composed(qtbot, window, tmp_path: Path) -> None:
    from pypdf import PdfReader

    from viewer.print.pdf import write_pdf
    from viewer.ui.print_dialog import PrintDialog, open_print_dialog

    viewport = window.viewer_area.active
    read_the_way_a_radiologist_does(viewport)
    dialog = open_print_dialog(window)
    assert isinstance(dialog, PrintDialog)
    job = dialog.job()
    job.preset = PrintPreset.from_dict(
        {**job.preset.to_dict(), "film_size": "8INX10IN", "display_format": "STANDARD\\1,1", "dpi": DPI}
    )
    dialog.close()
    path = tmp_path / "film.pdf"
    assert write_pdf(job, path, dpi=DPI) == 1
    (embedded,) = PdfReader(path).pages[0].images
    sheet = np.asarray(embedded.image.convert("L")).astype(int)
    film_w, film_h = job.film_pixels
    assert sheet.shape == (film_h, film_w)
    # The box keeps room for the identification band (the PDF prints it in its page header instead).
    font_px = identification_font_px(DPI)
    strip = identification_strip_height(job.header.identification(), font_px)
    expected = composed_for_box(viewport.view_state(), viewport.view_size(), (film_w, film_h - strip))
    th, tw = expected.shape
    top, left = (film_h - th) // 2, (film_w - tw) // 2
    assert np.abs(sheet[top : top + th, left : left + tw] - expected).max() <= 2


@pytest.mark.network
def test_film_is_the_viewport_as_composed_with_the_patient_identification(
    qtbot, window, full_printer: PrintServer
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from viewer.ui.print_dialog import PrintDialog, open_print_dialog

    viewport = window.viewer_area.active
    default_view = viewport.view_state()
    read_the_way_a_radiologist_does(viewport)
    state = viewport.view_state()
    view_size = viewport.view_size()

    full_printer.clear()
    printer = PrinterSettings(
        name="ihe full",
        ae_title="IHEFULL",
        host="127.0.0.1",
        port=full_printer.port,
        film_sizes=["8INX10IN"],
        defaults=PrintPreset(film_size="8INX10IN", display_format="STANDARD\\1,1", dpi=DPI).to_dict(),
    )
    window.ctx.settings.printers = [printer]
    print_queue = PrintQueue(dicom_sender(calling_ae="LIGHTBOX"))
    try:
        dialog = open_print_dialog(window)
        assert isinstance(dialog, PrintDialog) and dialog.scope_combo.currentData() == "current"
        dialog.print_queue = print_queue
        with qtbot.waitSignal(dialog.job_finished, timeout=60000) as finished:
            assert dialog.print_to_film() is not None
        assert finished.args[0].state is JobState.DONE, finished.args[0].message
        (film,) = full_printer.hardcopy_images()
        printed = film.pixel_array.astype(int)

        # The identification: the patient's name, ID and study date, burned above the view (dcmprscp has
        # no annotation boxes).
        source = pydicom.dcmread(viewport.stack[viewport.index].path, stop_before_pixels=True)
        lines = dialog.selection.header.identification()
        assert str(source.PatientID) in lines[0] and str(source.PatientName).split("^")[0] in lines[0]
        assert f"{source.StudyDate[:4]}-{source.StudyDate[4:6]}-{source.StudyDate[6:]}" in lines[0]
        font_px = identification_font_px(DPI)
        strip = identification_strip_height(lines, font_px)
        band = identification_strip(lines, film.Columns, font_px, 8, color=False).array.astype(int)
        assert np.array_equal(printed[:strip], band)

        # The image box: the viewport's view composed for the box, within ±2 on 8 bits.
        expected = composed_for_box(state, view_size, (640, 800 - strip))
        assert printed.shape == (strip + expected.shape[0], expected.shape[1])
        assert np.abs(printed[strip:] - expected).max() <= 2
        # … which is the screen's composition resampled: the same picture at the viewport's size.
        screen = rasterize(compose(state), *view_size)[:, :, 0]
        resampled = resize(screen, expected.shape[1], expected.shape[0]).astype(int)
        assert np.abs(printed[strip:] - resampled).mean() < 6
        # … and not what print used to make: the store's newest state without the reader's settings.
        old = composed_for_box(
            default_view.replace(presentation=window.test_states["newest"]), view_size, (640, 800 - strip)
        )
        assert np.abs(printed[strip:] - old).mean() > 20

        # Whole series: three films (asked first: > 1 film), the image on screen printed the same way.
        full_printer.clear()
        dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("series"))
        assert len(dialog.job().items) == 3
        with qtbot.waitSignal(dialog.job_finished, timeout=60000) as finished:
            dialog.print_to_film()
            dialog.confirm_box.button(QMessageBox.StandardButton.Yes).click()
        assert finished.args[0].state is JobState.DONE
        films = full_printer.hardcopy_images()
        assert len(films) == 3
        same = [f for f in films if np.abs(f.pixel_array[strip:].astype(int) - expected).max() <= 2]
        assert len(same) == 1
        dialog.close()
    finally:
        print_queue.close()
