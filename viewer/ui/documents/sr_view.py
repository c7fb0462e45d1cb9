"""SR view: the report as a readable document beside its collapsible content tree.

IMAGE and SCOORD items are links; following one emits `open_image_requested(sop_instance_uid, frame, region)`
(region: `viewer.documents.sr.ImageRegion` or None) for the main window to open the image with the region marked.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.documents.sr import (
    RELATIONSHIP_LABELS,
    ContentItem,
    ImageLink,
    SRDocument,
    image_href,
    load_sr,
    parse_image_href,
    render_html,
    render_text,
)
from viewer.ui.workers import run_in_background

ROLE_LINK = Qt.ItemDataRole.UserRole + 10


class SRView(QWidget):
    open_image_requested = Signal(str, int, object)  # SOP instance UID, frame (1-based, 0 = first), region
    document_loaded = Signal(object)  # SRDocument
    load_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document: SRDocument | None = None
        self.error_message = ""
        self.title_label = QLabel()
        self.title_label.setObjectName("srTitle")
        self.title_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text = QTextBrowser()
        self.text.setObjectName("srDocument")
        self.text.setOpenLinks(False)
        self.text.anchorClicked.connect(self._anchor_clicked)
        self.tree = QTreeWidget()
        self.tree.setObjectName("srTree")
        self.tree.setHeaderLabels(["Concept", "Value", "Relationship", "Type", "Item"])
        self.tree.itemActivated.connect(self._tree_activated)
        self.tree.setColumnWidth(0, 260)
        self.tree.setColumnWidth(1, 260)
        self.export_button = QPushButton("Export report…")
        self.export_button.clicked.connect(self.choose_export)
        copy_button = QPushButton("Copy text")
        copy_button.clicked.connect(self.copy_text)
        expand = QPushButton("Expand all")
        expand.clicked.connect(self.tree.expandAll)
        collapse = QPushButton("Collapse all")
        collapse.clicked.connect(self.tree.collapseAll)
        bar = QHBoxLayout()
        bar.addWidget(self.title_label, 1)
        for button in (expand, collapse, copy_button, self.export_button):
            bar.addWidget(button)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.text)
        splitter.addWidget(self.tree)
        splitter.setSizes([600, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)
        self._set_enabled(False)

    def _set_enabled(self, enabled: bool) -> None:
        self.export_button.setEnabled(enabled)

    # ------------------------------------------------------------------ loading
    def load(self, path: Path | str) -> None:
        """Parse in the background; `document_loaded` or `load_failed` follows."""
        self.title_label.setText("Loading report…")
        run_in_background(load_sr, Path(path), on_result=self.set_document, on_error=self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.error_message = str(exc)
        self.title_label.setText(f"Cannot show this report: {exc}")
        self.text.setPlainText(self.error_message)
        self.load_failed.emit(self.error_message)

    def set_document(self, doc: SRDocument) -> None:
        self.document = doc
        self.title_label.setText(f"<b>{doc.title}</b> — {doc.class_name}")
        self.text.setHtml(render_html(doc))
        self.tree.clear()
        self.tree.addTopLevelItem(self._tree_item(doc.root))
        self.tree.expandToDepth(2)
        self._set_enabled(True)
        self.document_loaded.emit(doc)

    def _tree_item(self, item: ContentItem) -> QTreeWidgetItem:
        value = item.display_value()
        if item.problem:
            value = f"{value} [{item.problem}]".strip()
        node = QTreeWidgetItem(
            [
                item.concept_name or ("→ item " + item.referenced_position if item.is_by_reference else ""),
                value.replace("\r\n", " ").replace("\n", " "),
                RELATIONSHIP_LABELS.get(item.relationship, item.relationship),
                item.value_type or "by reference",
                item.position,
            ]
        )
        node.setToolTip(1, value)
        link = item.image_link()
        if link is not None:
            node.setData(0, ROLE_LINK, image_href(link))
            font = node.font(1)
            font.setUnderline(True)
            node.setFont(1, font)
        for child in item.children:
            node.addChild(self._tree_item(child))
        return node

    # ------------------------------------------------------------------ links
    def _anchor_clicked(self, url: QUrl) -> None:
        link = parse_image_href(url.toString())
        if link is not None:
            self.request_image(link)

    def _tree_activated(self, node: QTreeWidgetItem, _column: int) -> None:
        href = node.data(0, ROLE_LINK)
        link = parse_image_href(href) if href else None
        if link is not None:
            self.request_image(link)

    def request_image(self, link: ImageLink) -> None:
        self.open_image_requested.emit(link.sop_instance_uid, link.frame, link.region)

    # ------------------------------------------------------------------ actions
    def copy_text(self) -> None:
        if self.document is not None:
            QGuiApplication.clipboard().setText(render_text(self.document))

    def choose_export(self) -> None:
        if self.document is None:
            return
        name = "".join(c if c.isalnum() or c in "-_ " else "_" for c in self.document.title).strip() or "report"
        path, _ = QFileDialog.getSaveFileName(self, "Export report as PDF", f"{name}.pdf", "PDF (*.pdf)")
        if path:
            self.export_pdf(Path(path))

    def export_pdf(self, path: Path) -> None:
        from viewer.documents.report_pdf import export_report_pdf

        assert self.document is not None
        run_in_background(
            export_report_pdf,
            self.document,
            path,
            on_result=lambda _data: self.title_label.setText(f"<b>{self.document.title}</b> — exported to {path}"),
            on_error=lambda exc: QMessageBox.warning(self, "Export report", f"Could not export the report: {exc}"),
        )
