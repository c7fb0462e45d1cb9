"""The viewport's measurement tools: drawing, selecting, moving, editing and deleting measurements.

Every number comes from `viewer.render.measure`; this module only turns mouse input into measurements in image
pixel coordinates (column, row; pixel (c, r) covers c..c+1, r..r+1) and draws them as items parented to the
viewport's image item, so zoom, pan, rotation and flips apply to them.

API
---
``MeasurementTools(viewport)``: ``tool`` (one of ``MEASURE_TOOLS``), ``set_tool(name)``, ``measurements``
    (list of ``PlacedMeasurement``), ``add(m) -> PlacedMeasurement``, ``label(m)``, ``clear()``,
    ``selected``, ``select(placed | None)``, ``delete_selected() -> bool``, ``hit(point)``,
    ``show_for(stack_index)``, ``drag(ev) -> bool`` / ``click(ev) -> bool`` (pyqtgraph mouse events, True when
    a tool took them), ``hover(point)``, ``cancel_pending()``.

Mouse: with a drawing tool a left-drag draws a new measurement from the press position (not from where the
drag threshold fired: that was 5–6 screen pixels late). With any tool a click on a measurement selects it; a
drag on the selected one moves it, a drag on one of its handles edits that point; Delete removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsRectItem,
)

from viewer.render.measure import (
    Angle,
    Distance,
    EllipseRoi,
    Measurement,
    RectangleRoi,
    distance_to,
    handles,
    translated,
    value_units,
    with_handle,
)
from viewer.render.pipeline import modality_value

if TYPE_CHECKING:
    from viewer.ui.viewer.viewport import Viewport

Point = tuple[float, float]


class MeasureTool(StrEnum):
    """The left button's tool; NONE pans. A StrEnum, so menu actions may still name a tool by its text."""

    NONE = "none"
    DISTANCE = "distance"
    ANGLE = "angle"
    ELLIPSE = "ellipse"
    RECTANGLE = "rectangle"


MEASURE_TOOLS = tuple(MeasureTool)
DRAG_TOOLS = (MeasureTool.DISTANCE, MeasureTool.ELLIPSE, MeasureTool.RECTANGLE)  # drawn from the press
PICK_RADIUS = 6.0  # screen pixels within which a click or a press picks a measurement or a handle
HANDLE_SIZE = 7.0  # screen pixels

_COLOUR = QColor(0, 255, 120)
_SELECTED = QColor(255, 220, 0)


@dataclass
class PlacedMeasurement:
    stack_index: int
    measurement: Measurement
    items: list[QGraphicsItem]


def _remove(item: QGraphicsItem) -> None:
    scene = item.scene()
    item.setParentItem(None)
    if scene is not None:
        scene.removeItem(item)


