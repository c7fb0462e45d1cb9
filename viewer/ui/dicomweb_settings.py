"""Settings tab for DICOMweb nodes (beside the DIMSE nodes): base URL, authentication, CA bundle, timeouts, Test.

The Test runs `viewer.net.dicomweb.test_connection` in a worker and shows its plain-language verdict.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.core.settings import DicomWebNode
from viewer.net import dicomweb
from viewer.ui.workers import run_in_background

AUTH_CHOICES = (("None", "none"), ("HTTP basic (user and password)", "basic"), ("Bearer token", "bearer"))


def _seconds(value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(1.0, 3600.0)
    box.setDecimals(0)
    box.setSuffix(" s")
    box.setValue(value)
    return box


class DicomWebNodesTab(QWidget):
    """Edits a list of `DicomWebNode` in place (the dialog's copy)."""

    def __init__(self, nodes: list[DicomWebNode], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nodes = nodes
        self.list = QListWidget()
        self.list.setObjectName("dicomwebNodeList")
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.name = QLineEdit()
        self.base_url = QLineEdit()
        self.base_url.setPlaceholderText("http://pacs.example:8042/dicom-web")
        self.auth = QComboBox()
        for text, value in AUTH_CHOICES:
            self.auth.addItem(text, value)
        self.username = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.ca_bundle = QLineEdit()
        self.ca_bundle.setPlaceholderText("PEM file; empty: the system's trusted CAs")
        self.connect_timeout = _seconds(10)
        self.read_timeout = _seconds(60)
        self.any_syntax = QCheckBox("Ask for the stored transfer syntax (transfer-syntax=*)")
        self.fuzzy = QCheckBox("Fuzzy matching of names where the server offers it")
        self.test_button = QPushButton("Test")
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        self.test_result.setObjectName("dicomwebTestResult")

        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Base URL", self.base_url)
        form.addRow("Authentication", self.auth)
        form.addRow("User", self.username)
        form.addRow("Password", self.password)
        form.addRow("Token", self.token)
        form.addRow("CA bundle", self.ca_bundle)
        form.addRow("Connect timeout", self.connect_timeout)
        form.addRow("Read timeout", self.read_timeout)
        form.addRow(self.any_syntax)
        form.addRow(self.fuzzy)
        form.addRow(self.test_button)
        form.addRow(self.test_result)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(form, 2)

        for node in nodes:
            self.list.addItem(node.name or node.base_url)
        self.list.currentRowChanged.connect(self._show)
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        self.test_button.clicked.connect(self.test)
        for edit in (self.name, self.base_url, self.username, self.password, self.token, self.ca_bundle):
            edit.editingFinished.connect(self.store_current)
        self.auth.currentIndexChanged.connect(self.store_current)
        for box in (self.connect_timeout, self.read_timeout):
            box.valueChanged.connect(self.store_current)
        for check in (self.any_syntax, self.fuzzy):
            check.toggled.connect(self.store_current)
        self._current = -1
        if nodes:
            self.list.setCurrentRow(0)
        self._enable()

    def _editors(self) -> tuple[QWidget, ...]:
        return (
            self.name, self.base_url, self.auth, self.username, self.password, self.token, self.ca_bundle,
            self.connect_timeout, self.read_timeout, self.any_syntax, self.fuzzy,
        )  # fmt: skip

    def _enable(self) -> None:
        has = 0 <= self._current < len(self.nodes)
        for widget in self._editors():
            widget.setEnabled(has)
        auth = self.auth.currentData()
        self.username.setEnabled(has and auth == "basic")
        self.password.setEnabled(has and auth == "basic")
        self.token.setEnabled(has and auth == "bearer")
        self.test_button.setEnabled(has)
        self.remove_button.setEnabled(has)

    def _show(self, row: int) -> None:
        self._current = -1  # do not write the fields back while filling them
        if 0 <= row < len(self.nodes):
            node = self.nodes[row]
            self.name.setText(node.name)
            self.base_url.setText(node.base_url)
            self.auth.setCurrentIndex(max(0, self.auth.findData(node.auth)))
            self.username.setText(node.username)
            self.password.setText(node.password)
            self.token.setText(node.token)
            self.ca_bundle.setText(node.ca_bundle)
            self.connect_timeout.setValue(node.connect_timeout_s)
            self.read_timeout.setValue(node.read_timeout_s)
            self.any_syntax.setChecked(node.any_transfer_syntax)
            self.fuzzy.setChecked(node.fuzzy_matching)
        self._current = row
        self.test_result.setText("")
        self._enable()

    def store_current(self, *_: Any) -> None:
        if not 0 <= self._current < len(self.nodes):
            return
        node = self.nodes[self._current]
        node.name = self.name.text().strip()
        node.base_url = self.base_url.text().strip()
        node.auth = self.auth.currentData()
        node.username = self.username.text()
        node.password = self.password.text()
        node.token = self.token.text().strip()
        node.ca_bundle = self.ca_bundle.text().strip()
        node.connect_timeout_s = self.connect_timeout.value()
        node.read_timeout_s = self.read_timeout.value()
        node.any_transfer_syntax = self.any_syntax.isChecked()
        node.fuzzy_matching = self.fuzzy.isChecked()
        item = self.list.item(self._current)
        if item is not None:
            item.setText(node.name or node.base_url or "(new DICOMweb node)")
        self._enable()

    def _add(self) -> None:
        self.nodes.append(DicomWebNode(name="New DICOMweb archive", base_url="http://127.0.0.1:8042/dicom-web"))
        self.list.addItem("New DICOMweb archive")
        self.list.setCurrentRow(len(self.nodes) - 1)

    def _remove(self) -> None:
        row = self._current
        if 0 <= row < len(self.nodes):
            self._current = -1
            del self.nodes[row]
            self.list.takeItem(row)
            self.list.setCurrentRow(min(row, len(self.nodes) - 1))
            self._show(self.list.currentRow())

    def test(self) -> None:
        self.store_current()
        if not 0 <= self._current < len(self.nodes):
            return
        node = copy.deepcopy(self.nodes[self._current])
        self.test_result.setText("Testing…")
        self.test_button.setEnabled(False)
        run_in_background(
            dicomweb.test_connection,
            node,
            on_result=self.test_result.setText,
            on_error=lambda exc: self.test_result.setText(f"Failed: {exc}"),
            on_finished=self._enable,
        )
