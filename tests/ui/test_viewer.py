"""The viewer with pytest-qt: opening a stored series, scrolling, W/L drag, preset keys, cine, tools, hooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QGraphicsRectItem

from tests.render.test_stack_cache_measure import make_ct_series
from viewer.core.context import AppContext
from viewer.render.lut import Window
from viewer.render.measure import Distance, RectangleRoi
from viewer.ui.viewer import ViewerArea, Viewport


@pytest.fixture
def area(qtbot, tmp_path: Path, lightbox_home: Path):
    ctx = AppContext.open(lightbox_home)
    for path in make_ct_series(tmp_path, 8):
        ctx.store.add_file(path)
    ctx.store.add_file(get_testdata_file("examples_ybr_color.dcm"))  # 30-frame cine loop
    widget = ViewerArea(ctx)
    qtbot.addWidget(widget)
    widget.resize(700, 600)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.close_cache()
    ctx.store.close()


def series_uid(area: ViewerArea, modality: str) -> str:
    store = area.ctx.store
    for study in store.studies():
        for series in store.series_for_study(study.study_uid):
            if series.modality == modality:
                return series.series_uid
    raise LookupError(modality)


def open_ct(area: ViewerArea, qtbot) -> Viewport:
    viewport = area.open_series(series_uid(area, "CT"))
    assert viewport is not None
    # the position order arrives from a worker; wait until it has replaced the store order
    qtbot.waitUntil(lambda: _in_position_order(viewport), timeout=5000)
    # a stack opens at image 1 of that order, whose frame may still be decoding
    qtbot.waitUntil(lambda: viewport.order_settled and viewport.displayed_index == viewport.index, timeout=5000)
    return viewport


def _z(viewport: Viewport, index: int) -> float:
    return float(viewport.stack.geometry(index).position[2])


def _in_position_order(viewport: Viewport) -> bool:
    # the generated instance numbers disagree with the positions, so the stack reads head first
    z = [_z(viewport, i) for i in range(len(viewport.stack))]
    return z == sorted(z, reverse=True)


def shown_value(viewport: Viewport) -> int:
    return int(viewport._frame[0, 0]) if viewport._frame is not None else -99999


def test_open_series_shows_first_image_with_annotations(area: ViewerArea, qtbot) -> None:
    viewport = open_ct(area, qtbot)
    assert viewport.displayed_index == viewport.index
    image = viewport.image_item.image
    assert image is not None and image.dtype == np.uint8 and image.shape == (128, 128)
    texts = {name: label.text() for name, label in viewport.corner_labels.items()}
    assert "CompressedSamples CT1" in texts["top_left"]
    assert "W:" in texts["bottom_right"] and "Zoom:" in texts["bottom_right"]
    assert viewport.marker_labels["right"].text() == "L" and viewport.marker_labels["top"].text() == "A"
    readout = viewport.pixel_readout(10.2, 20.7)
    value = viewport.stack.load_frame(viewport.index)[20, 10]
    assert readout.startswith("(10, 20)") and "HU" in readout and f"{float(value) - 1024:g}" in readout


def test_scroll_by_wheel_and_keys(area: ViewerArea, qtbot) -> None:
    viewport = open_ct(area, qtbot)
    start = viewport.index
    assert start == 0
    QTest.keyClick(viewport, Qt.Key.Key_Down)
    assert viewport.index == start + 1
    qtbot.waitUntil(lambda: viewport.displayed_index == viewport.index, timeout=5000)
    # slice k of the generated series stores CT + k (k = 0 lowest); head first, index 1 is k = 6
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array
    assert shown_value(viewport) == int(base[0, 0]) + 6
    QTest.keyClick(viewport, Qt.Key.Key_End)
    qtbot.waitUntil(lambda: viewport.displayed_index == len(viewport.stack) - 1, timeout=5000)
    assert shown_value(viewport) == int(base[0, 0])
    view = viewport.view
    center = QPointF(view.width() / 2, view.height() / 2)
    wheel = QWheelEvent(
        center,
        view.mapToGlobal(center),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel)
    assert viewport.index == len(viewport.stack) - 2
    qtbot.waitUntil(lambda: viewport.displayed_index == viewport.index, timeout=5000)
    QTest.keyClick(viewport, Qt.Key.Key_Home)
    assert viewport.index == 0


def _drag(view, start: QPointF, end: QPointF, button: Qt.MouseButton) -> None:
    target = view.viewport()
    steps = 6
    QApplication.sendEvent(
        target,
        QMouseEvent(
            QMouseEvent.Type.MouseButtonPress,
            start,
            view.mapToGlobal(start),
            button,
            button,
            Qt.KeyboardModifier.NoModifier,
        ),
    )
    for k in range(1, steps + 1):
        p = start + (end - start) * (k / steps)
        QApplication.sendEvent(
            target,
            QMouseEvent(
                QMouseEvent.Type.MouseMove,
                p,
                view.mapToGlobal(p),
                Qt.MouseButton.NoButton,
                button,
                Qt.KeyboardModifier.NoModifier,
            ),
        )
    QApplication.sendEvent(
        target,
        QMouseEvent(
            QMouseEvent.Type.MouseButtonRelease,
            end,
            view.mapToGlobal(end),
            button,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        ),
    )


def test_window_level_by_right_drag(area: ViewerArea, qtbot) -> None:
    viewport = open_ct(area, qtbot)
    before = viewport.voi
    assert isinstance(before, Window)
    image_before = viewport.image_item.image.copy()
    view = viewport.view
    c = QPointF(view.width() / 2, view.height() / 2)
    _drag(view, c, c + QPointF(60, 0), Qt.MouseButton.RightButton)  # wider
    after = viewport.voi
    assert isinstance(after, Window) and after.width > before.width and after.center == pytest.approx(before.center)
    qtbot.wait(QApplication.doubleClickInterval() + 50)  # a second press at once would be a double click
    _drag(view, c, c + QPointF(0, 40), Qt.MouseButton.RightButton)  # level up
    assert viewport.voi.center > after.center
    assert not np.array_equal(viewport.image_item.image, image_before)
    assert f"W: {viewport.voi.width:.0f}" in viewport.corner_labels["bottom_right"].text()


def test_preset_keys(area: ViewerArea, qtbot) -> None:
    viewport = open_ct(area, qtbot)
    names = [p.name for p in viewport.presets]
    assert names[:5] == ["Lung", "Mediastinum", "Bone", "Brain", "Abdomen"]
    QTest.keyClick(viewport, "1")
    assert viewport.voi == Window(-600, 1500, explanation="Lung")
    lung = viewport.image_item.image.copy()
    QTest.keyClick(viewport, "4")
    assert viewport.voi.center == 40 and viewport.voi.width == 80
    assert not np.array_equal(viewport.image_item.image, lung)
    QTest.keyClick(viewport, "i")
    assert viewport.invert and "INV" in viewport.corner_labels["bottom_right"].text()


def test_cine_advances_frames_at_file_rate(area: ViewerArea, qtbot) -> None:
    viewport = area.open_series(series_uid(area, "US"))
    assert viewport is not None and len(viewport.stack) == 30
    assert viewport.cine_fps == pytest.approx(viewport.stack.cine_rate())
    shown = viewport.frames_shown
    QTest.keyClick(viewport, Qt.Key.Key_Space)
    assert viewport.cine_playing
    qtbot.waitUntil(lambda: viewport.frames_shown >= shown + 5, timeout=5000)
    assert viewport.index != 0 or viewport.frames_shown > shown + 30
    QTest.keyClick(viewport, Qt.Key.Key_Space)
    assert not viewport.cine_playing
    assert viewport.image_item.image.shape == (240, 320, 3)


def test_layouts_sync_and_reference_lines(area: ViewerArea, qtbot) -> None:
    area.set_layout("2x2")
    assert len(area.visible_viewports) == 4
    first = open_ct(area, qtbot)
    second = area.visible_viewports[1]
    area.open_series(series_uid(area, "CT"), second)
    qtbot.waitUntil(lambda: _in_position_order(second), timeout=5000)
    area.set_sync_scroll(True)
    first.set_index(5)
    assert second.index == 5
    area.set_layout("1x2")
    assert len(area.visible_viewports) == 2
    area.set_layout("1x1")
    assert area.visible_viewports == [area.active] == [second]  # 1×1 shows the active viewport
    # parallel slices have no reference line; the helper reports an empty list rather than a wrong line
    area.set_reference_lines(True)
    assert second.reference_segments == []


def test_measurements_and_overlay_hook(area: ViewerArea, qtbot) -> None:
    viewport = open_ct(area, qtbot)
    placed = viewport.add_measurement(Distance((10, 10), (40, 50)))
    label = placed.items[-1].textItem.toPlainText()
    spacing = float(viewport.stack.header(viewport.index).PixelSpacing[0])
    assert label == f"{50 * spacing:.1f} mm"
    roi = viewport.add_measurement(RectangleRoi((0, 0), (20, 20)))
    assert "Mean" in roi.items[-1].textItem.toPlainText() and "HU" in roi.items[-1].textItem.toPlainText()
    calls: list[int] = []

    def factory(vp: Viewport, index: int):
        calls.append(index)
        return [QGraphicsRectItem(5, 5, 10, 10)]

    viewport.add_overlay_layer("gsps", factory)
    assert calls == [viewport.index]
    assert viewport._overlay_items["gsps"][0].parentItem() is viewport.image_item
    viewport.set_index(viewport.index + 1)
    qtbot.waitUntil(lambda: viewport.displayed_index == viewport.index, timeout=5000)
    assert calls[-1] == viewport.index
    assert not placed.items[0].isVisible()  # measurements belong to their slice
    viewport.remove_overlay_layer("gsps")
    assert "gsps" not in viewport._overlay_items
