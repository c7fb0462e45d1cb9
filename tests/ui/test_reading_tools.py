"""Issue 15 finding 7: measurements start at the press and can be selected, moved, edited and deleted; scale bar.

Real mouse events go to the offscreen viewport (pyqtgraph's own press / move / release handling, drag threshold
included); the expected image positions are mapped from the screen points through the view's own transforms.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.render.test_stack_cache_measure import make_ct_series
from viewer.core.context import AppContext
from viewer.render.measure import Distance, RectangleRoi
from viewer.ui.viewer import ViewerArea, Viewport


@pytest.fixture
def viewport(qtbot, tmp_path: Path, lightbox_home: Path):
    ctx = AppContext.open(lightbox_home)
    for path in make_ct_series(tmp_path, 3):
        ctx.store.add_file(path)
    area = ViewerArea(ctx)
    qtbot.addWidget(area)
    area.resize(700, 600)
    area.show()
    qtbot.waitExposed(area)
    series = ctx.store.series_for_study(ctx.store.studies()[0].study_uid)[0].series_uid
    vp = area.open_series(series)
    assert vp is not None
    qtbot.waitUntil(lambda: vp.order_settled and vp.displayed_index == vp.index, timeout=5000)
    yield vp
    area.close_cache()
    ctx.store.close()


def to_image(vp: Viewport, screen: QPointF) -> tuple[float, float]:
    p = vp.image_item.mapFromScene(vp.view.mapToScene(screen.toPoint()))
    return p.x(), p.y()


def to_screen(vp: Viewport, col: float, row: float) -> QPointF:
    return QPointF(vp.view.mapFromScene(vp.image_item.mapToScene(QPointF(col, row))))


def send(vp: Viewport, kind: QMouseEvent.Type, pos: QPointF, button: Qt.MouseButton, buttons) -> None:
    target = vp.view.viewport()
    event = QMouseEvent(kind, pos, vp.view.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, event)


def drag(vp: Viewport, start: QPointF, end: QPointF, steps: int = 3) -> None:
    left = Qt.MouseButton.LeftButton
    send(vp, QMouseEvent.Type.MouseButtonPress, start, left, left)
    for k in range(1, steps + 1):
        send(vp, QMouseEvent.Type.MouseMove, start + (end - start) * (k / steps), Qt.MouseButton.NoButton, left)
    send(vp, QMouseEvent.Type.MouseButtonRelease, end, left, Qt.MouseButton.NoButton)


def pause(qtbot) -> None:
    qtbot.wait(QApplication.doubleClickInterval() + 60)  # the next press must not make a double click


def click(vp: Viewport, qtbot, pos: QPointF) -> None:
    pause(qtbot)
    QTest.mouseClick(vp.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos.toPoint())


def test_distance_starts_at_the_press_not_where_the_drag_threshold_fired(viewport: Viewport) -> None:
    viewport.set_tool("distance")
    start, end = QPointF(200, 200), QPointF(320, 260)
    drag(viewport, start, end, steps=3)  # first move 40 px on: the old tool started the line there
    assert len(viewport.measurements) == 1
    m = viewport.measurements[0].measurement
    assert isinstance(m, Distance)
    tolerance = 1.0 / viewport.zoom_factor()  # one screen pixel (QPoint rounding)
    expected0, expected1 = to_image(viewport, start), to_image(viewport, end)
    assert math.dist(m.p0, expected0) <= tolerance
    assert math.dist(m.p1, expected1) <= tolerance
    # the drawn label is the measurement from the press
    spacing = viewport.calibration()
    assert viewport.measurements[0].items[-1].textItem.toPlainText() == m.label(spacing)


def test_select_move_edit_and_delete_one_by_one(viewport: Viewport, qtbot) -> None:
    first = viewport.add_measurement(Distance((20.0, 20.0), (60.0, 20.0)))
    second = viewport.add_measurement(RectangleRoi((70.0, 70.0), (100.0, 100.0)))
    zoom = viewport.zoom_factor()
    # a click on the line selects it (the pan tool is active: no new measurement is drawn)
    click(viewport, qtbot, to_screen(viewport, 40.0, 20.0))
    assert viewport.tools.selected is first
    # a drag on the selected line moves it
    pause(qtbot)
    grab = to_screen(viewport, 40.0, 20.0)
    drag(viewport, grab, grab + QPointF(30, 15))
    moved = first.measurement
    assert isinstance(moved, Distance)
    assert moved.p0[0] - 20.0 == pytest.approx(30 / zoom, abs=1.5 / zoom)
    assert moved.p0[1] - 20.0 == pytest.approx(15 / zoom, abs=1.5 / zoom)
    assert moved.p1[0] - moved.p0[0] == pytest.approx(40.0)  # moved, not stretched
    # a drag on an end point edits that point only
    pause(qtbot)
    handle = to_screen(viewport, *moved.p1)
    target = handle + QPointF(0, 40)
    drag(viewport, handle, target)
    edited = first.measurement
    assert isinstance(edited, Distance)
    assert edited.p0 == moved.p0
    assert math.dist(edited.p1, to_image(viewport, target)) <= 1.0 / zoom
    assert first.items[-1].textItem.toPlainText() == viewport.measurement_label(edited)
    # Delete removes the selected measurement and nothing else
    viewport.setFocus()
    QTest.keyClick(viewport, Qt.Key.Key_Delete)
    assert [p.measurement for p in viewport.measurements] == [second.measurement]
    assert all(item.scene() is None for item in first.items)
    # a click inside the ROI selects it; Delete again leaves nothing
    click(viewport, qtbot, to_screen(viewport, 85.0, 85.0))
    assert viewport.tools.selected is second
    QTest.keyClick(viewport, Qt.Key.Key_Delete)
    assert viewport.measurements == []
    # a click on empty image deselects; Delete then removes nothing
    viewport.add_measurement(Distance((5.0, 5.0), (9.0, 5.0)))
    click(viewport, qtbot, to_screen(viewport, 110.0, 30.0))
    assert viewport.tools.selected is None
    QTest.keyClick(viewport, Qt.Key.Key_Delete)
    assert len(viewport.measurements) == 1


def test_drawing_tool_edits_a_selected_measurement_instead_of_drawing(viewport: Viewport, qtbot) -> None:
    viewport.set_tool("distance")
    drag(viewport, QPointF(150, 150), QPointF(250, 150))
    placed = viewport.measurements[0]
    assert viewport.tools.selected is placed  # a new measurement is selected
    pause(qtbot)
    before = placed.measurement
    assert isinstance(before, Distance)
    end = to_screen(viewport, *before.p1)
    drag(viewport, end, end + QPointF(0, 50))
    assert len(viewport.measurements) == 1 and placed.measurement.p0 == before.p0  # type: ignore[union-attr]


def test_scale_bar_is_calibrated_and_follows_zoom(viewport: Viewport, qtbot) -> None:
    bar = viewport.scale_bar
    assert bar.isVisible() and bar.bar is not None
    mm_per_pixel = viewport.calibration().column_mm
    assert mm_per_pixel is not None
    first = bar.bar
    assert first.label.endswith((" mm", " cm"))
    assert first.label == (f"{first.millimetres / 10:g} cm" if first.millimetres >= 10 else f"{first.millimetres:g} mm")
    # the bar's screen length is its physical length at the current zoom
    assert first.pixels == pytest.approx(first.millimetres / mm_per_pixel * viewport.zoom_factor(), rel=1e-6)
    assert first.pixels <= viewport.width() / 4 + 1e-6
    viewport.set_zoom(viewport.zoom_factor() * 4)
    second = bar.bar
    assert second is not None and second.millimetres < first.millimetres
    assert second.pixels == pytest.approx(second.millimetres / mm_per_pixel * viewport.zoom_factor(), rel=1e-6)
    # it sits inside the viewport, clear of the bottom orientation marker
    assert bar.x() >= 0 and bar.x() + bar.width() <= viewport.width()
    assert bar.y() + bar.height() <= viewport.marker_labels["bottom"].y() + 1
