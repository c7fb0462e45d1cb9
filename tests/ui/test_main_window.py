"""The main window: drop a folder to import it, see the study in the browser, search, thumbnails, delete, workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from viewer.core.context import AppContext
from viewer.core.demo import DEMO_PATIENT_NAME, DEMO_SERIES_UID, add_demo_study
from viewer.core.tasks import Cancelled
from viewer.ui.main_window import MainWindow
from viewer.ui.workers import Worker, run_in_background, wait_for_workers

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent


@pytest.fixture
def window(qtbot, lightbox_home: Path):
    ctx = AppContext.open(lightbox_home)
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.show()
    yield win
    wait_for_workers(10000)
    win.close()
    ctx.store.close()


def drop(widget, paths: list[Path]) -> None:
    """Drag paths over the widget and drop them, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(widget.width() // 2, widget.height() // 2)
    enter = QDragEnterEvent(
        pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    event = QDropEvent(
        QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, event)
    assert event.isAccepted()


def browser_patient_ids(win: MainWindow) -> set[str]:
    return {s.patient_id for s in win.browser.studies()}


def test_drop_folder_imports_and_study_appears(window: MainWindow, qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "dropped" / "nested"
    folder.mkdir(parents=True)
    shutil.copy(TEST_FILES / "CT_small.dcm", folder / "IMG1")
    shutil.copy(TEST_FILES / "MR_small.dcm", folder.parent / "IMG2")
    (folder / "notes.txt").write_text("not dicom")
    assert browser_patient_ids(window) == set()

    drop(window, [folder.parent])
    qtbot.waitUntil(lambda: browser_patient_ids(window) == {"1CT1", "4MR1"}, timeout=20000)
    # The tree shows them too, not just the model behind it.
    names = {window.browser.tree.topLevelItem(i).text(1) for i in range(window.browser.tree.topLevelItemCount())}
    assert names == {"1CT1", "4MR1"}
    dialog = window.import_dialogs[-1]
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=20000)
    assert (dialog.report.imported, len(dialog.report.skipped)) == (2, 1)
    assert "2 imported" in dialog.status.text()


def test_import_dialog_progress_report_and_second_import(window: MainWindow, qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "cd"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"):
        shutil.copy(TEST_FILES / name, folder / name.upper()[:8])
    (folder / "AUTORUN.INF").write_text("[autorun]")
    dialog = window.import_paths([folder])
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=20000)
    report = dialog.report
    assert (report.imported, len(report.skipped), len(report.failed)) == (3, 1, 0)
    assert dialog.bar.value() == dialog.bar.maximum() == 4
    assert "AUTORUN.INF" in dialog.details.toPlainText()
    assert dialog.close_button.isEnabled() and not dialog.cancel_button.isEnabled()
    again = window.import_paths([folder])
    qtbot.waitUntil(lambda: again.report is not None, timeout=20000)
    assert (again.report.imported, again.report.duplicates) == (0, 3)
    assert window.ctx.store.counts()["instances"] == 3


def test_search_thumbnails_open_and_delete(window: MainWindow, qtbot, monkeypatch) -> None:
    store = window.ctx.store
    store.add_file(TEST_FILES / "CT_small.dcm")
    add_demo_study(store)
    qtbot.waitUntil(lambda: len(window.browser.studies()) == 2, timeout=10000)

    window.browser.search.text.setText("DEMO")
    assert [s.patient_name for s in window.browser.studies()] == [DEMO_PATIENT_NAME]
    window.browser.search.modality.setCurrentText("MR")
    assert window.browser.studies() == []
    window.browser.search.modality.setCurrentText("CT")
    window.browser.search.text.setText("")
    assert len(window.browser.studies()) == 2

    window.browser.expand_all()
    item = window.browser.series_item(DEMO_SERIES_UID)
    assert item is not None
    qtbot.waitUntil(lambda: window.browser.has_thumbnail(DEMO_SERIES_UID), timeout=20000)
    assert not item.icon(0).isNull()

    opened: list[str] = []
    monkeypatch.setattr(window, "open_series", opened.append)
    window.browser.series_activated.disconnect()
    window.browser.series_activated.connect(window.open_series)
    window.browser.tree.itemDoubleClicked.emit(item, 0)
    assert opened == [DEMO_SERIES_UID]

    window.browser.tree.clearSelection()
    item.parent().setSelected(True)
    assert window.browser.delete_selected_studies(confirm=False) == 1
    assert [s.patient_id for s in window.browser.studies()] == ["1CT1"]
    assert store.integrity_problems() == []


def test_menus_and_hook_points(window: MainWindow) -> None:
    titles = {m.title().replace("&", "") for m in window.menuBar().findChildren(type(window.menus["File"]))}
    assert {"File", "View", "Tools", "Help"} <= titles
    file_actions = [a.text().replace("&", "") for a in window.menus["File"].actions() if a.text()]
    for wanted in ("Import…", "Import CD/DICOMDIR…", "Settings…", "Quit"):
        assert wanted in file_actions
    calls: list[str] = []
    action = window.add_tool_action("Probe", lambda: calls.append("probe"))
    action.trigger()
    assert calls == ["probe"]
    window.set_scp_status("LIGHTBOX @ 11112")
    assert window.scp_status_label.text() == "LIGHTBOX @ 11112"
    window.register_document_opener("sr", calls.append)
    result = window.ctx.store.add_file(TEST_FILES / "CT_small.dcm")
    window.open_instance(result.sop_instance_uid)  # an image: goes to the viewer, not the SR opener
    assert calls == ["probe"]


def test_workers_deliver_result_progress_error_and_cancel(qtbot) -> None:
    results: list[object] = []

    def job(n: int, progress, cancel) -> int:
        for i in range(n):
            progress(i)
        return n * 2

    # The worker is made and connected first and started inside the wait: a job started before the wait
    # is connected can finish before it, and the wait then never sees `finished`.
    worker = Worker(job, 3)
    worker.result.connect(results.append)
    worker.progress.connect(results.append)
    with qtbot.waitSignal(worker.finished):
        worker.start()
    assert results == [0, 1, 2, 6]

    errors: list[BaseException] = []

    def boom() -> None:
        raise ValueError("bad file")

    failing = Worker(boom)
    failing.error.connect(errors.append)
    with qtbot.waitSignal(failing.finished):
        failing.start()
    assert [str(e) for e in errors] == ["bad file"]

    cancelled: list[bool] = []

    def slow(cancel) -> None:
        import time

        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.01)

    worker = run_in_background(slow, on_cancelled=lambda: cancelled.append(True), on_error=errors.append)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.cancel()
    assert cancelled == [True] and len(errors) == 1
    assert issubclass(Cancelled, Exception)
