"""Encapsulated CDA shown as its narrative (HTML) with the raw XML one click away."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from viewer.documents.cda import CdaDocument, extract_cda
from viewer.ui.workers import run_in_background


class CdaView(QWidget):
    document_loaded = Signal(object)
    load_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document: CdaDocument | None = None
        self.error_message = ""
        self.title_label = QLabel()
        self.browser = QTextBrowser()
        self.browser.setObjectName("cdaDocument")
        self.browser.setOpenExternalLinks(False)
        self.browser.setOpenLinks(False)
        self.xml_button = QPushButton("Show XML")
        self.xml_button.setCheckable(True)
        self.xml_button.toggled.connect(self._toggle_xml)
        self.save_button = QPushButton("Save XML…")
        self.save_button.clicked.connect(self.choose_save)
        bar = QHBoxLayout()
        bar.addWidget(self.title_label, 1)
        bar.addWidget(self.xml_button)
        bar.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.browser, 1)

    def load(self, path: Path | str) -> None:
        self.title_label.setText("Opening document…")
        run_in_background(extract_cda, Path(path), on_result=self.set_document, on_error=self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.error_message = str(exc)
        self.title_label.setText(f"This CDA document cannot be shown: {exc}")
        self.load_failed.emit(self.error_message)

    def set_document(self, doc: CdaDocument) -> None:
        self.document = doc
        self.title_label.setText(f"<b>{doc.title}</b> — HL7 CDA")
        self._toggle_xml(self.xml_button.isChecked())
        self.document_loaded.emit(doc)

    def _toggle_xml(self, show_xml: bool) -> None:
        if self.document is None:
            return
        if show_xml:
            self.browser.setPlainText(self.document.xml)
        else:
            self.browser.setHtml(self.document.to_html())

    def choose_save(self) -> None:
        if self.document is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save CDA XML", "document.xml", "XML (*.xml)")
        if path:
            try:
                Path(path).write_text(self.document.xml, encoding="utf-8")
            except OSError as exc:
                QMessageBox.warning(self, "Save XML", f"Could not save: {exc}")
