"""Print to film / PDF / paper: printer and film choices, a WYSIWYG preview of every sheet, background printing.

The dialog only gathers choices and shows results: jobs are built by `viewer.print.job`, previews are composed
by the same code that composes films (in a worker thread), and DICOM printing runs on the app's `PrintQueue`
thread, whose status reports are marshalled to the GUI thread through a signal.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.core.settings import PrinterSettings
from viewer.print.film import FILM_SIZE_IDS, DisplayFormat, FilmError, film_size_mm, standard_formats
from viewer.print.job import FILM_DESTINATIONS, MEDIUM_TYPES, PRIORITIES, PrintJob, PrintPreset
from viewer.print.queue import JobState, JobStatus, PrintQueue, dicom_sender
from viewer.print.render import PrintPixels
from viewer.print.selection import SCOPES, PrintSelection
from viewer.ui.workers import run_in_background

log = logging.getLogger(__name__)

PREVIEW_DPI = 30
SCOPE_LABELS = {
    "current": "Current image",
    "selected": "Selected images",
    "series": "Whole series",
    "key images": "Key images",
}

_app_queues: dict[int, PrintQueue] = {}


def app_print_queue(ctx: Any) -> PrintQueue:
    """The application's one print queue (printers take one session at a time)."""
    key = id(ctx)
    if key not in _app_queues:
        settings = getattr(ctx, "settings", None)
        calling_ae = getattr(getattr(settings, "local", None), "ae_title", "LIGHTBOX")

        def ssl_context_for(printer: PrinterSettings) -> object:
            from viewer.net.tls import client_context

            return client_context(settings.tls)

        _app_queues[key] = PrintQueue(dicom_sender(calling_ae=calling_ae, ssl_context_for=ssl_context_for))
    return _app_queues[key]


def close_print_queues() -> None:
    for print_queue in _app_queues.values():
        print_queue.close()
    _app_queues.clear()


class QueueBridge(QObject):
    """Queue status reports (worker thread) → a Qt signal (GUI thread)."""

    status_changed = Signal(object)

    def __init__(self, print_queue: PrintQueue, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe = print_queue.subscribe(self.status_changed.emit)
        self.destroyed.connect(lambda *_: self._unsubscribe())

    def close(self) -> None:
        self._unsubscribe()


def to_qimage(pixels: PrintPixels) -> QImage:
    """An 8-bit QImage of print pixels (copied: the QImage owns its memory)."""
    array = pixels.array
    if pixels.is_color:
        data = np.ascontiguousarray(array.astype(np.uint8))
        h, w = data.shape[:2]
        return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    if pixels.bits != 8:
        array = np.rint(array.astype(np.float64) * 255.0 / ((1 << pixels.bits) - 1))
    data = np.ascontiguousarray(array.astype(np.uint8))
    h, w = data.shape
    return QImage(data.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


class FilmPreview(QWidget):
    """Draws one film sheet to scale: the composed image, the image box grid and the patient header."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filmPreview")
        self.setMinimumSize(260, 320)
        self.image: QImage | None = None
        self.film_mm: tuple[float, float] = (355.6, 431.8)
        self.display_format: DisplayFormat = DisplayFormat.standard(1, 1)
        self.header_lines: list[str] = []
        self.caption = ""

    def sizeHint(self) -> QSize:
        return QSize(360, 440)

    def set_sheet(
        self,
        image: QImage | None,
        film_mm: tuple[float, float],
        display_format: DisplayFormat,
        header_lines: list[str],
        caption: str,
    ) -> None:
        self.image, self.film_mm, self.display_format = image, film_mm, display_format
        self.header_lines, self.caption = header_lines, caption
        self.update()

    def film_rect(self) -> QRectF:
        """Where the film is drawn: the largest rectangle of the film's proportions that fits, centred."""
        margin = 8.0
        width, height = self.width() - 2 * margin, self.height() - 2 * margin - 16
        film_w, film_h = self.film_mm
        scale = min(width / film_w, height / film_h)
        w, h = film_w * scale, film_h * scale
        return QRectF((self.width() - w) / 2, margin + (height - h) / 2, w, h)

    def box_rects(self) -> list[QRectF]:
        """The image boxes in widget coordinates, in Image Box Position order."""
        film = self.film_rect()
        return [
            QRectF(
                film.x() + b.x * film.width(),
                film.y() + b.y * film.height(),
                b.width * film.width(),
                b.height * film.height(),
            )
            for b in self.display_format.boxes()
        ]

    def paintEvent(self, _event: Any) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        film = self.film_rect()
        painter.fillRect(film, QColor(0, 0, 0))
        if self.image is not None:
            painter.drawImage(film, self.image)
        painter.setPen(QPen(QColor(90, 140, 220), 1, Qt.PenStyle.DashLine))
        for rect in self.box_rects():
            painter.drawRect(rect)
        painter.setPen(QColor(255, 255, 255))
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, film.width() / 45))
        painter.setFont(font)
        y = film.y() + font.pointSizeF() * 1.6
        for line in self.header_lines[:2]:
            painter.drawText(int(film.x() + 6), int(y), line)
            y += font.pointSizeF() * 1.5
        painter.setPen(self.palette().windowText().color())
        painter.drawText(int(film.x()), int(film.bottom() + 14), self.caption)
        painter.end()


