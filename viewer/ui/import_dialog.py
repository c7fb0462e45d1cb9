"""Import progress dialog: runs the importer in a worker, shows files done / total and rate, Cancel, then the report."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.core.importer import ImportLimits, ImportReport, import_paths
from viewer.core.store import StudyStore
from viewer.core.tasks import Progress
from viewer.ui.workers import Worker, run_in_background


class ImportDialog(QDialog):
    """Non-modal: the user may keep browsing while a CD imports; closing the dialog does not stop the import."""

    import_finished = Signal(object)  # the ImportReport

    def __init__(
        self,
        store: StudyStore,
        paths: list[Path],
        parent: QWidget | None = None,
        *,
        limits: ImportLimits | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import")
        self.setObjectName("importDialog")
        self.setModal(False)
        self.resize(640, 420)
        self.store = store
        self.paths = paths
        # The same bounds as `lightbox import` (AppContext.import_limits): the settings' largest object.
        self.limits = limits
        self.report: ImportReport | None = None
        self.worker: Worker | None = None
        names = ", ".join(p.name or str(p) for p in paths[:3]) + (" …" if len(paths) > 3 else "")
        self.title = QLabel(f"Importing {names}")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the total is known
        self.status = QLabel("Looking for files…")
        self.details = QPlainTextEdit(readOnly=True)
        self.details.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.buttons = QDialogButtonBox()
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.close_button.setEnabled(False)
        self.close_button.clicked.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.buttons)

    def start(self) -> Worker:
        self.worker = run_in_background(
            import_paths,
            self.store,
            self.paths,
            limits=self.limits,
            on_progress=self._progress,
            on_result=self._finished,
            on_error=self._failed,
        )
        return self.worker

    def cancel(self) -> None:
        if self.worker is not None and self.report is None:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling…")

    @property
    def running(self) -> bool:
        return self.worker is not None and self.report is None

    def _progress(self, progress: Progress) -> None:
        if progress.total:
            self.bar.setRange(0, progress.total)
            self.bar.setValue(progress.done)
        self.status.setText(f"{progress.done} / {progress.total} files — {progress.rate:.0f} files/s")

    def _finished(self, report: ImportReport) -> None:
        self.report = report
        self.bar.setRange(0, max(report.total, 1))
        self.bar.setValue(report.done if report.total else 1)
        self.status.setText(report.summary())
        self.details.setPlainText(report.details())
        self.details.setVisible(True)
        self.cancel_button.setEnabled(False)
        self.close_button.setEnabled(True)
        self.setWindowTitle("Import cancelled" if report.cancelled else "Import finished")
        self.import_finished.emit(report)

    def _failed(self, exc: BaseException) -> None:
        report = ImportReport()
        report.notes.append(f"The import stopped with an error: {type(exc).__name__}: {exc}")
        self.report = report
        self.status.setText(f"Import failed: {exc}")
        self.details.setPlainText(report.details() + "\n\n" + (self.worker.traceback_text if self.worker else ""))
        self.details.setVisible(True)
        self.cancel_button.setEnabled(False)
        self.close_button.setEnabled(True)
        self.import_finished.emit(report)
