"""Settings: our own node (the SCP), the DICOM nodes we query and retrieve from, and TLS.

The Test buttons run C-ECHO and, on demand, a test C-MOVE in a background worker and explain any
failure in plain words (connection refused, rejected with reason, A801 "register LIGHTBOX …", timeouts).
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from viewer.core.context import AppContext
from viewer.core.settings import LocalNode, RemoteNode, TlsSettings
from viewer.net import scu
from viewer.ui.workers import run_in_background

QUERY_MODELS = [("Study Root", "study"), ("Patient Root", "patient")]
RETRIEVE_METHODS = [("C-MOVE to this workstation", "move"), ("C-GET", "get")]


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


def _seconds(value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(1.0, 3600.0)
    box.setDecimals(0)
    box.setSuffix(" s")
    box.setValue(value)
    return box


class LocalNodeTab(QWidget):
    def __init__(self, local: LocalNode, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.enabled = QCheckBox("Accept studies sent to this workstation (Storage SCP)")
        self.enabled.setChecked(local.enabled)
        self.ae_title = QLineEdit(local.ae_title)
        self.ae_title.setMaxLength(16)
        self.port = _spin(1, 65535, local.port)
        self.bind_address = QLineEdit(local.bind_address)
        self.restrict = QCheckBox("Only accept these calling AE titles")
        self.restrict.setChecked(local.restrict_calling_aes)
        self.allowed = QLineEdit(", ".join(local.allowed_calling_aes))
        self.allowed.setPlaceholderText("PACS, MODALITY1@10.1.2.3, …")
        self.allowed.setToolTip(
            "AE titles allowed to send to this workstation. Write AE@host (an address, a network such as "
            "10.1.2.0/24, or a host name) to accept that AE title only from that host."
        )
        self.check_called = QCheckBox("Refuse senders that do not call this workstation's AE title")
        self.check_called.setChecked(local.check_called_ae)
        self.per_host = _spin(0, 256, local.max_associations_per_host)
        self.per_host.setSpecialValueText("automatic (three quarters of max associations)")
        self.idle = _seconds(local.idle_association_s)
        self.idle.setToolTip("An association that sends no images for this long (only silence or echoes) is ended.")
        self.prefer_compressed = QCheckBox("Prefer the sender's lossless compression over uncompressed transfer")
        self.prefer_compressed.setToolTip(
            "A lossy transfer syntax is never chosen when the sender also offers a lossless one."
        )
        self.prefer_compressed.setChecked(local.prefer_compressed)
        self.max_associations = _spin(1, 256, local.max_associations)
        self.max_pdu = _spin(4096, 4 * 1024 * 1024, local.max_pdu)
        self.max_object_mb = _spin(1, 1024 * 1024, max(1, local.max_object_bytes // (1024 * 1024)))
        self.max_object_mb.setSuffix(" MiB")
        self.acse = _seconds(local.acse_timeout_s)
        self.dimse = _seconds(local.dimse_timeout_s)
        self.network = _seconds(local.network_timeout_s)
        self.sync_each = QCheckBox("Sync every received instance to disk before acknowledging it (slower)")
        self.sync_each.setToolTip(
            "Off: received instances are written safely and synced to disk together, at the end of each transfer "
            "and at least every second. On: each one is synced before the sender is told it arrived."
        )
        self.sync_each.setChecked(local.sync_each_instance)
        form = QFormLayout(self)
        form.addRow(self.enabled)
        form.addRow("AE title", self.ae_title)
        form.addRow("Port", self.port)
        form.addRow("Listen on address", self.bind_address)
        form.addRow(self.restrict)
        form.addRow("Allowed calling AEs", self.allowed)
        form.addRow(self.check_called)
        form.addRow("Max associations", self.max_associations)
        form.addRow("Max associations per host", self.per_host)
        form.addRow("Idle association limit", self.idle)
        form.addRow("Max PDU (bytes)", self.max_pdu)
        form.addRow("Max object size", self.max_object_mb)
        form.addRow("ACSE timeout", self.acse)
        form.addRow("DIMSE timeout", self.dimse)
        form.addRow("Network timeout", self.network)
        form.addRow(self.sync_each)
        form.addRow(self.prefer_compressed)

    def apply(self, local: LocalNode) -> None:
        local.enabled = self.enabled.isChecked()
        local.ae_title = self.ae_title.text().strip().upper() or "LIGHTBOX"
        local.port = self.port.value()
        local.bind_address = self.bind_address.text().strip() or "0.0.0.0"
        local.restrict_calling_aes = self.restrict.isChecked()
        local.allowed_calling_aes = [a.strip() for a in self.allowed.text().replace(";", ",").split(",") if a.strip()]
        local.max_associations = self.max_associations.value()
        local.max_pdu = self.max_pdu.value()
        local.max_object_bytes = self.max_object_mb.value() * 1024 * 1024
        local.acse_timeout_s = self.acse.value()
        local.dimse_timeout_s = self.dimse.value()
        local.network_timeout_s = self.network.value()
        local.sync_each_instance = self.sync_each.isChecked()
        local.check_called_ae = self.check_called.isChecked()
        local.max_associations_per_host = self.per_host.value()
        local.idle_association_s = self.idle.value()
        local.prefer_compressed = self.prefer_compressed.isChecked()


class NodesTab(QWidget):
    """List of remote nodes with an editor and the Test buttons."""

    def __init__(self, nodes: list[RemoteNode], dialog: SettingsDialog) -> None:
        super().__init__(dialog)
        self.dialog = dialog
        self.nodes = nodes
        self.list = QListWidget()
        self.list.setObjectName("nodeList")
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.name = QLineEdit()
        self.ae_title = QLineEdit()
        self.ae_title.setMaxLength(16)
        self.host = QLineEdit()
        self.port = _spin(1, 65535, 104)
        self.model = QComboBox()
        for text, value in QUERY_MODELS:
            self.model.addItem(text, value)
        self.method = QComboBox()
        for text, value in RETRIEVE_METHODS:
            self.method.addItem(text, value)
        self.use_tls = QCheckBox("Use TLS")
        self.test_button = QPushButton("Test (C-ECHO)")
        self.test_move_button = QPushButton("Test retrieve (C-MOVE one instance)")
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        self.test_result.setObjectName("nodeTestResult")

        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("AE title", self.ae_title)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Query model", self.model)
        form.addRow("Retrieve method", self.method)
        form.addRow(self.use_tls)
        form.addRow(self.test_button)
        form.addRow(self.test_move_button)
        form.addRow(self.test_result)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(form, 2)

        for node in nodes:
            self.list.addItem(node.name or node.ae_title)
        self.list.currentRowChanged.connect(self._show)
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        self.test_button.clicked.connect(lambda: self.test(move=False))
        self.test_move_button.clicked.connect(lambda: self.test(move=True))
        for edit in (self.name, self.ae_title, self.host):
            edit.editingFinished.connect(self._store_current)
        for signal in (self.port.valueChanged, self.model.currentIndexChanged, self.method.currentIndexChanged):
            signal.connect(self._store_current)
        self.use_tls.toggled.connect(self._store_current)
        self._current = -1
        if nodes:
            self.list.setCurrentRow(0)
        self._enable()

    def _enable(self) -> None:
        has = 0 <= self._current < len(self.nodes)
        for widget in (self.name, self.ae_title, self.host, self.port, self.model, self.method, self.use_tls):
            widget.setEnabled(has)
        self.test_button.setEnabled(has)
        self.test_move_button.setEnabled(has)
        self.remove_button.setEnabled(has)

    def _show(self, row: int) -> None:
        self._current = -1  # do not write the fields back while filling them
        if 0 <= row < len(self.nodes):
            node = self.nodes[row]
            self.name.setText(node.name)
            self.ae_title.setText(node.ae_title)
            self.host.setText(node.host)
            self.port.setValue(node.port)
            self.model.setCurrentIndex(max(0, self.model.findData(node.query_model)))
            self.method.setCurrentIndex(max(0, self.method.findData(node.retrieve_method)))
            self.use_tls.setChecked(node.use_tls)
        self._current = row
        self.test_result.setText("")
        self._enable()

    def _store_current(self, *_: Any) -> None:
        if not 0 <= self._current < len(self.nodes):
            return
        node = self.nodes[self._current]
        node.name = self.name.text().strip()
        node.ae_title = self.ae_title.text().strip()
        node.host = self.host.text().strip()
        node.port = self.port.value()
        node.query_model = self.model.currentData()
        node.retrieve_method = self.method.currentData()
        node.use_tls = self.use_tls.isChecked()
        item = self.list.item(self._current)
        if item is not None:
            item.setText(node.name or node.ae_title or "(new node)")

    def _add(self) -> None:
        self.nodes.append(RemoteNode(name="New archive", ae_title="PACS", host="127.0.0.1", port=104))
        self.list.addItem("New archive")
        self.list.setCurrentRow(len(self.nodes) - 1)

    def _remove(self) -> None:
        row = self._current
        if 0 <= row < len(self.nodes):
            self._current = -1
            del self.nodes[row]
            self.list.takeItem(row)
            self.list.setCurrentRow(min(row, len(self.nodes) - 1))
            self._show(self.list.currentRow())

    def test(self, *, move: bool) -> None:
        self._store_current()
        if not 0 <= self._current < len(self.nodes):
            return
        node = copy.deepcopy(self.nodes[self._current])
        local = copy.deepcopy(self.dialog.pending_local())
        network = self.dialog.network
        ssl_context = None
        if node.use_tls:
            try:
                from viewer.net.tls import client_context

                ssl_context = client_context(self.dialog.pending_tls())
            except Exception as exc:
                self.test_result.setText(f"TLS settings unusable: {exc}")
                return
        arrivals = network.subscribe_arrivals if network is not None else None

        def job() -> str:
            seconds = scu.echo(node, local=local, ssl_context=ssl_context)
            verdict = f"C-ECHO OK: {node.ae_title} at {node.host}:{node.port} answered in {seconds * 1000:.0f} ms."
            if move:
                verdict += " " + scu.test_move(
                    node, local.ae_title, local=local, ssl_context=ssl_context, arrivals=arrivals
                )
            return verdict

        self.test_result.setText("Testing…")
        self.test_button.setEnabled(False)
        self.test_move_button.setEnabled(False)
        run_in_background(
            job,
            on_result=self.test_result.setText,
            on_error=lambda exc: self.test_result.setText(f"Failed: {exc}"),
            on_finished=self._enable,
        )


class TlsTab(QWidget):
    def __init__(self, tls: TlsSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.enabled = QCheckBox("Use DICOM TLS for the Storage SCP (and for nodes marked 'Use TLS')")
        self.enabled.setChecked(tls.enabled)
        self.certificate = self._path_row(tls.certificate, "Certificate (PEM)")
        self.private_key = self._path_row(tls.private_key, "Private key (PEM)")
        self.ca = self._path_row(tls.ca_certificates, "CA certificates (PEM)")
        self.require_client = QCheckBox("Require a client certificate from peers")
        self.require_client.setChecked(tls.require_client_certificate)
        self.check_hostname = QCheckBox("Check that the peer certificate names the host dialled")
        self.check_hostname.setChecked(getattr(tls, "check_hostname", True))
        form = QFormLayout(self)
        form.addRow(self.enabled)
        form.addRow("Certificate", self.certificate[0])
        form.addRow("Private key", self.private_key[0])
        form.addRow("CA certificates", self.ca[0])
        form.addRow(self.require_client)
        form.addRow(self.check_hostname)

    def _path_row(self, value: str, caption: str) -> tuple[QWidget, QLineEdit]:
        holder = QWidget()
        edit = QLineEdit(value)
        browse = QPushButton("…")
        browse.clicked.connect(
            lambda: edit.setText(QFileDialog.getOpenFileName(self, caption, edit.text())[0] or edit.text())
        )
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        row.addWidget(browse)
        return holder, edit

    def apply(self, tls: TlsSettings) -> None:
        tls.enabled = self.enabled.isChecked()
        tls.certificate = self.certificate[1].text().strip()
        tls.private_key = self.private_key[1].text().strip()
        tls.ca_certificates = self.ca[1].text().strip()
        tls.require_client_certificate = self.require_client.isChecked()
        if hasattr(tls, "check_hostname"):
            tls.check_hostname = self.check_hostname.isChecked()


class SettingsDialog(QDialog):
    """Edits a copy of the settings; OK saves them and restarts the SCP when its settings changed."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None, network: Any = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.network = network if network is not None else getattr(parent, "network_service", None)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.resize(760, 520)
        self.nodes = copy.deepcopy(ctx.settings.nodes)
        self.local_tab = LocalNodeTab(ctx.settings.local, self)
        self.nodes_tab = NodesTab(self.nodes, self)
        self.tls_tab = TlsTab(ctx.settings.tls, self)
        from viewer.ui.printer_settings import PrinterSettingsWidget

        self.printers_tab = PrinterSettingsWidget(ctx.settings.printers, self, calling_ae=ctx.settings.local.ae_title)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.local_tab, "Local node")
        self.tabs.addTab(self.nodes_tab, "DICOM Nodes")
        from viewer.ui.dicomweb_settings import DicomWebNodesTab

        self.dicomweb_nodes = copy.deepcopy(ctx.settings.dicomweb_nodes)
        self.dicomweb_tab = DicomWebNodesTab(self.dicomweb_nodes, self)
        self.tabs.addTab(self.dicomweb_tab, "DICOMweb Nodes")
        self.tabs.addTab(self.tls_tab, "TLS")
        self.tabs.addTab(self.printers_tab, "Printers")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)

    def pending_local(self) -> LocalNode:
        local = copy.deepcopy(self.ctx.settings.local)
        self.local_tab.apply(local)
        return local

    def pending_tls(self) -> TlsSettings:
        tls = copy.deepcopy(self.ctx.settings.tls)
        self.tls_tab.apply(tls)
        return tls

    def accept(self) -> None:
        self.nodes_tab._store_current()
        settings = self.ctx.settings
        before = (copy.deepcopy(settings.local), copy.deepcopy(settings.tls))
        self.local_tab.apply(settings.local)
        self.tls_tab.apply(settings.tls)
        settings.nodes = self.nodes
        self.dicomweb_tab.store_current()
        settings.dicomweb_nodes = self.dicomweb_nodes
        settings.printers = self.printers_tab.printers()
        self.ctx.save_settings()
        if self.network is not None and (settings.local, settings.tls) != before:
            self.network.restart()
        for panel in (getattr(self.parent(), "qr_panel", None),):
            if panel is not None:
                panel.reload_nodes()
        super().accept()
