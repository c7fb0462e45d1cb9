"""The study browser: patients → studies → series from the local store, with search and series thumbnails."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.model import DocumentKind, Series, Study
from viewer.core.store import StudyQuery, StudyStore
from viewer.ui.workers import StoreEvents, run_in_background

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 64
MODALITIES = ["", "CT", "MR", "CR", "DX", "MG", "US", "NM", "PT", "XA", "RF", "OT", "SR", "PR", "KO", "DOC", "SC"]

# Item data roles: what a row stands for.
ROLE_KIND = Qt.ItemDataRole.UserRole
ROLE_UID = Qt.ItemDataRole.UserRole + 1


def _format_date(value: str) -> str:
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _format_name(value: str) -> str:
    # DICOM PN: family^given^middle^prefix^suffix, possibly with =ideographic=phonetic groups.
    alphabetic = value.split("=")[0]
    parts = [p for p in alphabetic.split("^") if p]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return alphabetic or value


class SearchBar(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.text = QLineEdit(placeholderText="Name, ID, accession, description (* and ? wildcards)")
        self.text.setClearButtonEnabled(True)
        self.modality = QComboBox()
        self.modality.addItems([m or "Any modality" for m in MODALITIES])
        self.use_dates = QCheckBox("Dates")
        self.date_from = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd")
        self.date_to = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd")
        today = QDate.currentDate()
        self.date_from.setDate(today.addYears(-1))
        self.date_to.setDate(today)
        for w in (self.date_from, self.date_to):
            w.setEnabled(False)
        self.use_dates.toggled.connect(self.date_from.setEnabled)
        self.use_dates.toggled.connect(self.date_to.setEnabled)
        layout.addWidget(self.text, 3)
        layout.addWidget(self.modality)
        layout.addWidget(self.use_dates)
        layout.addWidget(self.date_from)
        layout.addWidget(QLabel("–"))
        layout.addWidget(self.date_to)
        self.text.textChanged.connect(self.changed)
        self.modality.currentIndexChanged.connect(self.changed)
        self.use_dates.toggled.connect(self.changed)
        self.date_from.dateChanged.connect(self.changed)
        self.date_to.dateChanged.connect(self.changed)

    def query(self) -> StudyQuery:
        q = StudyQuery()
        text = self.text.text().strip()
        if text:
            q.text = text
        modality = MODALITIES[self.modality.currentIndex()]
        if modality:
            q.modality = modality
        if self.use_dates.isChecked():
            q.date_from = self.date_from.date().toString("yyyyMMdd")
            q.date_to = self.date_to.date().toString("yyyyMMdd")
        return q


class StudyBrowser(QWidget):
    """Tree of patients, their studies and the studies' series; double-click a series to open it."""

    series_activated = Signal(str)  # series UID
    instance_activated = Signal(str)  # SOP instance UID (documents)
    study_deleted = Signal(str)

    COLUMNS = ("Patient / Study / Series", "ID", "Date", "Modality", "Description", "Series", "Images")

    def __init__(self, store: StudyStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.search = SearchBar()
        self.tree = QTreeWidget()
        self.tree.setObjectName("studyTree")
        self.tree.setColumnCount(len(self.COLUMNS))
        self.tree.setHeaderLabels(list(self.COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setIconSize(self._icon_size())
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.itemDoubleClicked.connect(self._activated)
        self.tree.itemExpanded.connect(self._expanded)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSortingEnabled(False)
        self.summary = QLabel()
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(refresh)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.summary)
        self._thumbnail_cache: dict[str, QPixmap] = {}
        self._thumbnail_pending: set[str] = set()
        self._series_items: dict[str, QTreeWidgetItem] = {}
        self._events = StoreEvents(store, self)
        self._events.changed_debounced.connect(self.refresh)
        self.search.changed.connect(self.refresh)
        self.refresh()

    @staticmethod
    def _icon_size() -> Any:
        from PySide6.QtCore import QSize

        return QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE)

    # ------------------------------------------------------------------ model
    def studies(self) -> list[Study]:
        """The studies currently listed (after the search filter)."""
        return list(self._shown_studies)

    def refresh(self) -> None:
        expanded = self._expanded_uids()
        selected = {item.data(0, ROLE_UID) for item in self.tree.selectedItems()}
        studies = self.store.studies(self.search.query())
        self._shown_studies = studies
        self.tree.clear()
        self._series_items.clear()
        patients: dict[tuple[str, str], QTreeWidgetItem] = {}
        for study in studies:
            key = (study.patient_id, study.patient_name)
            patient_item = patients.get(key)
            if patient_item is None:
                patient_item = QTreeWidgetItem(
                    [_format_name(study.patient_name) or "(no name)", study.patient_id, _format_date(study.birth_date)]
                )
                patient_item.setData(0, ROLE_KIND, "patient")
                patient_item.setData(0, ROLE_UID, f"patient:{study.patient_id}|{study.patient_name}")
                patient_item.setToolTip(0, study.patient_name)
                self.tree.addTopLevelItem(patient_item)
                patients[key] = patient_item
            study_item = QTreeWidgetItem(
                [
                    study.study_description or "(study)",
                    study.accession_number,
                    _format_date(study.study_date),
                    "/".join(study.modalities),
                    study.study_description,
                    str(study.series_count),
                    str(study.instance_count),
                ]
            )
            study_item.setData(0, ROLE_KIND, "study")
            study_item.setData(0, ROLE_UID, study.study_uid)
            # Series are listed when the study is expanded (thumbnails are only made for what is seen).
            study_item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            patient_item.addChild(study_item)
        for item in patients.values():
            item.setExpanded(True)
        self._restore(expanded, selected)
        n_patients = len(patients)
        self.summary.setText(f"{n_patients} patient(s), {len(studies)} stud{'y' if len(studies) == 1 else 'ies'}")
        for i in range(self.tree.columnCount()):
            self.tree.resizeColumnToContents(i)

    def _expanded_uids(self) -> set[str]:
        uids = set()
        for item in self._iter_items():
            if item.isExpanded() and item.data(0, ROLE_KIND) == "study":
                uids.add(item.data(0, ROLE_UID))
        return uids

    def _restore(self, expanded: set[str], selected: set[str]) -> None:
        for item in list(self._iter_items()):
            uid = item.data(0, ROLE_UID)
            if uid in expanded:
                item.setExpanded(True)
        for item in self._iter_items():
            if item.data(0, ROLE_UID) in selected:
                item.setSelected(True)

    def _iter_items(self):
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop()
            yield item
            stack.extend(item.child(i) for i in range(item.childCount()))

    def _expanded(self, item: QTreeWidgetItem) -> None:
        if item.data(0, ROLE_KIND) != "study" or item.childCount():
            return
        for series in self.store.series_for_study(item.data(0, ROLE_UID)):
            item.addChild(self._series_item(series))

    def _series_item(self, series: Series) -> QTreeWidgetItem:
        number = "" if series.series_number is None else f"#{series.series_number} "
        label = f"{number}{series.series_description or series.modality or 'series'}"
        if series.kind != DocumentKind.IMAGE:
            label += f" [{series.kind.upper()}]"
        item = QTreeWidgetItem(["", "", _format_date(series.series_date), series.modality, label, "", ""])
        item.setText(0, label)
        item.setText(6, str(series.instance_count))
        item.setData(0, ROLE_KIND, "series")
        item.setData(0, ROLE_UID, series.series_uid)
        self._series_items[series.series_uid] = item
        if series.kind == DocumentKind.IMAGE:
            self._request_thumbnail(series.series_uid)
        return item

    def series_item(self, series_uid: str) -> QTreeWidgetItem | None:
        return self._series_items.get(series_uid)

    def expand_all(self) -> None:
        for item in list(self._iter_items()):
            item.setExpanded(True)

    # ------------------------------------------------------------------ thumbnails
    def _request_thumbnail(self, series_uid: str) -> None:
        cached = self._thumbnail_cache.get(series_uid)
        if cached is not None:
            self._apply_thumbnail(series_uid, cached)
            return
        if series_uid in self._thumbnail_pending:
            return
        self._thumbnail_pending.add(series_uid)
        from viewer.render.thumbnails import series_thumbnail

        run_in_background(
            series_thumbnail,
            self.store,
            series_uid,
            THUMBNAIL_SIZE,
            on_result=lambda pixels, uid=series_uid: self._thumbnail_ready(uid, pixels),
            on_error=lambda exc, uid=series_uid: self._thumbnail_failed(uid, exc),
        )

    def _thumbnail_failed(self, series_uid: str, exc: BaseException) -> None:
        self._thumbnail_pending.discard(series_uid)
        log.info("no thumbnail for series %s: %s", series_uid, exc)

    def _thumbnail_ready(self, series_uid: str, pixels: Any) -> None:
        self._thumbnail_pending.discard(series_uid)
        if pixels is None:
            return
        pixmap = QPixmap.fromImage(_qimage(pixels))
        self._thumbnail_cache[series_uid] = pixmap
        self._apply_thumbnail(series_uid, pixmap)

    def _apply_thumbnail(self, series_uid: str, pixmap: QPixmap) -> None:
        item = self._series_items.get(series_uid)
        if item is not None:
            try:
                item.setIcon(0, QIcon(pixmap))
            except RuntimeError:  # the tree was rebuilt while the thumbnail was being made
                pass

    def has_thumbnail(self, series_uid: str) -> bool:
        return series_uid in self._thumbnail_cache

    # ------------------------------------------------------------------ actions
    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        if item.data(0, ROLE_KIND) == "series":
            self.series_activated.emit(item.data(0, ROLE_UID))

    def selected_study_uids(self) -> list[str]:
        uids = []
        for item in self.tree.selectedItems():
            kind = item.data(0, ROLE_KIND)
            if kind == "study":
                uids.append(item.data(0, ROLE_UID))
            elif kind == "series" and item.parent() is not None:
                uids.append(item.parent().data(0, ROLE_UID))
            elif kind == "patient":
                uids.extend(item.child(i).data(0, ROLE_UID) for i in range(item.childCount()))
        return list(dict.fromkeys(uids))

    def _context_menu(self, pos: Any) -> None:
        item = self.tree.itemAt(pos)
        if item is None:
            return
        menu = QMenu(self)
        if item.data(0, ROLE_KIND) == "series":
            open_action = QAction("Open", menu)
            open_action.triggered.connect(lambda: self.series_activated.emit(item.data(0, ROLE_UID)))
            menu.addAction(open_action)
        delete_action = QAction("Delete study…", menu)
        delete_action.triggered.connect(self.delete_selected_studies)
        menu.addAction(delete_action)
        menu.exec(self.tree.viewport().mapToGlobal(pos))

    def delete_selected_studies(self, *, confirm: bool = True) -> int:
        uids = self.selected_study_uids()
        if not uids:
            return 0
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete studies",
                f"Delete {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} and their images from this computer?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return 0
        for uid in uids:
            self.store.delete_study(uid)
            self.study_deleted.emit(uid)
        self.refresh()
        return len(uids)


def _qimage(pixels: Any) -> QImage:
    """A QImage (deep copy) from a uint8 numpy array, grey (H, W) or RGB (H, W, 3)."""
    import numpy as np

    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = array.shape[:2]
    if array.ndim == 2:
        return QImage(array.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(array.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
