"""Query/Retrieve panel: search a PACS, browse study → series → instances, retrieve with progress and Cancel.

Every network call runs in a background worker (`viewer.ui.workers`); the panel only shows results.
Retrieved instances land in the store through our SCP (C-MOVE) or the C-GET association, so the study
browser shows them as they arrive.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.context import AppContext
from viewer.core.settings import DicomWebNode, RemoteNode
from viewer.net import scu
from viewer.net.scu import QueryMatch, RetrieveProgress, RetrieveResult
from viewer.ui import dicomweb_qr
from viewer.ui.workers import Worker, run_in_background

log = logging.getLogger(__name__)

MATCH_ROLE = Qt.ItemDataRole.UserRole + 1
LOADED_ROLE = Qt.ItemDataRole.UserRole + 2

COLUMNS = ["Patient / description", "Patient ID", "Date", "Modality", "Accession", "Number", "Images"]
MODALITIES = ["", "CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "SC", "OT", "SR", "PR", "KO", "DOC"]


def study_keys(
    *,
    patient_name: str = "",
    patient_id: str = "",
    accession: str = "",
    date_from: str = "",
    date_to: str = "",
    modality: str = "",
    description: str = "",
    referring: str = "",
) -> dict[str, str]:
    """C-FIND study keys from the search fields; a plain name gets a trailing `*` as PACS users expect."""
    keys: dict[str, str] = {}
    name = patient_name.strip()
    if name:
        keys["PatientName"] = name if any(ch in name for ch in "*?") else name + "*"
    for keyword, value in (
        ("PatientID", patient_id),
        ("AccessionNumber", accession),
        ("ModalitiesInStudy", modality),
        ("StudyDescription", description),
        ("ReferringPhysicianName", referring),
    ):
        if value.strip():
            keys[keyword] = value.strip()
    dates = scu.date_range(date_from, date_to)
    if dates:
        keys["StudyDate"] = dates
    return keys


class QueryRetrievePanel(QWidget):
    """Search fields, a study/series/instance tree, and Retrieve/Cancel with a progress bar."""

    search_finished = Signal(int)  # number of studies found
    retrieve_finished = Signal(object)  # RetrieveResult, or the NetworkError

    def __init__(self, ctx: AppContext, network: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.network = network  # NetworkService, for TLS contexts and SCP arrivals
        self.setObjectName("queryRetrievePanel")
        self._search_worker: Worker | None = None
        self._retrieve_worker: Worker | None = None
        self.progress_updates: list[RetrieveProgress] = []

        self.node_combo = QComboBox()
        self.node_combo.setObjectName("qrNode")
        self.name_edit = QLineEdit(placeholderText="DOE^J* (wildcards * ?)")
        self.id_edit = QLineEdit()
        self.accession_edit = QLineEdit()
        self.date_from_edit = QLineEdit(placeholderText="YYYYMMDD")
        self.date_to_edit = QLineEdit(placeholderText="YYYYMMDD")
        self.modality_combo = QComboBox()
        self.modality_combo.setEditable(True)
        self.modality_combo.addItems(MODALITIES)
        self.description_edit = QLineEdit()
        self.referring_edit = QLineEdit()
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.clear_button = QPushButton("Clear")

        form = QFormLayout()
        form.addRow("Archive", self.node_combo)
        form.addRow("Patient name", self.name_edit)
        form.addRow("Patient ID", self.id_edit)
        form.addRow("Accession", self.accession_edit)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from_edit)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to_edit)
        form.addRow("Study date", dates)
        form.addRow("Modality", self.modality_combo)
        form.addRow("Description", self.description_edit)
        form.addRow("Referring physician", self.referring_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.search_button)
        buttons.addWidget(self.clear_button)

        self.results = QTreeWidget()
        self.results.setObjectName("qrResults")
        self.results.setHeaderLabels(COLUMNS)
        self.results.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        self.results.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.results.itemExpanded.connect(self._expand)

        self.retrieve_button = QPushButton("Retrieve selected")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setObjectName("qrStatus")
        retrieve_row = QHBoxLayout()
        retrieve_row.addWidget(self.retrieve_button)
        retrieve_row.addWidget(self.cancel_button)
        retrieve_row.addWidget(self.progress_bar, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.results, 1)
        layout.addLayout(retrieve_row)
        layout.addWidget(self.status_label)

        self.search_button.clicked.connect(self.search)
        self.clear_button.clicked.connect(self.clear)
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        self.cancel_button.clicked.connect(self.cancel_retrieve)
        for edit in (self.name_edit, self.id_edit, self.accession_edit, self.description_edit, self.referring_edit):
            edit.returnPressed.connect(self.search)
        self.reload_nodes()

    # ------------------------------------------------------------------ nodes
    def reload_nodes(self) -> None:
        current = self.node_combo.currentText()
        self.node_combo.clear()
        for node in self.ctx.settings.nodes:
            self.node_combo.addItem(node.name or node.ae_title)
        for web_node in self.ctx.settings.dicomweb_nodes:
            self.node_combo.addItem((web_node.name or web_node.base_url) + dicomweb_qr.WEB_SUFFIX)
        if current:
            index = self.node_combo.findText(current)
            if index >= 0:
                self.node_combo.setCurrentIndex(index)
        has_nodes = self.node_combo.count() > 0
        self.search_button.setEnabled(has_nodes)
        if not has_nodes:
            self.status_label.setText("Add an archive in File ▸ Settings ▸ DICOM Nodes to search it.")

    def current_node(self) -> RemoteNode | None:
        index = self.node_combo.currentIndex()
        nodes = self.ctx.settings.nodes
        return nodes[index] if 0 <= index < len(nodes) else None

    def current_web_node(self) -> DicomWebNode | None:
        """The selected DICOMweb node (listed after the DIMSE nodes), or None for a DIMSE one."""
        index = self.node_combo.currentIndex() - len(self.ctx.settings.nodes)
        web_nodes = self.ctx.settings.dicomweb_nodes
        return web_nodes[index] if 0 <= index < len(web_nodes) else None

    def _ssl(self, node: RemoteNode):  # type: ignore[no-untyped-def]
        return self.network.client_ssl_context(node) if self.network is not None else None

    # ------------------------------------------------------------------ search
    def clear(self) -> None:
        for edit in (
            self.name_edit,
            self.id_edit,
            self.accession_edit,
            self.date_from_edit,
            self.date_to_edit,
            self.description_edit,
            self.referring_edit,
        ):
            edit.clear()
        self.modality_combo.setCurrentIndex(0)
        self.results.clear()

    def search_keys(self) -> dict[str, str]:
        return study_keys(
            patient_name=self.name_edit.text(),
            patient_id=self.id_edit.text(),
            accession=self.accession_edit.text(),
            date_from=self.date_from_edit.text(),
            date_to=self.date_to_edit.text(),
            modality=self.modality_combo.currentText(),
            description=self.description_edit.text(),
            referring=self.referring_edit.text(),
        )

    def search(self) -> None:
        web_node = self.current_web_node()
        if web_node is not None:
            dicomweb_qr.web_search(self, web_node)
            return
        node = self.current_node()
        if node is None:
            return
        if self._search_worker is not None and not self._search_worker.done:
            self._search_worker.cancel()
        self.results.clear()
        self.search_button.setEnabled(False)
        self.status_label.setText(f"Searching {node.name or node.ae_title}…")
        keys = self.search_keys()
        local = self.ctx.settings.local
        ssl_context = self._ssl(node)

        def job(cancel: Any) -> list[QueryMatch]:
            return scu.find(node, "STUDY", keys, local=local, ssl_context=ssl_context, cancel_token=cancel)

        self._search_worker = run_in_background(
            job,
            on_result=self._show_studies,
            on_error=self._search_failed,
            on_finished=lambda: self.search_button.setEnabled(True),
        )

    def _show_studies(self, matches: list[QueryMatch]) -> None:
        for match in sorted(matches, key=lambda m: m.get("StudyDate"), reverse=True):
            item = QTreeWidgetItem(
                [
                    f"{match.get('PatientName')} — {match.get('StudyDescription')}",
                    match.get("PatientID"),
                    match.get("StudyDate"),
                    match.get("ModalitiesInStudy"),
                    match.get("AccessionNumber"),
                    match.get("StudyID"),
                    match.get("NumberOfStudyRelatedInstances"),
                ]
            )
            item.setData(0, MATCH_ROLE, match)
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            self.results.addTopLevelItem(item)
        self.status_label.setText(f"{len(matches)} stud{'y' if len(matches) == 1 else 'ies'} found.")
        self.search_finished.emit(len(matches))

    def _search_failed(self, exc: BaseException) -> None:
        self.status_label.setText(str(exc))
        self.search_finished.emit(-1)

    # ------------------------------------------------------------------ expand study → series → instances
    def _expand(self, item: QTreeWidgetItem) -> None:
        if item.data(0, LOADED_ROLE):
            return
        item.setData(0, LOADED_ROLE, True)
        match: QueryMatch = item.data(0, MATCH_ROLE)
        web_node = self.current_web_node()
        if web_node is not None and match is not None:
            dicomweb_qr.web_expand(self, web_node, item, match)
            return
        node = self.current_node()
        if node is None or match is None:
            return
        level = "SERIES" if match.level == "STUDY" else "IMAGE"
        keys = {"StudyInstanceUID": match.get("StudyInstanceUID"), "PatientID": match.get("PatientID")}
        if level == "IMAGE":
            keys["SeriesInstanceUID"] = match.get("SeriesInstanceUID")
        local = self.ctx.settings.local
        ssl_context = self._ssl(node)
        patient_id = match.get("PatientID")

        def job() -> list[QueryMatch]:
            found = scu.find(node, level, keys, local=local, ssl_context=ssl_context)
            return [QueryMatch(m.level, {"PatientID": patient_id, **m.values}) for m in found]

        run_in_background(
            job,
            on_result=lambda matches: self._add_children(item, matches),
            on_error=lambda exc: self.status_label.setText(str(exc)),
        )

    def _add_children(self, parent: QTreeWidgetItem, matches: list[QueryMatch]) -> None:
        for match in sorted(
            matches,
            key=lambda m: (
                len(m.get("SeriesNumber") or m.get("InstanceNumber")),
                m.get("SeriesNumber") or m.get("InstanceNumber"),
            ),
        ):
            if match.level == "SERIES":
                texts = [
                    match.get("SeriesDescription") or "(series)",
                    "",
                    match.get("SeriesDate"),
                    match.get("Modality"),
                    "",
                    match.get("SeriesNumber"),
                    match.get("NumberOfSeriesRelatedInstances"),
                ]
            else:
                texts = [f"Instance {match.get('InstanceNumber')}", "", "", "", "", match.get("InstanceNumber"), "1"]
            child = QTreeWidgetItem(texts)
            child.setData(0, MATCH_ROLE, match)
            if match.level == "SERIES":
                child.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            parent.addChild(child)
        if not matches:
            parent.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicator)

    # ------------------------------------------------------------------ retrieve
    def selected_matches(self) -> list[QueryMatch]:
        return [m for m in (item.data(0, MATCH_ROLE) for item in self.results.selectedItems()) if m is not None]

    def retrieve_selected(self) -> None:
        web_node = self.current_web_node()
        if web_node is not None and self.selected_matches():
            dicomweb_qr.web_retrieve(self, web_node, self.selected_matches())
            return
        node = self.current_node()
        matches = self.selected_matches()
        if node is None or not matches:
            self.status_label.setText("Select one or more studies, series or instances to retrieve.")
            return
        local = self.ctx.settings.local
        store = self.ctx.store
        ssl_context = self._ssl(node)
        network = self.network
        arrivals = network.subscribe_arrivals if network is not None else None
        jobs = []
        expected_total = 0
        for match in matches:
            level = {"STUDY": "STUDY", "SERIES": "SERIES"}.get(match.level, "IMAGE")
            keys = {
                k: match.get(k)
                for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
                if match.get(k)
            }
            expected = match.count(
                {"STUDY": "NumberOfStudyRelatedInstances", "SERIES": "NumberOfSeriesRelatedInstances"}.get(level, "")
            )
            expected = 1 if level == "IMAGE" else expected
            expected_total += expected or 0
            jobs.append((level, keys, expected))

        def job(cancel: Any, progress: Any) -> list[RetrieveResult]:
            results = []
            done_before = 0
            for level, keys, expected in jobs:
                if scu.is_cancelled(cancel):
                    break

                def report(p: RetrieveProgress, offset: int = done_before) -> None:
                    progress((offset, replace(p)))

                if node.retrieve_method == "get":
                    result = scu.get(
                        node,
                        keys,
                        level,
                        store,
                        local=local,
                        ssl_context=ssl_context,
                        progress_cb=report,
                        cancel_token=cancel,
                        expected=expected,
                    )
                else:
                    result = scu.move(
                        node,
                        keys,
                        level,
                        local.ae_title,
                        local=local,
                        ssl_context=ssl_context,
                        progress_cb=report,
                        cancel_token=cancel,
                        arrivals=arrivals,
                        expected=expected,
                    )
                results.append(result)
                done_before += result.progress.done
            return results

        self.progress_updates = []
        self.progress_bar.setRange(0, max(expected_total, 1))
        self.progress_bar.setValue(0)
        self.retrieve_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status_label.setText(f"Retrieving {len(jobs)} item(s) from {node.name or node.ae_title}…")
        self._retrieve_expected = expected_total
        self._retrieve_worker = run_in_background(
            job,
            on_result=self._retrieve_done,
            on_error=self._retrieve_failed,
            on_progress=self._retrieve_progress,
            on_finished=self._retrieve_finished,
        )

    def _retrieve_progress(self, update: tuple[int, RetrieveProgress]) -> None:
        offset, p = update
        self.progress_updates.append(p)
        total = p.total
        if total and offset == 0 and len(self.selected_matches()) <= 1:
            self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(min(offset + p.done, self.progress_bar.maximum()))
        parts = [f"{p.done} received" if p.received >= p.completed else f"{p.completed} completed"]
        if p.remaining is not None:
            parts.append(f"{p.remaining} remaining")
        if p.failed:
            parts.append(f"{p.failed} failed")
        if p.warning:
            parts.append(f"{p.warning} with warnings")
        self.status_label.setText("Retrieving: " + ", ".join(parts))

    def _retrieve_done(self, results: list[RetrieveResult]) -> None:
        done = sum(r.progress.done for r in results)
        failed = sum(r.progress.failed for r in results)
        if any(r.cancelled for r in results) or (self._retrieve_worker and self._retrieve_worker.is_cancelled):
            text = f"Retrieve cancelled after {done} instance(s)."
        elif failed:
            text = f"Retrieved {done} instance(s); {failed} failed. {results[-1].message}"
        else:
            text = f"Retrieved {done} instance(s). {results[-1].message if results else ''}"
            self.progress_bar.setValue(self.progress_bar.maximum())
        self.status_label.setText(text)
        self.retrieve_finished.emit(results)

    def _retrieve_failed(self, exc: BaseException) -> None:
        self.status_label.setText(str(exc))
        self.retrieve_finished.emit(exc)

    def _retrieve_finished(self) -> None:
        self.retrieve_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def cancel_retrieve(self) -> None:
        if self._retrieve_worker is not None:
            self._retrieve_worker.cancel()
            self.status_label.setText("Cancelling (C-CANCEL sent)…")