class PrintDialog(QDialog):
    """Print film(s) of a selection. `selection` holds the candidate images per scope (see viewer.print.selection)."""

    job_finished = Signal(object)  # JobStatus of a finished job started here

    def __init__(
        self,
        ctx: Any,
        selection: PrintSelection,
        parent: QWidget | None = None,
        *,
        print_queue: PrintQueue | None = None,
        initial_scope: str = "",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Print to film")
        self.setObjectName("printDialog")
        self.ctx = ctx
        self.selection = selection
        self.printers: list[PrinterSettings] = list(getattr(getattr(ctx, "settings", None), "printers", []) or [])
        self.print_queue = print_queue
        self.bridge: QueueBridge | None = None
        self.job_ids: list[int] = []
        self.sheet_index = 0
        self._preview_generation = 0
        self.preview_busy = False
        self.last_status: JobStatus | None = None

        self.printer_combo = QComboBox()
        for printer in self.printers:
            self.printer_combo.addItem(f"{printer.name or printer.ae_title} ({printer.host}:{printer.port})")
        self.film_size_combo = QComboBox()
        self.orientation_combo = QComboBox()
        self.orientation_combo.addItems(["PORTRAIT", "LANDSCAPE"])
        self.layout_combo = QComboBox()
        self.layout_combo.setEditable(True)  # ROW\… and COL\… formats can be typed
        self.copies_spin = QSpinBox()
        self.copies_spin.setRange(1, 99)
        self.priority_combo = QComboBox()
        self.priority_combo.addItems(list(PRIORITIES))
        self.medium_combo = QComboBox()
        self.destination_combo = QComboBox()
        self.destination_combo.setEditable(True)
        self.destination_combo.addItems(list(FILM_DESTINATIONS))
        self.bits_combo = QComboBox()
        self.bits_combo.addItems(["8", "12"])
        self.scope_combo = QComboBox()
        for scope in SCOPES:
            if scope in selection.available():
                self.scope_combo.addItem(SCOPE_LABELS[scope], scope)
        self.burn_in_check = QCheckBox("Burn in annotations, overlays and presentation state")
        self.burn_in_check.setChecked(True)
        self.plut_check = QCheckBox("Use Presentation LUT")
        self.identify_check = QCheckBox("Patient name, ID and study date on every film")
        self.identify_check.setToolTip(
            "In the printer's annotation boxes when it has them, otherwise printed above each image"
        )
        self.annotation_check = QCheckBox("Ask for the printer's annotation boxes")
        self.compat_check = QCheckBox("Compatibility: one composed image per film (STANDARD\\1,1)")

        form = QFormLayout()
        form.addRow("Printer", self.printer_combo)
        form.addRow("Images", self.scope_combo)
        form.addRow("Film size", self.film_size_combo)
        form.addRow("Orientation", self.orientation_combo)
        form.addRow("Layout", self.layout_combo)
        form.addRow("Copies", self.copies_spin)
        form.addRow("Priority", self.priority_combo)
        form.addRow("Medium", self.medium_combo)
        form.addRow("Destination", self.destination_combo)
        form.addRow("Bit depth", self.bits_combo)
        form.addRow(self.burn_in_check)
        form.addRow(self.plut_check)
        form.addRow(self.identify_check)
        form.addRow(self.annotation_check)
        form.addRow(self.compat_check)
        options = QGroupBox("Film")
        options.setLayout(form)

        self.preview = FilmPreview()
        self.previous_button = QPushButton("◀")
        self.next_button = QPushButton("▶")
        self.sheet_label = QLabel()
        self.sheet_label.setObjectName("sheetLabel")
        nav = QHBoxLayout()
        nav.addWidget(self.previous_button)
        nav.addWidget(self.sheet_label, 1, Qt.AlignmentFlag.AlignCenter)
        nav.addWidget(self.next_button)
        preview_box = QVBoxLayout()
        preview_box.addWidget(self.preview, 1)
        preview_box.addLayout(nav)

        self.status_label = QLabel("")
        self.status_label.setObjectName("printStatus")
        self.status_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setVisible(False)

        self.buttons = QDialogButtonBox()
        self.print_button = self.buttons.addButton("Print to film", QDialogButtonBox.ButtonRole.AcceptRole)
        self.pdf_button = self.buttons.addButton("Save PDF…", QDialogButtonBox.ButtonRole.ActionRole)
        self.paper_button = self.buttons.addButton("Print on paper…", QDialogButtonBox.ButtonRole.ActionRole)
        self.retry_button = self.buttons.addButton("Retry", QDialogButtonBox.ButtonRole.ActionRole)
        self.retry_button.setEnabled(False)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.print_button.setEnabled(bool(self.printers))
        # Enter in a field (the Layout text, a spin box) must not start printing: no button is the default
        # (and keyPressEvent keeps QDialogButtonBox from making the first accept button one when shown).
        for button in self.buttons.buttons():
            button.setAutoDefault(False)
            button.setDefault(False)
        self.confirm_box: QMessageBox | None = None
        self.buttons.rejected.connect(self.reject)
        self.print_button.clicked.connect(self.print_to_film)
        self.pdf_button.clicked.connect(self.choose_pdf)
        self.paper_button.clicked.connect(self.print_on_paper)
        self.retry_button.clicked.connect(self.retry_last)

        top = QHBoxLayout()
        top.addWidget(options)
        top.addLayout(preview_box, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(self.status_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.buttons)

        self.printer_combo.currentIndexChanged.connect(self._printer_changed)
        for combo in (self.film_size_combo, self.orientation_combo, self.scope_combo, self.bits_combo):
            combo.currentIndexChanged.connect(self._choices_changed)
        self.layout_combo.currentTextChanged.connect(self._choices_changed)
        self.compat_check.toggled.connect(self._choices_changed)
        self.burn_in_check.toggled.connect(self._choices_changed)
        self.identify_check.toggled.connect(self._choices_changed)
        self.destroyed.connect(self._forget_previews)
        self.previous_button.clicked.connect(lambda: self.show_sheet(self.sheet_index - 1))
        self.next_button.clicked.connect(lambda: self.show_sheet(self.sheet_index + 1))

        if initial_scope:
            index = self.scope_combo.findData(initial_scope)
            if index >= 0:
                self.scope_combo.setCurrentIndex(index)
        self._printer_changed()
        if not self.printers:
            self.status_label.setText(
                "No film printers are configured (File ▸ Settings ▸ Printers); PDF and paper work."
            )

    def keyPressEvent(self, event: Any) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event.accept()  # the typed layout is already applied; printing needs the Print button
            return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------ choices
    @property
    def printer(self) -> PrinterSettings | None:
        index = self.printer_combo.currentIndex()
        return self.printers[index] if 0 <= index < len(self.printers) else None

    def _printer_changed(self) -> None:
        printer = self.printer
        preset = PrintPreset.from_dict(printer.defaults if printer else {})
        widgets = (self.film_size_combo, self.layout_combo, self.medium_combo, self.orientation_combo, self.bits_combo)
        for widget in widgets:
            widget.blockSignals(True)
        self.film_size_combo.clear()
        self.film_size_combo.addItems(
            list(printer.film_sizes) if printer and printer.film_sizes else list(FILM_SIZE_IDS)
        )
        self.layout_combo.clear()
        # A printer whose layouts are known is offered only those; typing ROW\… / COL\… is for printers
        # whose list is not configured (the printer refuses what it cannot print).
        self.layout_combo.setEditable(not (printer and printer.display_formats))
        self.layout_combo.addItems(
            list(printer.display_formats) if printer and printer.display_formats else standard_formats()
        )
        self.medium_combo.clear()
        self.medium_combo.addItems(list(printer.media) if printer and printer.media else list(MEDIUM_TYPES))
        self._select(self.film_size_combo, preset.film_size)
        self._select(self.layout_combo, preset.display_format)
        self._select(self.medium_combo, preset.medium_type)
        self._select(self.orientation_combo, preset.orientation)
        self._select(self.priority_combo, preset.priority)
        self._select(self.destination_combo, preset.film_destination)
        self.bits_combo.setCurrentText(
            "12" if preset.bits == 12 and (printer is None or printer.supports_12bit) else "8"
        )
        self.bits_combo.model().item(1).setEnabled(printer is None or printer.supports_12bit)
        self.copies_spin.setValue(preset.copies)
        self.plut_check.setChecked(
            preset.use_presentation_lut and (printer is None or printer.supports_presentation_lut)
        )
        self.plut_check.setEnabled(printer is None or printer.supports_presentation_lut)
        self.annotation_check.setChecked(preset.annotation_box)
        self.identify_check.setChecked(preset.identify_patient)
        self.compat_check.setChecked(bool(printer and printer.compatibility_single_image))
        for widget in widgets:
            widget.blockSignals(False)
        self._choices_changed()

    @staticmethod
    def _select(combo: QComboBox, text: str) -> None:
        index = combo.findText(text)
        if index >= 0:
            combo.setCurrentIndex(index)
        elif combo.isEditable() and text:
            combo.setEditText(text)

    def preset(self) -> PrintPreset:
        printer = self.printer
        base = PrintPreset.from_dict(printer.defaults if printer else {})
        return replace(
            base,
            film_size=self.film_size_combo.currentText(),
            orientation=self.orientation_combo.currentText(),
            display_format=self.layout_combo.currentText().strip(),
            copies=self.copies_spin.value(),
            priority=self.priority_combo.currentText(),
            medium_type=self.medium_combo.currentText(),
            film_destination=self.destination_combo.currentText().strip(),
            bits=int(self.bits_combo.currentText()),
            use_presentation_lut=self.plut_check.isChecked(),
            annotation_box=self.annotation_check.isChecked(),
            identify_patient=self.identify_check.isChecked(),
        )

    def job(self) -> PrintJob:
        """The job the current choices describe (raises FilmError for an impossible combination)."""
        preset = self.preset()
        preset.validate()
        _check_supported(self.printer, preset)
        scope = self.scope_combo.currentData() or "series"
        items = self.selection.items(scope, burn_in=self.burn_in_check.isChecked())
        printer = self.printer
        return PrintJob(
            items,
            preset,
            header=self.selection.header,
            compatibility_single_image=self.compat_check.isChecked(),
            color=bool(printer and printer.color),
            title=self.selection.title,
        )

    def _choices_changed(self, *_args: Any) -> None:
        self.show_sheet(0)

    # ------------------------------------------------------------------ preview
    def sheet_count(self) -> int:
        try:
            return len(self.job().sheets())
        except FilmError:
            return 0

    def show_sheet(self, index: int) -> None:
        try:
            job = self.job()
        except FilmError as exc:
            self.preview.set_sheet(None, self.preview.film_mm, self.preview.display_format, [], str(exc))
            self.sheet_label.setText("")
            self.print_button.setEnabled(False)
            return
        self.print_button.setEnabled(self.printer is not None)
        sheets = job.sheets()
        self.sheet_index = max(0, min(index, len(sheets) - 1))
        self.previous_button.setEnabled(self.sheet_index > 0)
        self.next_button.setEnabled(self.sheet_index < len(sheets) - 1)
        self.sheet_label.setText(f"Film {self.sheet_index + 1} of {len(sheets)}" if sheets else "No images")
        film_mm = film_size_mm(job.preset.film_size, job.preset.orientation)
        fmt = DisplayFormat.parse(job.preset.display_format)
        caption = f"{job.preset.film_size} {job.preset.orientation.lower()}, {fmt.text}"
        self.preview.set_sheet(None, film_mm, fmt, job.header.lines(), caption)
        if not sheets:
            return
        self._preview_generation += 1
        generation = self._preview_generation
        sheet = sheets[self.sheet_index]
        self.preview_busy = True
        run_in_background(
            job.compose,
            sheet,
            dpi=PREVIEW_DPI,
            on_result=lambda pixels: self._preview_ready(generation, pixels),
            on_error=lambda exc: self._preview_failed(generation, exc),
        )

    def _forget_previews(self, *_args: Any) -> None:
        # A preview still being composed must not touch widgets that are closing or gone.
        self._preview_generation += 1
        self.preview_busy = False

    def _preview_ready(self, generation: int, pixels: PrintPixels) -> None:
        if generation != self._preview_generation:
            return
        self.preview_busy = False
        self.preview.image = to_qimage(pixels)
        self.preview.update()

    def _preview_failed(self, generation: int, exc: BaseException) -> None:
        if generation != self._preview_generation:
            return
        self.preview_busy = False
        self.preview.caption = f"Preview failed: {exc}"
        self.preview.update()

    # ------------------------------------------------------------------ output
    def print_to_film(self) -> int | None:
        """Queue the job on the app's print queue; returns the job id (None when nothing was queued yet).

        A job of more than one film is queued only once the user confirms it (`confirm_box`): a series
        sent with the wrong layout wastes a box of film.
        """
        printer = self.printer
        if printer is None:
            return None
        try:
            job = self.job()
        except FilmError as exc:
            QMessageBox.warning(self, "Print to film", str(exc))
            return None
        if not job.items:
            self.status_label.setText("There are no images to print.")
            return None
        films = len(job.sheets())
        if films > 1:
            copies = job.preset.copies
            box = QMessageBox(
                QMessageBox.Icon.Question,
                "Print to film",
                f"This prints {films} films ({len(job.items)} images, {job.preset.display_format})"
                + (f", {copies} copies of each" if copies > 1 else "")
                + f" on {printer.name or printer.ae_title}. Print them?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                self,
            )
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.finished.connect(
                lambda result: self._submit(printer, job) if result == QMessageBox.StandardButton.Yes else None
            )
            self.confirm_box = box
            box.open()
            return None
        return self._submit(printer, job)

    def _submit(self, printer: PrinterSettings, job: PrintJob) -> int:
        self.confirm_box = None
        if self.print_queue is None:
            self.print_queue = app_print_queue(self.ctx)
        if self.bridge is None:
            self.bridge = QueueBridge(self.print_queue, self)
            self.bridge.status_changed.connect(self._job_status)
        job_id = self.print_queue.submit(printer, job)
        self.job_ids.append(job_id)
        self.status_label.setText(f"Queued {len(job.sheets())} film(s) for {printer.name or printer.ae_title}…")
        self.progress_bar.setVisible(True)
        self.progress_bar.setValue(0)
        return job_id

    def retry_last(self) -> None:
        if self.print_queue is not None and self.last_status is not None:
            self.retry_button.setEnabled(False)
            self.print_queue.retry(self.last_status.job_id)

    def _job_status(self, status: JobStatus) -> None:
        if status.job_id not in self.job_ids:
            return
        self.last_status = status
        self.progress_bar.setValue(round(status.progress * 100))
        text = f"{status.title}: {status.state.value} — {status.message}"
        if status.warnings:
            text += "\nWarnings:\n• " + "\n• ".join(status.warnings)
        if status.events:
            text += "\nPrinter: " + "; ".join(status.events[-3:])
        self.status_label.setText(text)
        self.retry_button.setEnabled(status.state is JobState.FAILED)
        if status.finished:
            self.progress_bar.setVisible(False)
            self.job_finished.emit(status)

    def choose_pdf(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export film sheet to PDF", "film.pdf", "PDF (*.pdf)")
        if path:
            self.save_pdf(Path(path))

    def save_pdf(self, path: Path) -> None:
        """Write the PDF in the background; the status line says when it is done."""
        from viewer.print.pdf import write_pdf

        try:
            job = self.job()
        except FilmError as exc:
            QMessageBox.warning(self, "Export to PDF", str(exc))
            return
        self.status_label.setText(f"Writing {path.name}…")
        run_in_background(
            write_pdf,
            job,
            path,
            on_result=lambda pages: self.status_label.setText(f"Saved {pages} film page(s) to {path}"),
            on_error=lambda exc: self.status_label.setText(f"Could not write the PDF: {exc}"),
        )

    def print_on_paper(self) -> None:
        from PySide6.QtPrintSupport import QPrintDialog, QPrinter

        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        dialog = QPrintDialog(printer, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        try:
            pages = print_job_on_paper(self.job(), printer)
        except (FilmError, RuntimeError) as exc:
            QMessageBox.warning(self, "Print on paper", str(exc))
            return
        self.status_label.setText(f"Sent {pages} page(s) to {printer.printerName() or 'the printer'}")

    def done(self, result: int) -> None:
        self._forget_previews()
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        super().done(result)


def _check_supported(printer: PrinterSettings | None, preset: PrintPreset) -> None:
    """Refuse a film size or layout the printer does not offer (from a preset, or typed), before sending."""
    if printer is None:
        return
    if printer.film_sizes and preset.film_size.upper() not in {s.upper() for s in printer.film_sizes}:
        raise FilmError(f"{printer.name or printer.ae_title} does not take {preset.film_size} film")
    if printer.display_formats:
        wanted = DisplayFormat.parse(preset.display_format).text
        offered = set()
        for text in printer.display_formats:
            try:
                offered.add(DisplayFormat.parse(text).text)
            except FilmError:
                continue
        if wanted not in offered:
            raise FilmError(f"{printer.name or printer.ae_title} does not print the layout {wanted}")


def print_job_on_paper(job: PrintJob, printer: Any, *, dpi: int = 150) -> int:
    """Draw each film on its own page of a QPrinter (system printer or PDF file), aspect kept, with header."""
    from PySide6.QtCore import QMarginsF, QSizeF
    from PySide6.QtGui import QPageLayout, QPageSize
    from PySide6.QtPrintSupport import QPrinter

    width_mm, height_mm = film_size_mm(job.preset.film_size, job.preset.orientation)
    # The page is the film itself; a paper printer scales it to its paper when it has to.
    page_size = QPageSize(
        QSizeF(width_mm, height_mm), QPageSize.Unit.Millimeter, "Film", QPageSize.SizeMatchPolicy.ExactMatch
    )
    printer.setPageLayout(QPageLayout(page_size, QPageLayout.Orientation.Portrait, QMarginsF(0, 0, 0, 0)))
    sheets = job.sheets()
    painter = QPainter()
    if not painter.begin(printer):
        raise RuntimeError("the printer could not be opened")
    try:
        for number, sheet in enumerate(sheets):
            if number:
                printer.newPage()
            composed = job.compose(sheet, dpi=dpi, burn_identification=False)  # the page header says whose
            page = QRectF(printer.pageRect(QPrinter.Unit.DevicePixel))
            header_h = page.height() * 0.03
            area = QRectF(page.x(), page.y() + header_h, page.width(), page.height() - header_h)
            image = to_qimage(composed)
            scale = min(area.width() / image.width(), area.height() / image.height())
            w, h = image.width() * scale, image.height() * scale
            target = QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)
            painter.drawImage(target, image)
            painter.setPen(QColor(0, 0, 0))
            font = QFont("Helvetica")
            font.setPixelSize(max(8, round(header_h * 0.45)))
            painter.setFont(font)
            header = "   ".join(job.header.lines()[:2]) + f"   Film {number + 1} of {len(sheets)}"
            painter.drawText(
                QRectF(page.x(), page.y(), page.width(), header_h),
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                header,
            )
    finally:
        painter.end()
    return len(sheets)


# ---------------------------------------------------------------------- main window hook
def install_print(window: Any) -> None:
    """File ▸ Print to film… / Export film sheet to PDF…, printing what the viewer shows (with its window)."""
    window.print_series_uid = ""
    area = getattr(window, "viewer_area", None)
    opened = getattr(area, "series_opened", None)
    if opened is not None:
        opened.connect(lambda uid: setattr(window, "print_series_uid", uid))
    window.add_menu_action("File", "&Print to film…", lambda: open_print_dialog(window), "Ctrl+P")
    window.add_menu_action("File", "Export film sheet to P&DF…", lambda: open_print_dialog(window, pdf=True))


def _open_store_print_dialog(window: Any, *, pdf: bool = False) -> PrintDialog | None:
    """Printing a series from the store alone, for a viewer without view states (the newest presentation
    state that applies, the viewport's window)."""
    from viewer.print.selection import selection_for_series

    area = getattr(window, "viewer_area", None)
    active = getattr(area, "active", None)
    series_uid = getattr(window, "print_series_uid", "")
    if not series_uid or active is None or getattr(active, "stack", None) is None or not len(active.stack):
        QMessageBox.information(window, "Print", "Open a series in the viewer first.")
        return None
    ref = active.stack[active.index]
    selection = selection_for_series(
        window.ctx.store, series_uid, current=(ref.sop_instance_uid, ref.frame), window=getattr(active, "voi", None)
    )
    dialog = PrintDialog(window.ctx, selection, window, initial_scope="current")
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    if pdf:
        dialog.choose_pdf()
    return dialog


def open_print_dialog(window: Any, *, pdf: bool = False) -> PrintDialog | None:
    """The print dialog for what the viewer shows: each item carries its viewport's view state, so film and
    PDF show the chosen presentation state, window, rotation, flips, inversion, zoom and pan as on screen."""
    from viewer.print.selection import selection_for_views
    from viewer.ui.export_view import series_images, shown_image

    area = getattr(window, "viewer_area", None)
    active = getattr(area, "active", None)
    current = shown_image(active) if active is not None else None
    if current is None:
        return _open_store_print_dialog(window, pdf=pdf)
    shown = [image for v in getattr(area, "visible_viewports", None) or [] if (image := shown_image(v)) is not None]
    series = series_images(active, current)
    selection = selection_for_views(
        getattr(window.ctx, "store", None),
        current,
        series=series,
        shown=shown,
        series_uid=getattr(window, "print_series_uid", ""),
    )
    dialog = PrintDialog(window.ctx, selection, window, initial_scope="current")
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    if pdf:
        dialog.choose_pdf()
    return dialog
