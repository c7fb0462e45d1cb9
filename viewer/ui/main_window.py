"""The main window: study browser on the left, the viewer area on the right, menus and status bar.

Hook points for other areas (make small additive edits or call these from your own module):

* `add_menu_action(menu, text, callback, shortcut=None)` / `add_tool_action(text, callback)` — a menu entry.
* `add_dock(widget, title, area)` — a dockable panel (query/retrieve, presentation states…).
* `register_document_opener(kind, opener)` — `opener(sop_instance_uid)` shows a document of that series kind
  ('sr', 'ko', 'pdf', 'cda', 'pr'); `open_series` / `open_instance` dispatch to it.
* `scp_status_label` — a permanent status bar label; `set_scp_status(text)` updates it.
* `store_events` — the store's change events as Qt signals in the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QWidget,
)

from viewer import APP_NAME, __version__
from viewer.core.context import AppContext
from viewer.ui.browser import StudyBrowser
from viewer.ui.workers import StoreEvents, run_in_background

log = logging.getLogger(__name__)

DocumentOpener = Callable[[str], None]


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle(APP_NAME)
        self.setObjectName("mainWindow")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.document_openers: dict[str, DocumentOpener] = {}
        self.import_dialogs: list[QWidget] = []
        self.store_events = StoreEvents(ctx.store, self)

        self.browser = StudyBrowser(ctx.store, self)
        self.browser.series_activated.connect(self.open_series)
        self.viewer_area = self._make_viewer_area()
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.browser)
        self.splitter.addWidget(self.viewer_area)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([450, 950])
        self.setCentralWidget(self.splitter)

        self.menus: dict[str, QMenu] = {}
        self._build_menus()
        self.scp_status_label = QLabel("Storage SCP: off")
        self.scp_status_label.setObjectName("scpStatusLabel")
        self.statusBar().addPermanentWidget(self.scp_status_label)
        self.statusBar().showMessage("Ready", 3000)

        from viewer.ui.documents import install_documents

        install_documents(self)  # SR/KO/PDF/CDA openers, Documents dock, Tools ▸ Tags…

        from viewer.ui.key_images import install_key_images

        install_key_images(self)  # KO → "Key images" series in the viewer; PR → its images with it applied

        from viewer.ui.print_dialog import install_print

        install_print(self)  # File ▸ Print to film…, Export film sheet to PDF…

        from viewer.ui.export_view import install_export

        install_export(self)  # File ▸ Export view as image…, Copy view (Ctrl+C), Export series as video…

        from viewer.ui.network_service import install_network

        install_network(self)  # Storage SCP started with the app, its status here, Query/Retrieve dock

    # ------------------------------------------------------------------ layout
    def _make_viewer_area(self) -> QWidget:
        try:
            from viewer.ui.viewer import ViewerArea  # type: ignore[attr-defined]
        except ImportError as exc:
            log.info("viewer area not available yet (%s); showing a placeholder", exc)
            placeholder = QLabel("Double-click a series to view it.")
            placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            placeholder.setObjectName("viewerPlaceholder")
            return placeholder
        return ViewerArea(self.ctx, self)

    def _build_menus(self) -> None:
        for name in ("&File", "&View", "&Tools", "&Help"):
            self.menus[name.replace("&", "")] = self.menuBar().addMenu(name)
        self.add_menu_action("File", "&Import…", self.choose_import, QKeySequence.StandardKey.Open)
        self.add_menu_action("File", "Import &CD/DICOMDIR…", self.choose_dicomdir)
        self.add_menu_action("File", "Load &demo study", self.load_demo)
        self.add_menu_action("File", "&Export studies…", self.choose_export)
        self.menus["File"].addSeparator()
        self.add_menu_action("File", "&Settings…", self.open_settings)
        self.menus["File"].addSeparator()
        self.add_menu_action("File", "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.add_menu_action("View", "&Refresh studies", self.browser.refresh, QKeySequence.StandardKey.Refresh)
        self.add_menu_action("View", "&Delete selected studies…", self.browser.delete_selected_studies)
        self.add_menu_action("Help", "Load &demo study", self.load_demo)
        self.add_menu_action("Help", f"&About {APP_NAME}", self.about)

    def add_menu_action(
        self,
        menu: str,
        text: str,
        callback: Callable[[], object],
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
    ) -> QAction:
        """Add an entry to a top-level menu (created on first use), e.g. add_menu_action("Tools", "Query…", f)."""
        target = self.menus.get(menu)
        if target is None:
            target = self.menuBar().addMenu(menu)
            self.menus[menu] = target
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut) if not isinstance(shortcut, QKeySequence) else shortcut)
        action.triggered.connect(lambda _checked=False: callback())
        target.addAction(action)
        return action

    def add_tool_action(self, text: str, callback: Callable[[], object], shortcut: str | None = None) -> QAction:
        return self.add_menu_action("Tools", text, callback, shortcut)

    def add_dock(
        self,
        widget: QWidget,
        title: str,
        area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea,
    ) -> QDockWidget:
        """Add a dockable panel; its show/hide toggle goes into the View menu."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock:{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.menus["View"].addAction(dock.toggleViewAction())
        return dock

    def set_scp_status(self, text: str) -> None:
        self.scp_status_label.setText(text)

    # ------------------------------------------------------------------ opening
    def register_document_opener(self, kind: str, opener: DocumentOpener) -> None:
        """`opener(sop_instance_uid)` shows instances of series of this kind ('sr', 'ko', 'pdf', 'cda', 'pr')."""
        self.document_openers[kind] = opener

    def open_series(self, series_uid: str) -> None:
        series = self.ctx.store.series(series_uid)
        if series is None:
            self.statusBar().showMessage("That series is no longer in the store.", 5000)
            return
        if series.kind != "image":
            instances = self.ctx.store.instances_for_series(series_uid)
            if instances:
                self.open_instance(instances[0].sop_instance_uid)
            return
        open_in_viewer = getattr(self.viewer_area, "open_series", None)
        if open_in_viewer is None:
            self.statusBar().showMessage(f"Viewer not available; series {series.series_description}", 5000)
            return
        open_in_viewer(series_uid)
        self._audit_viewed(series.study_uid)

    def open_instance(self, sop_instance_uid: str) -> None:
        instance = self.ctx.store.instance(sop_instance_uid)
        if instance is None:
            self.statusBar().showMessage("That object is no longer in the store.", 5000)
            return
        series = self.ctx.store.series(instance.series_uid)
        kind = series.kind if series is not None else "image"
        opener = self.document_openers.get(kind)
        if opener is not None:
            opener(sop_instance_uid)
            self._audit_viewed(instance.study_uid)
        elif kind == "image":
            self.open_series(instance.series_uid)
        else:
            self.statusBar().showMessage(f"No viewer for {kind.upper()} objects yet.", 5000)

    def current_image(self) -> tuple[str, int] | None:
        """(SOP Instance UID, 0-based frame) on screen in the active viewport, when the viewer is what the user
        works in: it shows an image and the keyboard focus is not in the study browser (Ctrl+T, tags of it)."""
        area = self.viewer_area
        active = getattr(area, "active", None)  # the placeholder label has none
        stack = getattr(active, "stack", None)
        if active is None or stack is None or not len(stack):
            return None
        focus = QApplication.focusWidget()
        if focus is not None and (focus is self.browser or self.browser.isAncestorOf(focus)):
            return None
        ref = stack[active.index]
        return (ref.sop_instance_uid, ref.frame) if ref.sop_instance_uid else None

    def _audit_viewed(self, study_uid: str) -> None:
        from viewer.core import audit

        study = self.ctx.store.study(study_uid)
        audit.record_viewed(study_uid, study.patient_id if study is not None else "")

    # ------------------------------------------------------------------ import
    def choose_import(self) -> None:
        dialog = QFileDialog(self, "Import DICOM files, folders or ZIP archives")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        if dialog.exec():
            self.import_paths([Path(p) for p in dialog.selectedFiles()])

    def choose_dicomdir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the CD / DVD / folder holding a DICOMDIR")
        if folder:
            self.import_paths([Path(folder)])

    def import_paths(self, paths: Iterable[Path]) -> QWidget:
        """Import in the background with a progress dialog; returns the dialog (tests wait on it)."""
        from viewer.ui.import_dialog import ImportDialog

        dialog = ImportDialog(self.ctx.store, list(paths), self, limits=self.ctx.import_limits())
        self.import_dialogs.append(dialog)
        dialog.finished.connect(lambda _result, d=dialog: self._forget_import_dialog(d))
        dialog.show()
        dialog.start()
        return dialog

    def _forget_import_dialog(self, dialog: QWidget) -> None:
        if dialog in self.import_dialogs:
            self.import_dialogs.remove(dialog)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_paths(paths)

    # ------------------------------------------------------------------ misc actions
    def choose_export(self) -> None:
        study_uids = self.browser.selected_study_uids()
        if not study_uids:
            QMessageBox.information(self, APP_NAME, "Select one or more studies in the browser to export.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export to an empty folder")
        if not folder:
            return
        answer = QMessageBox.question(
            self,
            APP_NAME,
            "Remove patient identity (DICOM Basic Application Level Confidentiality Profile)?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Cancel:
            return
        self.export_studies(study_uids, Path(folder), deidentify=answer == QMessageBox.StandardButton.Yes)

    def export_studies(self, study_uids: list[str], folder: Path, *, deidentify: bool, on_done=None) -> None:
        """Export in a worker to a folder with a DICOMDIR; the result goes to the status bar."""
        from viewer.core.export import export_studies

        def done(report) -> None:
            what = "de-identified " if report.deidentified else ""
            skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
            self.statusBar().showMessage(f"Exported {report.exported} {what}instances to {report.folder}{skipped}.")
            if on_done is not None:
                on_done(report)

        run_in_background(
            export_studies,
            self.ctx.store,
            study_uids,
            folder,
            deidentify=deidentify,
            on_result=done,
            on_error=lambda exc: QMessageBox.warning(self, APP_NAME, f"Export failed: {exc}"),
        )

    def load_demo(self) -> None:
        from viewer.core.demo import add_demo_study

        self.statusBar().showMessage("Generating the demo study…")
        run_in_background(
            add_demo_study,
            self.ctx.store,
            on_result=lambda study_uid: self.statusBar().showMessage("Demo study loaded.", 5000),
            on_error=lambda exc: QMessageBox.warning(self, APP_NAME, f"Could not make the demo study: {exc}"),
        )

    def open_settings(self) -> None:
        try:
            from viewer.ui.settings_dialog import SettingsDialog  # type: ignore[attr-defined]
        except ImportError:
            QMessageBox.information(self, APP_NAME, f"Settings are kept in {self.ctx.settings_path}.")
            return
        dialog = SettingsDialog(self.ctx, self)
        dialog.exec()

    def about(self) -> None:
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"{APP_NAME} {__version__}\nDICOM viewer workstation.\nData folder: {self.ctx.home}",
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        for dialog in list(self.import_dialogs):
            cancel = getattr(dialog, "cancel", None)
            if cancel is not None:
                cancel()
        network = getattr(self, "network_service", None)
        if network is not None:
            network.stop()
        self.store_events.close()
        super().closeEvent(event)
