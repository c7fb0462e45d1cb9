"""Tag browser: every attribute of one instance (nested sequences, private tags with their creators) with search.

``TagBrowser.load(path, frame=None)``: read the file in a worker; with `frame` (0-based) of an enhanced multi-frame
image, that frame's Per-frame Functional Groups item (5200,9230)[frame] is expanded and selected, so the tags
shown are those of the frame on screen.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.documents.tags import TagNode, filter_tree, load_tags, search_tags, tags_as_text
from viewer.ui.workers import run_in_background

ROLE_PATH = Qt.ItemDataRole.UserRole + 20
COLUMNS = ("Tag", "Name", "VR", "VM", "Value", "Private creator")
PER_FRAME_GROUPS = "(5200,9230)"  # Per-frame Functional Groups Sequence (PS3.3 C.7.6.16)


class TagBrowser(QWidget):
    tags_loaded = Signal(int)  # number of top-level attributes
    load_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nodes: list[TagNode] = []
        self.error_message = ""
        self.focus_path: str | None = None
        self.search_edit = QLineEdit()
        self.search_edit.setObjectName("tagSearch")
        self.search_edit.setPlaceholderText("Search tag, keyword, name or value (e.g. 0010,0010 or PatientName)")
        self.search_edit.setClearButtonEnabled(True)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(200)
        self._debounce.timeout.connect(self.apply_filter)
        self.search_edit.textChanged.connect(lambda _t: self._debounce.start())
        self.status = QLabel()
        copy_button = QPushButton("Copy")
        copy_button.clicked.connect(self.copy_text)
        bar = QHBoxLayout()
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.status)
        bar.addWidget(copy_button)
        self.tree = QTreeWidget()
        self.tree.setObjectName("tagTree")
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setColumnWidth(0, 150)
        self.tree.setColumnWidth(1, 260)
        self.tree.setColumnWidth(4, 320)
        self.tree.setUniformRowHeights(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.tree, 1)

    def load(self, path: Path | str, frame: int | None = None) -> None:
        self.focus_path = f"{PER_FRAME_GROUPS}[{frame}]" if frame is not None else None
        self.status.setText("Reading…")
        run_in_background(load_tags, Path(path), on_result=self.set_nodes, on_error=self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.error_message = f"Cannot read the attributes: {exc}"
        self.status.setText(self.error_message)
        self.load_failed.emit(self.error_message)

    def set_nodes(self, nodes: list[TagNode]) -> None:
        self.nodes = nodes
        self.apply_filter()
        if self.focus_path is not None:
            self.select_path(self.focus_path)
        self.tags_loaded.emit(len(nodes))

    def select_path(self, path: str) -> bool:
        """Expand, select and scroll to the node at `path`; False when the instance has no such node."""
        found: list[QTreeWidgetItem] = []

        def visit(item: QTreeWidgetItem) -> None:
            if item.data(0, ROLE_PATH) == path:
                found.append(item)
                return
            for i in range(item.childCount()):
                visit(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            visit(self.tree.topLevelItem(i))
        if not found:
            return False
        item = found[0]
        parent = item.parent()
        while parent is not None:
            parent.setExpanded(True)
            parent = parent.parent()
        item.setExpanded(True)
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)
        return True

    def apply_filter(self) -> None:
        needle = self.search_edit.text().strip()
        self.tree.clear()
        shown = filter_tree(self.nodes, needle)
        self.tree.addTopLevelItems([self._item(node) for node in shown])
        if needle:
            self.tree.expandAll()
            count = len(search_tags(self.nodes, needle))
            self.status.setText(f"{count} match{'es' if count != 1 else ''}")
        else:
            self.status.setText(f"{sum(1 for root in self.nodes for _ in root.walk())} attributes")

    def _item(self, node: TagNode) -> QTreeWidgetItem:
        vm = "" if node.is_item else str(node.vm)
        item = QTreeWidgetItem([node.tag, node.name, node.vr, vm, node.value, node.private_creator])
        item.setData(0, ROLE_PATH, node.path)
        item.setToolTip(4, node.value)
        if node.keyword:
            item.setToolTip(1, node.keyword)
        for child in node.children:
            item.addChild(self._item(child))
        return item

    def visible_paths(self) -> list[str]:
        paths: list[str] = []

        def visit(item: QTreeWidgetItem) -> None:
            paths.append(item.data(0, ROLE_PATH))
            for i in range(item.childCount()):
                visit(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            visit(self.tree.topLevelItem(i))
        return paths

    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(tags_as_text(filter_tree(self.nodes, self.search_edit.text().strip())))
