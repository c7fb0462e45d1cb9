"""Drawing a presentation state over B's `Viewport` (thin Qt layer; all DICOM work is in viewer.render.gsps).

``PresentationOverlay(viewport).apply(ps_dataset_or_None)``:
* sets the viewport's Modality LUT (the state's replaces the image's), VOI (Softcopy VOI for the shown
  image/frame), presentation LUT shape/sequence, rotation/flip and zoom/pan from the displayed area, through
  the viewport's public setters;
* registers the overlay layer ``"presentation-state"`` (the viewport's ``add_overlay_layer`` hook) whose
  items, in image pixel coordinates, are the shutters and activated overlays (one RGBA pixmap) and the graphic
  and text annotations of the image/frame shown.
Pixel readouts and measurements keep the image's own rescale: they report the image's values (HU, say),
whatever LUT the state displays them through.
"""

from __future__ import annotations

import math

import numpy as np
from pydicom.dataset import Dataset
from PySide6.QtCore import QPointF
from PySide6.QtGui import QBrush, QColor, QImage, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsSimpleTextItem,
)

from viewer.render import gsps
from viewer.render.displaylist import GraphicItem, Item, TextItem, catmull_rom, view_transform

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


def mask_pixmap(layers: list[tuple[np.ndarray, tuple[int, int, int]]], rows: int, cols: int) -> QGraphicsPixmapItem:
    """Shutters and overlays as one RGBA pixmap, one pixmap pixel per image pixel."""
    rgba = np.zeros((rows, cols, 4), dtype=np.uint8)
    for mask, color in layers:
        rgba[mask] = (*color, 255)
    image = QImage(rgba.data, cols, rows, cols * 4, QImage.Format.Format_RGBA8888).copy()
    return QGraphicsPixmapItem(QPixmap.fromImage(image))


class PresentationOverlay:
    """One viewport's presentation state."""

    def __init__(self, viewport) -> None:
        self.viewport = viewport
        self.ps: Dataset | None = None

    def _current(self, index: int) -> tuple[object, str, int] | None:
        stack = self.viewport.stack
        if stack is None or not len(stack):
            return None
        ref = stack[index]
        source = stack.source(index)
        uid = ref.sop_instance_uid or str(source.header.get("SOPInstanceUID", ""))
        return source, uid, ref.frame

    def apply(self, ps: Dataset | None) -> None:
        self.ps = ps
        vp = self.viewport
        if ps is None:
            vp.remove_overlay_layer(LAYER)
            vp.set_presentation_modality(None)
            vp.set_presentation_lut(None)
            vp.set_presentation_shape(None)
            vp.set_voi(None)
            vp.set_rotation(0)
            vp.set_flip(horizontal=False, vertical=False)
            vp.fit()
            return
        current = self._current(vp.index)
        if current is not None:
            source, uid, frame = current
            header = source.frame_header(frame)
            signed = int(header.get("PixelRepresentation", 0) or 0) == 1
            vp.set_presentation_modality(ps)
            voi = gsps.softcopy_voi(ps, uid, frame, signed=signed)
            if voi is not None:
                vp.set_voi(voi)
            photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).upper()
            shape, plut = gsps.presentation_lut(ps, photometric)
            vp.set_presentation_lut(plut)
            vp.set_presentation_shape(None if plut is not None else shape)
            rotation, flip = gsps.rotation_and_flip(ps)
            # the viewport flips before it rotates; GSPS rotates, then flips
            vp.set_flip(horizontal=flip, vertical=False)
            vp.set_rotation((360 - rotation) % 360 if flip else rotation)
            area = gsps.displayed_area(ps, uid, frame, source.columns, source.rows)
            if area.size_mode == "MAGNIFY":
                vp.set_zoom(area.magnification)
            else:
                vp.fit()
            x0, y0, x1, y1 = area.image_rect()
            vp.set_pan_center((x0 + x1) / 2, (y0 + y1) / 2)
        vp.add_overlay_layer(LAYER, self._factory)

    def _factory(self, viewport, index: int) -> list[QGraphicsItem]:
        ps = self.ps
        current = self._current(index)
        if ps is None or current is None:
            return []
        source, uid, frame = current
        if not gsps.applies_to(ps, uid, frame):
            return []
        rotation, flip = gsps.rotation_and_flip(ps)
        spatial = gsps.SpatialTransform(source.columns, source.rows, rotation, flip)
        area = gsps.displayed_area(ps, uid, frame, source.columns, source.rows)
        view = view_transform(spatial, area, 1000, 1000)
        out: list[QGraphicsItem] = []
        masks: list[tuple[np.ndarray, tuple[int, int, int]]] = []
        layers = gsps.graphic_layers(ps)
        for group, layer in gsps.activated_overlays(ps):
            plane = gsps.overlay_plane(ps, source, group, frame)
            if plane is not None:
                masks.append((plane, layers[layer].color if layer in layers else (255, 255, 255)))
        shutter = gsps.shutter_mask(ps, source, frame)
        if shutter is not None:
            masks.append((shutter, gsps.shutter_color(ps)[1]))
        if masks:
            out.append(mask_pixmap(masks, source.rows, source.columns))
        out.extend(items_for(gsps.annotations(ps, uid, frame), view))
        for item in out:
            item.setZValue(10)
        return out
