"""The print dialog: its preview follows the chosen layout, and printing from it reaches dcmprscp."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from pydicom.uid import generate_uid
from pypdf import PdfReader

from tests.support.printer import PrintServer
from viewer.core.settings import PrinterSettings, Settings
from viewer.print.job import PrintPreset
from viewer.print.queue import JobState, PrintQueue, dicom_sender
from viewer.print.selection import selection_for_series


@pytest.fixture
def series(store, tmp_path: Path, ct_path: str):
    """Five CT images in one stored series."""
    series_uid = generate_uid()
    uids = []
    for number in range(5):
        ds = pydicom.dcmread(ct_path)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = number + 1
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName = "Print^Test"
        store.add_dataset(ds)
        uids.append(ds.SOPInstanceUID)
    return series_uid, uids


def make_dialog(qtbot, store, series, printers: list[PrinterSettings], print_queue: PrintQueue | None = None):
    from viewer.ui.print_dialog import PrintDialog

    series_uid, uids = series
    selection = selection_for_series(store, series_uid, current=(uids[0], 0), selected=[(uids[1], 0), (uids[2], 0)])
    settings = Settings()
    settings.printers = printers
    ctx = SimpleNamespace(settings=settings)
    dialog = PrintDialog(ctx, selection, print_queue=print_queue, initial_scope="series")
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def wait_preview(qtbot, dialog) -> None:
    qtbot.waitUntil(lambda: not dialog.preview_busy and dialog.preview.image is not None, timeout=20000)


def test_preview_shows_the_chosen_layout(qtbot, store, series) -> None:
    printer = PrinterSettings(name="film", ae_title="FILM", film_sizes=["8INX10IN", "14INX17IN"])
    dialog = make_dialog(qtbot, store, series, [printer])
    dialog.film_size_combo.setCurrentText("14INX17IN")
    dialog.layout_combo.setCurrentText("STANDARD\\2,2")
    wait_preview(qtbot, dialog)
    assert len(dialog.preview.box_rects()) == 4
    assert dialog.sheet_label.text() == "Film 1 of 2"
    film = dialog.preview.film_rect()
    assert film.width() / film.height() == pytest.approx(14 / 17, rel=0.02)
    image = dialog.preview.image
    # 14x17 in at the preview's 30 dpi; every filled box shows image pixels, not the black border.
    assert (image.width(), image.height()) == (420, 510)
    for box in (0, 1, 2, 3):
        x = int((box % 2 + 0.5) * image.width() / 2)
        y = int((box // 2 + 0.5) * image.height() / 2)
        assert image.pixelColor(x, y).value() > 0
    dialog.next_button.click()
    wait_preview(qtbot, dialog)
    assert dialog.sheet_label.text() == "Film 2 of 2"
    second = dialog.preview.image
    # Only box 1 is filled on the second film: box 4 shows the empty-image density (black by default).
    assert second.pixelColor(int(0.75 * second.width()), int(0.75 * second.height())).value() == 0

    dialog.layout_combo.setCurrentText("STANDARD\\3,4")
    dialog.orientation_combo.setCurrentText("LANDSCAPE")
    wait_preview(qtbot, dialog)
    assert len(dialog.preview.box_rects()) == 12 and dialog.sheet_label.text() == "Film 1 of 1"
    assert dialog.preview.film_rect().width() > dialog.preview.film_rect().height()
    assert dialog.preview.image.width() > dialog.preview.image.height()

    dialog.layout_combo.setCurrentText("ROW\\1,2")
    wait_preview(qtbot, dialog)
    assert len(dialog.preview.box_rects()) == 3 and dialog.sheet_label.text() == "Film 1 of 2"
    dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("selected"))
    wait_preview(qtbot, dialog)
    assert dialog.sheet_label.text() == "Film 1 of 1" and len(dialog.job().items) == 2


@pytest.mark.network
def test_printing_from_the_dialog_reaches_dcmprscp(qtbot, store, series, full_printer: PrintServer) -> None:
    from PySide6.QtWidgets import QMessageBox

    full_printer.clear()
    printer = PrinterSettings(
        name="ihe full",
        ae_title="IHEFULL",
        host="127.0.0.1",
        port=full_printer.port,
        film_sizes=["8INX10IN", "14INX17IN"],
        defaults=PrintPreset(film_size="8INX10IN", display_format="STANDARD\\2,2", bits=12, dpi=60).to_dict(),
    )
    print_queue = PrintQueue(dicom_sender(calling_ae="LIGHTBOX"))
    try:
        dialog = make_dialog(qtbot, store, series, [printer], print_queue)
        assert dialog.layout_combo.currentText() == "STANDARD\\2,2" and dialog.bits_combo.currentText() == "12"
        dialog.copies_spin.setValue(2)
        with qtbot.waitSignal(dialog.job_finished, timeout=60000) as finished:
            dialog.print_button.click()
            assert dialog.confirm_box is not None and "2 films" in dialog.confirm_box.text()
            dialog.confirm_box.button(QMessageBox.StandardButton.Yes).click()
        status = finished.args[0]
        assert status.state is JobState.DONE, status.message
        assert "Printed 2 film(s)" in dialog.status_label.text()
        stored = full_printer.stored_prints()
        assert len(stored) == 2
        assert {sp.FilmBoxContentSequence[0].ImageDisplayFormat for sp in stored} == {"STANDARD\\2,2"}
        images = full_printer.hardcopy_images()
        assert len(images) == 5 and {image.BitsStored for image in images} == {12}
        assert "NumberOfCopies" in full_printer.log() and "[2]" in full_printer.log()
    finally:
        print_queue.close()


@pytest.mark.network
def test_dialog_shows_a_printer_failure_and_offers_retry(qtbot, store, series, small_printer: PrintServer) -> None:
    printer = PrinterSettings(
        name="small", ae_title="SMALLFILM", host="127.0.0.1", port=small_printer.port, film_sizes=["14INX17IN"]
    )
    print_queue = PrintQueue(dicom_sender(calling_ae="LIGHTBOX"))
    try:
        dialog = make_dialog(qtbot, store, series, [printer], print_queue)
        dialog.plut_check.setChecked(False)
        dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("current"))
        with qtbot.waitSignal(dialog.job_finished, timeout=60000) as finished:
            dialog.print_button.click()
        assert finished.args[0].state is JobState.FAILED
        text = dialog.status_label.text()
        assert "failed" in text and "refused a value" in text and "14INX17IN" in text
        assert dialog.retry_button.isEnabled()
    finally:
        print_queue.close()


def test_pdf_and_paper_output_from_the_dialog(qtbot, store, series, tmp_path: Path) -> None:
    from PySide6.QtPrintSupport import QPrinter

    from viewer.ui.print_dialog import print_job_on_paper

    dialog = make_dialog(qtbot, store, series, [])
    dialog.film_size_combo.setCurrentText("11INX14IN")
    dialog.layout_combo.setCurrentText("STANDARD\\2,2")
    pdf_path = tmp_path / "films.pdf"
    dialog.save_pdf(pdf_path)
    qtbot.waitUntil(lambda: "Saved" in dialog.status_label.text(), timeout=30000)
    reader = PdfReader(str(pdf_path))
    assert len(reader.pages) == 2
    assert float(reader.pages[0].mediabox.width) == pytest.approx(11 * 72, abs=0.5)
    assert float(reader.pages[0].mediabox.height) == pytest.approx(14 * 72, abs=0.5)

    # Paper output goes through QPrinter; a PDF-format QPrinter stands in for the system printer.
    paper = tmp_path / "paper.pdf"
    printer = QPrinter(QPrinter.PrinterMode.ScreenResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(paper))
    assert print_job_on_paper(dialog.job(), printer, dpi=40) == 2
    paper_pages = PdfReader(str(paper)).pages
    assert len(paper_pages) == 2
    assert float(paper_pages[1].mediabox.width) == pytest.approx(11 * 72, abs=1.5)
    assert float(paper_pages[1].mediabox.height) == pytest.approx(14 * 72, abs=1.5)


def test_main_window_print_action_prints_what_the_viewer_shows(qtbot, lightbox_home: Path, ct_path: str) -> None:
    from PySide6.QtGui import QAction

    from viewer.core.context import AppContext
    from viewer.ui.main_window import MainWindow
    from viewer.ui.print_dialog import PrintDialog

    ctx = AppContext.open(lightbox_home)
    try:
        series_uid = generate_uid()
        for number in range(3):
            ds = pydicom.dcmread(ct_path)
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = number + 1
            ctx.store.add_dataset(ds)
        window = MainWindow(ctx)
        qtbot.addWidget(window)
        window.open_series(series_uid)
        actions = {a.text(): a for a in window.menus["File"].actions() if isinstance(a, QAction)}
        assert "Export film sheet to P&DF…" in actions
        actions["&Print to film…"].trigger()
        dialog = window.findChild(PrintDialog)
        assert dialog is not None
        assert dialog.scope_combo.currentData() == "current" and len(dialog.job().items) == 1
        dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("series"))
        assert len(dialog.job().items) == 3
        # (That the items carry the viewports' view states is tested in test_print_views.py.)
        dialog.close()
        window.close()
    finally:
        ctx.store.close()


@pytest.mark.network
def test_enter_in_the_layout_does_not_print_and_a_multi_film_job_is_confirmed(
    qtbot, store, series, full_printer: PrintServer
) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox

    full_printer.clear()
    printer = PrinterSettings(
        name="ihe full",
        ae_title="IHEFULL",
        host="127.0.0.1",
        port=full_printer.port,
        film_sizes=["8INX10IN"],
        defaults=PrintPreset(film_size="8INX10IN", display_format="STANDARD\\1,1", dpi=40).to_dict(),
    )
    print_queue = PrintQueue(dicom_sender(calling_ae="LIGHTBOX"))
    try:
        dialog = make_dialog(qtbot, store, series, [printer], print_queue)
        assert dialog.layout_combo.isEditable()  # this printer's layouts are not configured
        dialog.layout_combo.setFocus()
        dialog.layout_combo.lineEdit().selectAll()
        qtbot.keyClicks(dialog.layout_combo.lineEdit(), "STANDARD\\1,1")
        qtbot.keyClick(dialog.layout_combo.lineEdit(), Qt.Key.Key_Return)
        assert dialog.isVisible() and dialog.confirm_box is None and print_queue.jobs() == []
        # Five images at 1 per film: five films, asked first; Cancel sends nothing.
        assert dialog.print_to_film() is None
        box = dialog.confirm_box
        assert box is not None and box.isVisible() and "5 films" in box.text()
        box.button(QMessageBox.StandardButton.Cancel).click()
        assert print_queue.jobs() == [] and dialog.confirm_box is box
        dialog.print_to_film()
        with qtbot.waitSignal(dialog.job_finished, timeout=60000) as finished:
            dialog.confirm_box.button(QMessageBox.StandardButton.Yes).click()
        assert finished.args[0].state is JobState.DONE and len(full_printer.stored_prints()) == 5
        # One film is sent without a question.
        dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("current"))
        assert dialog.print_to_film() is not None and dialog.confirm_box is None
        assert print_queue.wait(timeout=60)
    finally:
        print_queue.close()


def test_only_the_printers_layouts_and_film_sizes_are_offered(qtbot, store, series) -> None:
    from viewer.print.film import FilmError

    printer = PrinterSettings(
        name="small",
        ae_title="SMALL",
        film_sizes=["8INX10IN"],
        display_formats=["STANDARD\\1,1", "STANDARD\\2,2"],
        defaults=PrintPreset(film_size="8INX10IN", display_format="STANDARD\\3,3").to_dict(),
    )
    dialog = make_dialog(qtbot, store, series, [printer])
    assert not dialog.layout_combo.isEditable()
    assert [dialog.layout_combo.itemText(i) for i in range(dialog.layout_combo.count())] == [
        "STANDARD\\1,1",
        "STANDARD\\2,2",
    ]
    assert [dialog.film_size_combo.itemText(i) for i in range(dialog.film_size_combo.count())] == ["8INX10IN"]
    # The preset's 3,3 is not offered: the dialog shows one of the printer's own.
    assert dialog.layout_combo.currentText() in ("STANDARD\\1,1", "STANDARD\\2,2")
    assert dialog.identify_check.isChecked() and dialog.job().preset.identify_patient
    # A layout the printer does not have never reaches it, even from a stale preset.
    dialog.layout_combo.setEditable(True)
    dialog.layout_combo.setEditText("STANDARD\\3,3")
    with pytest.raises(FilmError, match="does not print the layout"):
        dialog.job()
    assert not dialog.print_button.isEnabled()
