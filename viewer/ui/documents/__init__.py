"""Document views (SR, KO, encapsulated PDF/CDA) and the tag browser, and their hook into the main window.

`install_documents(window)` registers openers for the 'sr', 'ko', 'pdf' and 'cda' series kinds, adds a
"Documents" dock that holds one tab per opened document, and a "Tags…" action for the selected series.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from viewer.ui.documents.cda_view import CdaView
from viewer.ui.documents.pdf_view import PdfView
from viewer.ui.documents.sr_view import SRView
from viewer.ui.documents.tag_browser import TagBrowser

__all__ = ["CdaView", "DocumentPanel", "PdfView", "SRView", "TagBrowser", "TagDialog", "install_documents"]

log = logging.getLogger(__name__)


def view_for_kind(kind: str) -> QWidget:
    if kind in ("sr", "ko"):
        return SRView()
    if kind == "pdf":
        return PdfView()
    if kind == "cda":
        return CdaView()
    raise ValueError(f"no document view for {kind!r}")


class DocumentPanel(QTabWidget):
    """One closable tab per opened document; reopening a document focuses its tab."""

    open_image_requested = Signal(str, int, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("documentPanel")
        self.setTabsClosable(True)
        self.setDocumentMode(True)
        self.tabCloseRequested.connect(self._close_tab)
        self.views: dict[str, QWidget] = {}

    def open_document(self, sop_instance_uid: str, path: Path | str, kind: str, title: str) -> QWidget:
        existing = self.views.get(sop_instance_uid)
        if existing is not None:
            self.setCurrentWidget(existing)
            return existing
        view = view_for_kind(kind)
        if isinstance(view, SRView):
            view.open_image_requested.connect(self.open_image_requested)
        self.views[sop_instance_uid] = view
        self.setCurrentIndex(self.addTab(view, title))
        view.load(path)  # type: ignore[attr-defined]
        return view

    def _close_tab(self, index: int) -> None:
        view = self.widget(index)
        for uid, candidate in list(self.views.items()):
            if candidate is view:
                del self.views[uid]
        self.removeTab(index)
        pdf = getattr(view, "pdf", None)
        if pdf is not None:
            pdf.close()
        view.deleteLater()


class TagDialog(QDialog):
    def __init__(
        self, path: Path | str, title: str, parent: QWidget | None = None, *, frame: int | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Tags — {title}" + (f" (frame {frame + 1})" if frame else ""))
        self.resize(1000, 700)
        self.browser = TagBrowser(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        self.browser.load(path, frame=frame)


def _document_title(store: Any, instance: Any, kind: str) -> str:
    series = store.series(instance.series_uid)
    label = {"sr": "Report", "ko": "Key images", "pdf": "PDF", "cda": "CDA"}.get(kind, kind.upper())
    if series is not None and series.series_description:
        return f"{label}: {series.series_description}"[:48]
    return label


def install_documents(window: QMainWindow) -> DocumentPanel:
    """Hook the document views into Lightbox's main window (see viewer/ui/main_window.py hook points)."""
    store = window.ctx.store  # type: ignore[attr-defined]
    panel = DocumentPanel(window)
    dock = window.add_dock(panel, "Documents", Qt.DockWidgetArea.RightDockWidgetArea)  # type: ignore[attr-defined]
    dock.hide()
    window.document_panel = panel  # type: ignore[attr-defined]
    window.tag_dialogs = []  # type: ignore[attr-defined]

    def opener(kind: str):
        def open_document(sop_instance_uid: str) -> None:
            instance = store.instance(sop_instance_uid)
            if instance is None:
                window.statusBar().showMessage("That document is no longer in the store.", 5000)
                return
            dock.show()
            dock.raise_()
            panel.open_document(sop_instance_uid, instance.path, kind, _document_title(store, instance, kind))

        return open_document

    for kind in ("sr", "pdf", "cda"):
        window.register_document_opener(kind, opener(kind))  # type: ignore[attr-defined]
    # Key objects: engineer D's key-image view takes precedence when it registers one.
    if "ko" not in getattr(window, "document_openers", {}):
        window.register_document_opener("ko", opener("ko"))  # type: ignore[attr-defined]

    def open_image(sop_instance_uid: str, frame: int, region: object) -> None:
        # The viewer (engineer B) may offer a precise entry point; otherwise open the image's series.
        viewer_area = getattr(window, "viewer_area", None)
        precise = getattr(viewer_area, "open_image", None)
        if precise is not None:
            precise(sop_instance_uid, frame=frame, region=region)
            return
        if store.instance(sop_instance_uid) is None:
            window.statusBar().showMessage("The referenced image is not in the local store.", 5000)
            return
        window.open_instance(sop_instance_uid)  # type: ignore[attr-defined]

    panel.open_image_requested.connect(open_image)

    def show_tags(sop_instance_uid: str | None = None, frame: int | None = None) -> TagDialog | None:
        if sop_instance_uid is None:
            # the image on screen when the viewer is in use, else the browser's selection
            on_screen = window.current_image()  # type: ignore[attr-defined]
            if on_screen is not None:
                sop_instance_uid, frame = on_screen
            else:
                sop_instance_uid = _selected_instance_uid(window)
        instance = store.instance(sop_instance_uid) if sop_instance_uid else None
        if instance is None:
            window.statusBar().showMessage("Select a series in the study browser to see its tags.", 5000)
            return None
        dialog = TagDialog(instance.path, sop_instance_uid, window, frame=frame if instance.frames > 1 else None)
        window.tag_dialogs.append(dialog)  # type: ignore[attr-defined]
        dialog.finished.connect(lambda _r, d=dialog: window.tag_dialogs.remove(d))  # type: ignore[attr-defined]
        dialog.show()
        return dialog

    window.show_tags = show_tags  # type: ignore[attr-defined]
    window.add_tool_action("&Tags…", lambda: show_tags(), "Ctrl+T")  # type: ignore[attr-defined]
    return panel


def _selected_instance_uid(window: QMainWindow) -> str | None:
    """First instance of the series selected in the study browser (the viewer may pass its own instance)."""
    from viewer.ui.browser import ROLE_KIND, ROLE_UID

    browser = getattr(window, "browser", None)
    if browser is None:
        return None
    for item in browser.tree.selectedItems():
        if item.data(0, ROLE_KIND) == "series":
            instances = window.ctx.store.instances_for_series(item.data(0, ROLE_UID))  # type: ignore[attr-defined]
            if instances:
                return instances[0].sop_instance_uid
    return None