class MeasurementTools:
    def __init__(self, viewport: Viewport) -> None:
        self.viewport = viewport
        self.tool = MeasureTool.NONE
        self.measurements: list[PlacedMeasurement] = []
        self.selected: PlacedMeasurement | None = None
        self._pending: list[Point] = []  # angle points clicked so far
        self._preview: list[QGraphicsItem] = []
        self._drag_mode: str | None = None  # 'new', 'move', 'handle' while a drag belongs to a tool
        self._drag_origin: Point | None = None
        self._drag_handle = 0
        self._drag_before: Measurement | None = None

    # ----------------------------------------------------------------- model
    def set_tool(self, tool: str) -> None:
        self.tool = MeasureTool(tool)  # ValueError for a name that is not a tool
        self.cancel_pending()

    def add(self, measurement: Measurement) -> PlacedMeasurement:
        """Place a measurement on the current frame and draw it."""
        placed = PlacedMeasurement(self.viewport.index, measurement, [])
        placed.items = self._items_for(measurement, selected=False)
        self.measurements.append(placed)
        return placed

    def label(self, measurement: Measurement) -> str:
        vp = self.viewport
        cal = vp.calibration()
        if isinstance(measurement, Distance):
            return measurement.label(cal)
        if isinstance(measurement, Angle):
            return measurement.label()
        frame = vp._frame
        if frame is None or vp.stack is None or frame.ndim != 2:
            return ""
        header = vp.stack.header(vp.index)
        return measurement.stats(modality_value(header, frame), cal, value_units(header)).label()

    def clear(self) -> None:
        for placed in self.measurements:
            for item in placed.items:
                _remove(item)
        self.measurements = []
        self.selected = None
        self.cancel_pending()

    def select(self, placed: PlacedMeasurement | None) -> None:
        previous, self.selected = self.selected, placed
        for changed in {id(p): p for p in (previous, placed) if p is not None}.values():
            self._redraw(changed)

    def delete_selected(self) -> bool:
        placed = self.selected
        if placed is None or placed not in self.measurements:
            return False
        for item in placed.items:
            _remove(item)
        self.measurements.remove(placed)
        self.selected = None
        return True

    def update(self, placed: PlacedMeasurement, measurement: Measurement) -> None:
        placed.measurement = measurement
        self._redraw(placed)

    def show_for(self, index: int) -> None:
        for placed in self.measurements:
            for item in placed.items:
                item.setVisible(placed.stack_index == index)
        if self.selected is not None and self.selected.stack_index != index:
            self.select(None)

    # ----------------------------------------------------------------- picking
    def _pick_radius(self) -> float:
        """PICK_RADIUS in image pixels at the current zoom."""
        return PICK_RADIUS / max(self.viewport.zoom_factor(), 1e-6)

    def hit(self, point: Point) -> tuple[PlacedMeasurement, int | None] | None:
        """The measurement under `point` on the shown frame and the handle picked (selected one only), or None."""
        radius = self._pick_radius()
        selected = self.selected
        if selected is not None and selected.stack_index == self.viewport.index:
            for i, (hx, hy) in enumerate(handles(selected.measurement)):
                if (hx - point[0]) ** 2 + (hy - point[1]) ** 2 <= radius**2:
                    return selected, i
        best: tuple[float, PlacedMeasurement] | None = None
        for placed in self.measurements:
            if placed.stack_index != self.viewport.index:
                continue
            distance = distance_to(placed.measurement, point)
            if distance <= radius and (best is None or distance < best[0] or placed is selected):
                best = (distance, placed)
        return (best[1], None) if best is not None else None

    # ----------------------------------------------------------------- mouse
    def _image_point(self, scene_pos) -> Point:
        p = self.viewport.image_item.mapFromScene(scene_pos)
        return (float(p.x()), float(p.y()))

    def drag(self, ev) -> bool:
        """A left-button drag event; True when a tool handles it (else the view pans)."""
        if ev.isStart():
            self._drag_mode = None
            # the press position, not where the drag threshold fired
            origin = self._image_point(ev.buttonDownScenePos())
            hit = self.hit(origin)
            if hit is not None and hit[0] is self.selected:
                placed, handle = hit
                self._drag_mode = "move" if handle is None else "handle"
                self._drag_handle = handle or 0
                self._drag_before = placed.measurement
            elif self.tool in DRAG_TOOLS:
                self._drag_mode = "new"
            else:
                return False
            self._drag_origin = origin
        if self._drag_mode is None or self._drag_origin is None:
            return False
        point = self._image_point(ev.scenePos())
        if self._drag_mode == "new":
            self._clear_preview()
            measurement = self._measurement_between(self._drag_origin, point)
            if ev.isFinish():
                self._drag_mode = self._drag_origin = None
                self.select(self.add(measurement))
            else:
                self._preview = self._items_for(measurement, selected=False)
            return True
        placed, before = self.selected, self._drag_before
        if placed is None or before is None:
            self._drag_mode = None
            return True
        if self._drag_mode == "move":
            moved = translated(before, point[0] - self._drag_origin[0], point[1] - self._drag_origin[1])
        else:
            moved = with_handle(before, self._drag_handle, point)
        self.update(placed, moved)
        if ev.isFinish():
            self._drag_mode = self._drag_origin = self._drag_before = None
        return True

    def click(self, ev) -> bool:
        """A left-button click; True when a tool handles it."""
        point = self._image_point(ev.scenePos())
        if self.tool is MeasureTool.ANGLE and (self._pending or self.hit(point) is None):
            self._angle_click(point)
            return True
        hit = self.hit(point)
        self.select(hit[0] if hit is not None else None)
        return hit is not None

    def hover(self, point: Point) -> None:
        if self.tool is MeasureTool.ANGLE and self._pending and self._preview:
            line = self._preview[0]
            if isinstance(line, QGraphicsLineItem):
                anchor = self._pending[-1]
                line.setLine(anchor[0], anchor[1], point[0], point[1])

    def _angle_click(self, point: Point) -> None:
        self._pending.append(point)
        if len(self._pending) == 3:
            p0, vertex, p1 = self._pending
            self.cancel_pending()
            self.select(self.add(Angle(p0, vertex, p1)))
            return
        self._clear_preview()
        pen = self._pen(False)
        items: list[QGraphicsItem] = [
            QGraphicsLineItem(point[0], point[1], point[0], point[1], self.viewport.image_item)
        ]
        if len(self._pending) == 2:
            a, b = self._pending
            items.append(QGraphicsLineItem(a[0], a[1], b[0], b[1], self.viewport.image_item))
        for item in items:
            item.setPen(pen)  # type: ignore[attr-defined]
        self._preview = items

    def _measurement_between(self, a: Point, b: Point) -> Measurement:
        if self.tool is MeasureTool.DISTANCE:
            return Distance(a, b)
        if self.tool is MeasureTool.ELLIPSE:
            return EllipseRoi(((a[0] + b[0]) / 2, (a[1] + b[1]) / 2), (abs(b[0] - a[0]) / 2, abs(b[1] - a[1]) / 2))
        return RectangleRoi(a, b)

    def cancel_pending(self) -> None:
        self._pending = []
        self._drag_mode = self._drag_origin = self._drag_before = None
        self._clear_preview()

    def _clear_preview(self) -> None:
        for item in self._preview:
            _remove(item)
        self._preview = []

    # ----------------------------------------------------------------- drawing
    def _pen(self, selected: bool) -> QPen:
        pen = QPen(_SELECTED if selected else _COLOUR)
        pen.setCosmetic(True)  # two screen pixels at any zoom
        pen.setWidth(2)
        return pen

    def _redraw(self, placed: PlacedMeasurement) -> None:
        visible = placed.stack_index == self.viewport.index
        for item in placed.items:
            _remove(item)
        placed.items = self._items_for(placed.measurement, selected=placed is self.selected)
        for item in placed.items:
            item.setVisible(visible)

    def _items_for(self, m: Measurement, *, selected: bool) -> list[QGraphicsItem]:
        parent = self.viewport.image_item
        items: list[QGraphicsItem] = []
        if isinstance(m, Distance):
            items.append(QGraphicsLineItem(m.p0[0], m.p0[1], m.p1[0], m.p1[1], parent))
            anchor = m.p1
        elif isinstance(m, Angle):
            for a, b in ((m.p0, m.vertex), (m.vertex, m.p1)):
                items.append(QGraphicsLineItem(a[0], a[1], b[0], b[1], parent))
            anchor = m.vertex
        elif isinstance(m, EllipseRoi):
            (cx, cy), (rx, ry) = m.center, m.radii
            items.append(QGraphicsEllipseItem(cx - rx, cy - ry, 2 * rx, 2 * ry, parent))
            anchor = (cx + rx, cy + ry)
        else:
            x0, y0, x1, y1 = m.bounds()
            items.append(QGraphicsRectItem(x0, y0, x1 - x0, y1 - y0, parent))
            anchor = (x1, y1)
        pen = self._pen(selected)
        for item in items:
            item.setPen(pen)  # type: ignore[attr-defined]
        if selected:
            for hx, hy in handles(m):
                # a fixed screen size whatever the zoom: the handle ignores the view's scaling
                box = QGraphicsRectItem(-HANDLE_SIZE / 2, -HANDLE_SIZE / 2, HANDLE_SIZE, HANDLE_SIZE, parent)
                box.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
                box.setPos(hx, hy)
                box.setPen(pen)
                box.setBrush(QBrush(Qt.BrushStyle.NoBrush))
                items.append(box)
        colour = _SELECTED if selected else _COLOUR
        text = pg.TextItem(self.label(m), color=(colour.red(), colour.green(), colour.blue()), anchor=(0, 0))
        text.setParentItem(parent)
        text.setPos(anchor[0], anchor[1])
        items.append(text)
        return items
