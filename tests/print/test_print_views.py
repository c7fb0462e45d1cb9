"""Print takes what is on screen: the viewports' view states, composed, resampled into the image boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

# The view model (viewer.render.view: ViewState, compose) is what these tests hold print and export to.
pytest.importorskip("viewer.render.view")

from tests.render.test_stack_cache_measure import make_ct_series
from tests.support.printer import PrintServer
from viewer.core.context import AppContext
from viewer.core.settings import PrinterSettings
from viewer.print.job import PrintPreset
from viewer.print.queue import JobState, PrintQueue, dicom_sender


@pytest.fixture
def window(qtbot, tmp_path: Path, lightbox_home: Path):
    from viewer.ui.main_window import MainWindow

    ctx = AppContext.open(lightbox_home)
    (tmp_path / "ct").mkdir()
    for path in make_ct_series(tmp_path / "ct", 3):
        ctx.store.add_file(path)
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    (study,) = ctx.store.studies()
    (series,) = ctx.store.series_for_study(study.study_uid)
    window.open_series(series.series_uid)
    viewport = window.viewer_area.active
    qtbot.waitUntil(lambda: viewport.stack is not None and viewport.displayed_index is not None, timeout=10000)
    yield window
    window.viewer_area.close_cache()
    window.close()
    ctx.store.close()


def screen_pixels(viewport, presentation=None) -> np.ndarray:
    """The viewport's composed view, grey 8 bit (the film is grayscale)."""
    from viewer.render.displaylist import rasterize
    from viewer.render.view import compose

    width, height = viewport.view_size()
    state = viewport.view_state()
    if presentation is not None:
        state = state.replace(presentation=str(presentation))
    rgb = rasterize(compose(state, presentation=None if presentation else viewport.presentation), width, height)
    return rgb[:, :, 0].astype(np.uint16)


def _state_for(image: Path, out: Path, center: float, width: float, shutter: tuple[int, int, int, int]) -> Path:
    """A grayscale presentation state for `image` (made by DCMTK dcmpsmk) with its own window and shutter."""
    import subprocess

    from tests.support.net import require_tool

    subprocess.run([require_tool("dcmpsmk"), "-q", str(image), str(out)], check=True, timeout=60)
    ps = pydicom.dcmread(out)
    voi = pydicom.Dataset()
    voi.WindowCenter, voi.WindowWidth = center, width
    voi.ReferencedImageSequence = ps.ReferencedSeriesSequence[0].ReferencedImageSequence
    ps.SoftcopyVOILUTSequence = [voi]
    ps.ShutterShape = "RECTANGULAR"
    ps.ShutterLeftVerticalEdge, ps.ShutterRightVerticalEdge, ps.ShutterUpperHorizontalEdge = shutter[:3]
    ps.ShutterLowerHorizontalEdge = shutter[3]
    ps.ShutterPresentationValue = 0xFFFF
    ps.SOPInstanceUID = pydicom.uid.generate_uid()
    ps.file_meta.MediaStorageSOPInstanceUID = ps.SOPInstanceUID
    ps.save_as(out, enforce_file_format=True)
    return out


@pytest.mark.network
def test_film_is_the_viewport_as_composed_with_the_patient_identification(
    qtbot, window, full_printer: PrintServer
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from viewer.print.render import resize
    from viewer.ui.print_dialog import PrintDialog, open_print_dialog

    viewport = window.viewer_area.active
    image = Path(viewport.stack[viewport.index].path)
    # Two states for the image: the store's newest one (what print used to take) and the one the reader
    # chooses in the viewer, with another window and shutter.
    chosen = _state_for(image, window.ctx.home / "chosen.dcm", 40, 80, (2, 50, 3, 60))
    newest = _state_for(image, window.ctx.home / "newest.dcm", 0, 4000, (10, 30, 10, 30))
    window.ctx.store.add_file(chosen)
    window.ctx.store.add_file(newest)
    viewport.set_presentation(pydicom.dcmread(chosen), str(chosen), reset_view=True)
    assert viewport.presentation is not None
    before = screen_pixels(viewport)
    assert not np.array_equal(before, screen_pixels(viewport, newest))
    # The reading state a film used to lose: rotation, flip, inversion and the user's window.
    viewport.set_rotation(90)
    viewport.set_flip(horizontal=True)
    viewport.set_invert(True)
    viewport.adjust_window(40.0, -25.0)
    expected_view = screen_pixels(viewport)
    assert not np.array_equal(before, expected_view)

    full_printer.clear()
    printer = PrinterSettings(
        name="ihe full",
        ae_title="IHEFULL",
        host="127.0.0.1",
        port=full_printer.port,
        film_sizes=["8INX10IN"],
        defaults=PrintPreset(film_size="8INX10IN", display_format="STANDARD\\1,1", dpi=80).to_dict(),
    )
    window.ctx.settings.printers = [printer]
    print_queue = PrintQueue(dicom_sender(calling_ae="LIGHTBOX"))
    try:
        dialog = open_print_dialog(window)
        assert isinstance(dialog, PrintDialog) and dialog.scope_combo.currentData() == "current"
        assert dialog.selection.scopes["current"][0].view.state == viewport.view_state()
        dialog.print_queue = print_queue
        with qtbot.waitSignal(dialog.job_finished, timeout=60000) as finished:
            assert dialog.print_to_film() is not None
        assert finished.args[0].state is JobState.DONE, finished.args[0].message
        (film,) = full_printer.hardcopy_images()
        printed = film.pixel_array.astype(int)
        # 8x10 in at 80 dpi: 640 px wide box; the view keeps the viewport's aspect ratio below the band.
        height, width = expected_view.shape
        box_w = film.Columns
        box_h = round(box_w * height / width)
        expected = resize(expected_view, box_w, box_h).astype(int)
        assert printed.shape[0] > box_h
        assert np.abs(printed[-box_h:] - expected).max() <= 2
        # Above the view: the identification band with the patient's name, ID and study date.
        source = pydicom.dcmread(viewport.stack[viewport.index].path, stop_before_pixels=True)
        lines = dialog.selection.header.identification()
        assert str(source.PatientID) in lines[0] and str(source.PatientName).split("^")[0] in lines[0]
        assert f"{source.StudyDate[:4]}-{source.StudyDate[4:6]}-{source.StudyDate[6:]}" in lines[0]
        band = printed[: printed.shape[0] - box_h]
        assert (band > 128).sum() > 50

        # Whole series: three films, each image with the viewport's settings (asked first: > 1 film).
        full_printer.clear()
        dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("series"))
        items = dialog.job().items
        assert len(items) == 3 and all(item.view is not None for item in items)
        with qtbot.waitSignal(dialog.job_finished, timeout=60000) as finished:
            dialog.print_to_film()
            dialog.confirm_box.button(QMessageBox.StandardButton.Yes).click()
        assert finished.args[0].state is JobState.DONE
        films = full_printer.hardcopy_images()
        assert len(films) == 3
        shown = [f for f in films if np.abs(f.pixel_array[-box_h:].astype(int) - expected).max() <= 2]
        assert len(shown) >= 1  # the image on screen is among them, printed the same way
        dialog.close()
    finally:
        print_queue.close()
