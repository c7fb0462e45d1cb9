"""Qt document views with pytest-qt: PDFs wrapped by pdf2dcm, SR links, CDA, tag browser, main-window hook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from tests.documents import sr_samples

pytest.importorskip("pytestqt")

from PySide6.QtCore import QUrl

from viewer.documents.sr import sr_from_dataset
from viewer.ui.documents import CdaView, PdfView, SRView, TagBrowser


def _non_blank_pixels(view: PdfView, index: int) -> int:
    image = view.page_labels[index].pixmap().toImage()
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    array = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    rgb = array[:, : image.width() * 4].reshape(image.height(), image.width(), 4)[..., :3]
    return int((rgb < 200).any(axis=2).sum())


@pytest.mark.parametrize(("name", "pages"), [("one", 1), ("three", 3)])
def test_pdf_view_opens_pdf2dcm_objects(qtbot, pdf_objects: dict[str, Path], name: str, pages: int) -> None:
    view = PdfView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.document_loaded, timeout=10000) as loaded:
        view.load(pdf_objects[name])
    assert loaded.args == [pages]
    if len(view.images) < pages:
        qtbot.waitUntil(lambda: len(view.images) == pages, timeout=10000)
    assert view.page_count == pages and view.page_count_label.text() == f"of {pages}"
    assert _non_blank_pixels(view, 0) > 1000
    view.close()


def test_pdf_view_zoom_search_and_save(qtbot, pdf_objects: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    view = PdfView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    with qtbot.waitSignal(view.pages_rendered, timeout=10000):
        view.load(pdf_objects["three"])
    width_at_100 = view.page_labels[0].width()
    with qtbot.waitSignal(view.pages_rendered, timeout=10000):
        view.set_zoom(2.0)
    assert view.page_labels[0].width() == pytest.approx(2 * width_at_100, abs=2)
    view.search_edit.setText("impression")
    match = view.find_next()
    assert match is not None and match.page == 2
    assert view.search_status.text() == "1 of 1"
    assert view.scroll.verticalScrollBar().value() >= view.page_top(2) - 40
    target = tmp_path / "saved.pdf"
    monkeypatch.setattr("viewer.ui.documents.pdf_view.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), ""))
    view.choose_save()
    assert target.read_bytes() == (pdf_objects["three"].parent / "three.pdf").read_bytes()


@pytest.mark.parametrize("name", ["not_pdf", "truncated", "garbled"])
def test_pdf_view_invalid_payload_shows_message(qtbot, pdf_objects: dict[str, Path], name: str) -> None:
    view = PdfView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.load_failed, timeout=10000) as failed:
        view.load(pdf_objects[name])
    assert failed.args[0] and view.message.isVisibleTo(view)
    assert view.message.text().startswith("This PDF cannot be shown:")
    assert not view.save_button.isEnabled() and view.page_count == 0


def test_sr_view_links_emit_open_image(qtbot) -> None:
    view = SRView()
    qtbot.addWidget(view)
    doc = sr_from_dataset(sr_samples.measurement_report())
    view.set_document(doc)
    html = view.text.toHtml()
    assert "Long Axis" in html and "Imaging Measurements" in html
    # The SCOORD region link, as the text browser hands it over when clicked.
    href = next(a for a in _anchors(view) if "type=CIRCLE" in a)
    with qtbot.waitSignal(view.open_image_requested) as emitted:
        view.text.anchorClicked.emit(QUrl(href))
    uid, frame, region = emitted.args
    assert (uid, frame) == (sr_samples.CT_UID, 1)
    assert region.graphic_type == "CIRCLE" and region.points == ((256.0, 256.0), (266.0, 256.0))
    # The tree: collapsible, and activating the IMAGE item opens the image without a region.
    root = view.tree.topLevelItem(0)
    assert root.text(0) == "Imaging Measurement Report"
    library = root.child(2).child(0).child(0)
    assert library.text(3) == "IMAGE"
    with qtbot.waitSignal(view.open_image_requested) as emitted:
        view.tree.itemActivated.emit(library, 0)
    assert emitted.args[:2] == [sr_samples.CT_UID, 0] and emitted.args[2] is None


def _anchors(view: SRView) -> list[str]:
    import re

    return [m.replace("&amp;", "&") for m in re.findall(r"href=['\"]([^'\"]+)['\"]", view.text.toHtml())]


def test_sr_view_loads_file_and_exports(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "dose.dcm"
    sr_samples.dose_report().save_as(path, enforce_file_format=True)
    view = SRView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.document_loaded, timeout=10000):
        view.load(path)
    assert "X-Ray Radiation Dose Report" in view.title_label.text()
    target = tmp_path / "dose.pdf"
    view.export_pdf(target)
    qtbot.waitUntil(target.exists, timeout=10000)
    assert target.read_bytes().startswith(b"%PDF-")


def test_sr_view_refuses_non_sr_with_message(qtbot) -> None:
    view = SRView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.load_failed, timeout=10000) as failed:
        view.load(get_testdata_file("CT_small.dcm"))
    assert "not a structured report" in failed.args[0]


def test_cda_view(qtbot, cda_object: Path) -> None:
    view = CdaView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.document_loaded, timeout=10000):
        view.load(cda_object)
    assert "Spiculated" in view.browser.toPlainText() and "Impression" in view.browser.toPlainText()
    view.xml_button.setChecked(True)
    assert "<ClinicalDocument" in view.browser.toPlainText()


def test_tag_browser_search(qtbot) -> None:
    browser = TagBrowser()
    qtbot.addWidget(browser)
    with qtbot.waitSignal(browser.tags_loaded, timeout=10000):
        browser.load(get_testdata_file("CT_small.dcm"))
    everything = browser.visible_paths()
    assert "(0010,0010)" in everything and "(0009,1001)" in everything
    filtered = lambda: not browser._debounce.isActive()  # noqa: E731  (the search runs 200 ms after typing)
    browser.search_edit.setText("OtherPatientIDs")
    qtbot.waitUntil(filtered, timeout=3000)
    assert browser.visible_paths()[0] == "(0010,1002)"
    browser.search_edit.setText("ABCD1234")
    qtbot.waitUntil(filtered, timeout=3000)
    assert browser.status.text() == "1 match"
    # The matching attribute is shown inside its sequence item, which is expanded.
    assert browser.visible_paths() == ["(0010,1002)", "(0010,1002)[0]", "(0010,1002)[0](0010,0020)"]
    item = browser.tree.topLevelItem(0).child(0).child(0)
    assert item.text(4) == "ABCD1234" and item.parent().isExpanded()
    browser.search_edit.setText("GEMS_IDEN_01")
    qtbot.waitUntil(filtered, timeout=3000)
    assert browser.status.text().endswith("matches")
    creators = {browser.tree.topLevelItem(i).text(5) for i in range(browser.tree.topLevelItemCount())}
    assert "GEMS_IDEN_01" in creators


def test_main_window_opens_documents_by_series_kind(qtbot, lightbox_home: Path, pdf_objects: dict[str, Path]) -> None:
    from viewer.core.context import AppContext
    from viewer.ui.main_window import MainWindow

    ctx = AppContext.open(lightbox_home)
    ctx.store.add_file(pdf_objects["three"])
    sr = sr_samples.key_objects()
    ctx.store.add_dataset(sr)
    report = sr_samples.measurement_report()
    ctx.store.add_dataset(report)
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    panel = window.document_panel
    pdf_series = next(
        s for st in ctx.store.studies() for s in ctx.store.series_for_study(st.study_uid) if s.kind == "pdf"
    )
    window.open_series(pdf_series.series_uid)
    view = panel.currentWidget()
    assert isinstance(view, PdfView)
    qtbot.waitUntil(lambda: view.page_count == 3, timeout=10000)
    window.open_instance(report.SOPInstanceUID)
    sr_view = panel.currentWidget()
    assert isinstance(sr_view, SRView)
    qtbot.waitUntil(lambda: sr_view.document is not None, timeout=10000)
    assert panel.count() == 2
    window.open_series(report.SeriesInstanceUID)  # reopening focuses the existing tab
    assert panel.count() == 2 and panel.currentWidget() is sr_view
    # Tools ▸ Tags… for an instance.
    dialog = window.show_tags(report.SOPInstanceUID)
    qtbot.waitUntil(lambda: bool(dialog.browser.nodes), timeout=10000)
    assert "(0040,A730)" in dialog.browser.visible_paths()
    dialog.close()
    ctx.store.close()
