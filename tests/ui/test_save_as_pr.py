"""Finding 10 (part): the toolbar's "Save as PR" confirms with the saved state's name, the viewport then shows
that state, and each saved measurement is drawn exactly once (by the state, not also by the viewport's tools)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pyqtgraph as pg
from pydicom.data import get_testdata_file
from PySide6.QtWidgets import QGraphicsItem, QGraphicsLineItem, QGraphicsPathItem, QGraphicsSimpleTextItem

from viewer.core.context import AppContext
from viewer.render.measure import Distance


def _descendants(item: QGraphicsItem) -> list[QGraphicsItem]:
    out: list[QGraphicsItem] = []
    for child in item.childItems():
        if child.isVisible():
            out.append(child)
            out.extend(_descendants(child))
    return out


def _segments_drawn(viewport, p0: tuple[float, float], p1: tuple[float, float]) -> int:
    """How many visible items draw the segment p0–p1 (a tool's line item or a state's path item)."""
    count = 0
    for item in _descendants(viewport.image_item):
        if isinstance(item, QGraphicsLineItem):
            line = item.line()
            ends = {(round(line.x1(), 1), round(line.y1(), 1)), (round(line.x2(), 1), round(line.y2(), 1))}
            count += ends == {p0, p1}
        elif isinstance(item, QGraphicsPathItem):
            rect = item.path().boundingRect()
            count += (round(rect.left(), 1), round(rect.top(), 1), round(rect.right(), 1), round(rect.bottom(), 1)) == (
                min(p0[0], p1[0]),
                min(p0[1], p1[1]),
                max(p0[0], p1[0]),
                max(p0[1], p1[1]),
            )
    return count


def _mm_texts(viewport) -> int:
    """How many visible labels show a length (a tool's pyqtgraph TextItem or a state's text item)."""
    count = 0
    for item in _descendants(viewport.image_item):
        if isinstance(item, pg.TextItem):
            count += item.toPlainText().strip().endswith("mm")
        elif isinstance(item, QGraphicsSimpleTextItem):
            count += item.text().strip().endswith("mm")
    return count


def test_save_as_pr_confirms_adopts_the_state_and_draws_each_measurement_once(qtbot, tmp_path: Path) -> None:
    from viewer.ui.viewer import ViewerArea

    ctx = AppContext.open(tmp_path / "home")
    image = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ctx.store.add_dataset(image)
    area = ViewerArea(ctx)
    qtbot.addWidget(area)
    area.resize(600, 500)
    area.show()
    viewport = area.open_series(image.SeriesInstanceUID)
    qtbot.waitUntil(lambda: viewport.order_settled and viewport.displayed_index is not None, timeout=10000)
    p0, p1 = (10.5, 20.5), (60.5, 20.5)
    viewport.add_measurement(Distance(p0, p1))
    assert _segments_drawn(viewport, p0, p1) == 1 and _mm_texts(viewport) == 1  # the tool draws it

    messages: list[str] = []
    area.message.connect(messages.append)
    area.save_annotations_action.trigger()  # what the toolbar button does
    qtbot.waitUntil(lambda: bool(messages), timeout=10000)
    qtbot.waitUntil(lambda: viewport.presentation is not None, timeout=10000)
    state = viewport.presentation
    assert state.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"
    assert state.ContentLabel in messages[0] and str(state.ContentDescription) in messages[0]
    assert "saved" in messages[0].lower() and area.message_label.text() == messages[0]
    menu = area.presentation_menu(viewport)
    assert menu.currentData() == state.SOPInstanceUID  # the chooser shows the saved state
    assert not viewport.measurements
    assert _segments_drawn(viewport, p0, p1) == 1  # once: by the state
    assert _mm_texts(viewport) == 1
    area.close_cache()
