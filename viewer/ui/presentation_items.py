"""Drawing a presentation state over B's `Viewport` (thin Qt layer; all DICOM work is in viewer.render.gsps).

``PresentationOverlay(viewport).apply(ps_dataset_or_None, path=None, reset_view=False)`` chooses the state
for the viewport (``Viewport.set_presentation``); the viewport's composition (``viewer.render.view.compose``)
then applies every stage of it: LUTs, palette, ICC, blending, overlays, shutters, spatial transformation and
displayed area. ``items_for(annotations, view)`` turns the composition's annotation items into
QGraphicsItems in image pixel coordinates (the viewport parents them to its image item).
Pixel readouts and measurements keep the image's own rescale: they report the image's values (HU, say),
whatever LUT the state displays them through.
"""

from __future__ import annotations

import math

import numpy as np
from pydicom.dataset import Dataset
from PySide6.QtCore import QPointF
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsSimpleTextItem

from viewer.render.displaylist import GraphicItem, Item, TextItem, catmull_rom

LAYER = "presentation-state"


def _to_image(points, units: str, view) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if units.upper() == "DISPLAY":
        return view.display_to_image(view.display_units_to_screen(pts))
    return pts


def _pen(color) -> QPen:
    pen = QPen(QColor(*color))
    pen.setCosmetic(True)  # constant on-screen width whatever the zoom
    pen.setWidthF(1.5)
    return pen


def graphic_path(item: GraphicItem, view) -> QPainterPath:
    """The item's outline in image pixel coordinates."""
    pts = _to_image(item.points, item.units, view)
    path = QPainterPath()
    kind = item.kind.upper()
    if kind == "POINT":
        x, y = pts[0]
        for dx, dy in ((-1.5, 0), (0, -1.5)):
            path.moveTo(x + dx, y + dy)
            path.lineTo(x - dx, y - dy)
        return path
    if kind == "CIRCLE" and len(pts) >= 2:
        r = float(np.hypot(*(pts[1] - pts[0])))
        path.addEllipse(QPointF(*pts[0]), r, r)
        return path
    if kind == "ELLIPSE" and len(pts) >= 4:
        c = (pts[0] + pts[1]) / 2
        u, v = (pts[1] - pts[0]) / 2, (pts[3] - pts[2]) / 2
        t = np.linspace(0, 2 * math.pi, 73)
        pts = c + np.outer(np.cos(t), u) + np.outer(np.sin(t), v)
    elif kind == "INTERPOLATED":
        pts = catmull_rom(pts)
    path.moveTo(*pts[0])
    for p in pts[1:]:
        path.lineTo(*p)
    return path


def items_for(annotations: list[Item], view) -> list[QGraphicsItem]:
    out: list[QGraphicsItem] = []
    for item in annotations:
        if isinstance(item, GraphicItem):
            g = QGraphicsPathItem(graphic_path(item, view))
            g.setPen(_pen(item.color))
            if item.filled:
                g.setBrush(QBrush(QColor(*item.color)))
            out.append(g)
        elif isinstance(item, TextItem):
            out.extend(_text_items(item, view))
    return out


def _text_items(item: TextItem, view) -> list[QGraphicsItem]:
    text = QGraphicsSimpleTextItem(item.text)
    text.setBrush(QBrush(QColor(*item.color)))
    text.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)  # upright, constant size
    out: list[QGraphicsItem] = [text]
    if item.box is not None:
        corners = _to_image(item.box, item.box_units, view)
        screen = view.image_to_display(corners)
        top_left = corners[int(np.argmin(screen[:, 0] + screen[:, 1]))]
        text.setPos(QPointF(*top_left))
    if item.anchor is not None:
        anchor = _to_image([item.anchor], item.anchor_units, view)[0]
        if item.box is None:
            text.setPos(QPointF(anchor[0] + 2, anchor[1] + 2))
        if item.anchor_visible:
            line = QPainterPath()
            line.moveTo(*anchor)
            line.lineTo(text.pos())
            path_item = QGraphicsPathItem(line)
            path_item.setPen(_pen(item.color))
            out.append(path_item)
    return out


class PresentationOverlay:
    """One viewport's presentation-state choice."""

    def __init__(self, viewport) -> None:
        self.viewport = viewport
        self.ps: Dataset | None = None

    def apply(
        self,
        ps: Dataset | None,
        path: str | None = None,
        *,
        superimposed: str | None = None,
        reset_view: bool = False,
    ) -> None:
        """Show the viewport through `ps` (None: none); `reset_view` when the user chose it explicitly.

        `superimposed` is a blending state's superimposed image (a path the chooser resolved)."""
        self.ps = ps
        self.viewport.set_presentation(ps, path, superimposed=superimposed, reset_view=reset_view)
