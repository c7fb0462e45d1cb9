"""Embedded PDF view for Encapsulated PDF objects: pages rendered by PDFium (pypdfium2) off the GUI thread,
shown one under another in a scroll area, with zoom, page navigation, text search and "Save PDF…"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.core.tasks import CancelToken
from viewer.documents.pdf import PdfDocument, TextMatch
from viewer.ui.workers import Worker, run_in_background

ZOOMS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
_PAGE_GAP = 12


def rgba_to_qimage(array: np.ndarray) -> QImage:
    height, width = array.shape[:2]
    data = np.ascontiguousarray(array)
    return QImage(data.data, width, height, data.strides[0], QImage.Format.Format_RGBA8888).copy()


def _open(path: Path) -> PdfDocument:
    return PdfDocument.from_dicom(path)


def _render_all(pdf: PdfDocument, scale: float, progress: Callable[[object], None], cancel: CancelToken) -> None:
    for index in range(pdf.page_count):
        cancel.raise_if_cancelled()
        progress((index, pdf.render_page(index, scale)))


class PdfView(QWidget):
    document_loaded = Signal(int)  # page count
    load_failed = Signal(str)  # a message for the user
    pages_rendered = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pdf: PdfDocument | None = None
        self.error_message = ""
        self.images: dict[int, QImage] = {}
        self.matches: list[TextMatch] = []
        self.current_match = -1
        self._render_worker: Worker | None = None
        self._generation = 0

        self.page_spin = QSpinBox()
        self.page_spin.setMinimum(1)
        self.page_spin.valueChanged.connect(self.go_to_page)
        self.page_count_label = QLabel("of 0")
        self.zoom_combo = QComboBox()
        for zoom in ZOOMS:
            self.zoom_combo.addItem(f"{round(zoom * 100)} %", zoom)
        self.zoom_combo.setCurrentIndex(ZOOMS.index(1.0))
        self.zoom_combo.currentIndexChanged.connect(lambda _i: self.set_zoom(self.zoom_combo.currentData()))
        zoom_out = QPushButton("−")
        zoom_out.clicked.connect(lambda: self.zoom_combo.setCurrentIndex(max(0, self.zoom_combo.currentIndex() - 1)))
        zoom_in = QPushButton("+")
        zoom_in.clicked.connect(
            lambda: self.zoom_combo.setCurrentIndex(min(len(ZOOMS) - 1, self.zoom_combo.currentIndex() + 1))
        )
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search text")
        self.search_edit.returnPressed.connect(self.find_next)
        find_next = QPushButton("Find")
        find_next.clicked.connect(self.find_next)
        self.search_status = QLabel()
        self.save_button = QPushButton("Save PDF…")
        self.save_button.clicked.connect(self.choose_save)
        bar = QHBoxLayout()
        for widget in (QLabel("Page"), self.page_spin, self.page_count_label, zoom_out, self.zoom_combo, zoom_in):
            bar.addWidget(widget)
        bar.addSpacing(12)
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(find_next)
        bar.addWidget(self.search_status)
        bar.addWidget(self.save_button)

        self.message = QLabel()
        self.message.setObjectName("pdfMessage")
        self.message.setWordWrap(True)
        self.message.hide()
        self.pages_widget = QWidget()
        self.pages_layout = QVBoxLayout(self.pages_widget)
        self.pages_layout.setSpacing(_PAGE_GAP)
        self.pages_layout.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.page_labels: list[QLabel] = []
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.pages_widget)
        self.scroll.setWidgetResizable(True)
        self.scroll.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.scroll.verticalScrollBar().valueChanged.connect(self._scrolled)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.message)
        layout.addWidget(self.scroll, 1)
        self._controls = [
            self.page_spin,
            self.zoom_combo,
            zoom_in,
            zoom_out,
            self.search_edit,
            find_next,
            self.save_button,
        ]
        self._enable(False)

    def _enable(self, enabled: bool) -> None:
        for widget in self._controls:
            widget.setEnabled(enabled)

    @property
    def zoom(self) -> float:
        return float(self.zoom_combo.currentData())

    @property
    def page_count(self) -> int:
        return self.pdf.page_count if self.pdf is not None else 0

    # ------------------------------------------------------------------ loading
    def load(self, path: Path | str) -> None:
        """Extract and open the PDF in the background; then `document_loaded` or `load_failed`."""
        self.message.setText("Opening document…")
        self.message.show()
        run_in_background(_open, Path(path), on_result=self.set_document, on_error=self.show_error)

    def show_error(self, exc: BaseException | str) -> None:
        self.error_message = str(exc)
        self.message.setText(f"This PDF cannot be shown: {self.error_message}")
        self.message.setStyleSheet("color: #a00;")
        self.message.show()
        self._enable(False)
        self.load_failed.emit(self.error_message)

    def set_document(self, pdf: PdfDocument) -> None:
        self.pdf = pdf
        self.error_message = ""
        self.message.hide()
        self.page_spin.setMaximum(pdf.page_count)
        self.page_count_label.setText(f"of {pdf.page_count}")
        self._enable(True)
        self._build_placeholders()
        self.document_loaded.emit(pdf.page_count)
        self._render()

    def _build_placeholders(self) -> None:
        assert self.pdf is not None
        for label in self.page_labels:
            label.deleteLater()
        self.page_labels = []
        self.images = {}
        for index, (width, height) in enumerate(self.pdf.page_sizes):
            label = QLabel()
            label.setObjectName(f"pdfPage{index + 1}")
            label.setFixedSize(round(width * self.zoom), round(height * self.zoom))
            label.setStyleSheet("background: white; border: 1px solid #888;")
            self.pages_layout.addWidget(label)
            self.page_labels.append(label)

    def _render(self) -> None:
        assert self.pdf is not None
        self._generation += 1
        generation = self._generation
        if self._render_worker is not None:
            self._render_worker.cancel()
        for label, (width, height) in zip(self.page_labels, self.pdf.page_sizes):
            label.setFixedSize(round(width * self.zoom), round(height * self.zoom))
        self._render_worker = run_in_background(
            _render_all,
            self.pdf,
            self.zoom,
            on_progress=lambda page, g=generation: self._page_ready(g, page),
            on_finished=lambda g=generation: self._render_finished(g),
        )

    def _page_ready(self, generation: int, page: tuple[int, np.ndarray]) -> None:
        if generation != self._generation:
            return  # a zoom change made this rendering stale
        index, array = page
        self.images[index] = rgba_to_qimage(array)
        self._show_page(index)

    def _render_finished(self, generation: int) -> None:
        if generation == self._generation:
            self.pages_rendered.emit()

    def _show_page(self, index: int) -> None:
        image = self.images.get(index)
        if image is None or index >= len(self.page_labels):
            return
        pixmap = QPixmap.fromImage(image)
        highlights = [m for i, m in enumerate(self.matches) if m.page == index and i == self.current_match]
        if highlights:
            painter = QPainter(pixmap)
            painter.setPen(QColor(255, 120, 0))
            painter.setBrush(QColor(255, 200, 0, 90))
            for match in highlights:
                for x0, y0, x1, y1 in match.rects:
                    z = self.zoom
                    painter.drawRect(round(x0 * z), round(y0 * z), round((x1 - x0) * z), round((y1 - y0) * z))
            painter.end()
        label = self.page_labels[index]
        label.setPixmap(pixmap)
        label.setFixedSize(pixmap.size())

    # ------------------------------------------------------------------ navigation
    def set_zoom(self, zoom: float) -> None:
        index = ZOOMS.index(zoom) if zoom in ZOOMS else None
        if index is not None and self.zoom_combo.currentIndex() != index:
            self.zoom_combo.setCurrentIndex(index)  # re-enters through currentIndexChanged
            return
        if self.pdf is not None:
            self._render()

    def page_top(self, index: int) -> int:
        return self.page_labels[index].y() if index < len(self.page_labels) else 0

    def go_to_page(self, number: int) -> None:
        if 1 <= number <= len(self.page_labels):
            self.scroll.verticalScrollBar().setValue(self.page_top(number - 1))

    def _scrolled(self, value: int) -> None:
        current = 1
        for index in range(len(self.page_labels)):
            if self.page_top(index) <= value + 10:
                current = index + 1
        self.page_spin.blockSignals(True)
        self.page_spin.setValue(current)
        self.page_spin.blockSignals(False)

    # ------------------------------------------------------------------ search and save
    def search(self, text: str) -> list[TextMatch]:
        if self.pdf is None:
            return []
        self.matches = self.pdf.search(text)
        self.current_match = -1
        self.search_status.setText(f"{len(self.matches)} found" if text else "")
        return self.matches

    def find_next(self) -> TextMatch | None:
        text = self.search_edit.text()
        if not self.matches or (self.matches and self._last_query != text):
            self._last_query = text
            self.search(text)
        if not self.matches:
            return None
        previous = self.matches[self.current_match].page if self.current_match >= 0 else None
        self.current_match = (self.current_match + 1) % len(self.matches)
        match = self.matches[self.current_match]
        for page in {previous, match.page} - {None}:
            self._show_page(page)  # type: ignore[arg-type]
        top = self.page_top(match.page) + round(match.rects[0][1] * self.zoom) - 40 if match.rects else 0
        self.scroll.verticalScrollBar().setValue(max(0, top))
        self.search_status.setText(f"{self.current_match + 1} of {len(self.matches)}")
        return match

    _last_query = ""

    def choose_save(self) -> None:
        if self.pdf is None:
            return
        name = "".join(c if c.isalnum() or c in "-_ " else "_" for c in self.pdf.title).strip() or "document"
        path, _ = QFileDialog.getSaveFileName(self, "Save PDF", f"{name}.pdf", "PDF (*.pdf)")
        if path:
            try:
                self.pdf.save(path)
            except OSError as exc:
                QMessageBox.warning(self, "Save PDF", f"Could not save the PDF: {exc}")
