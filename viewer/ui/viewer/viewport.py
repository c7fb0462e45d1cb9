"""One image viewport: a pyqtgraph view of one frame of a `SeriesStack`, with W/L, zoom/pan, scroll, cine,
annotations, pixel readout, measurements and a hook for presentation-state overlays.

Mouse: right-drag window/level (horizontal width, vertical level), left-drag pan (or the active measurement
tool, see tools.py: draw from the press, click selects, drag moves or edits the selected one), wheel scroll the
stack, Ctrl+wheel zoom, middle-drag zoom, double-click maximise (the area restores on the next one).
Keys: see keys.py (one table of bindings).

Overlay hook (for presentation states): ``add_overlay_layer(name, factory)`` where
``factory(viewport, stack_index) -> Iterable[QGraphicsItem]`` returns items in image pixel coordinates
(column, row; pixel centres at integer + 0.5 in item space, i.e. stored pixel (c, r) covers c..c+1, r..r+1).
The items are parented to the image item, so zoom, pan, rotation and flips apply to them; the factory is called
again whenever the frame changes or ``refresh_overlays()`` is called. ``remove_overlay_layer(name)`` drops it.
A presentation state also uses ``set_voi``, ``set_presentation_shape``, ``set_presentation_lut``,
``set_rotation``, ``set_flip``, ``set_zoom`` and ``set_pan_center`` (all public).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPen, QTransform, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsLineItem,
    QVBoxLayout,
    QWidget,
)

from viewer.render.cache import FrameCache, neighbour_order
from viewer.render.decode import overlay_mask
from viewer.render.gsps import modality_header
from viewer.render.lut import DisplayLut, LutData, Voi, Window, build_display_lut, min_max_window
from viewer.render.measure import (
    Calibration,
    Measurement,
    scale_bar,
    value_units,
)
from viewer.render.pipeline import Preset, default_voi, modality_value, presets_for, render_color
from viewer.render.series import SeriesStack, annotations, orientation_labels, reference_line
from viewer.ui.viewer.frame_item import FrameItem
from viewer.ui.viewer.keys import handle_key
from viewer.ui.viewer.overlay_text import OverlayLabel, ScaleBarWidget, overlay_font, overlay_pixel_size
from viewer.ui.viewer.tools import MEASURE_TOOLS, MeasurementTools, PlacedMeasurement

__all__ = ["MEASURE_TOOLS", "PlacedMeasurement", "Viewport"]

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

OverlayFactory = Callable[["Viewport", int], Iterable[QGraphicsItem]]

_LUT_KEYWORDS = (
    "RescaleSlope",
    "RescaleIntercept",
    "PhotometricInterpretation",
    "PresentationLUTShape",
    "BitsStored",
    "BitsAllocated",
    "PixelRepresentation",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
)


class _ImageViewBox(pg.ViewBox):
    """A ViewBox whose right-drag is window/level and whose wheel scrolls the stack (handled by the viewport)."""

    def __init__(self, viewport: Viewport) -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self._viewport = viewport

    def mouseDragEvent(self, ev, axis=None) -> None:
        vp = self._viewport
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            delta = ev.screenPos() - ev.lastScreenPos()
            vp.adjust_window(delta.x(), delta.y())
            return
        if ev.button() == Qt.MouseButton.LeftButton and vp.tools.drag(ev):
            ev.accept()
            return
        if ev.button() == Qt.MouseButton.MiddleButton:
            ev.accept()
            dy = (ev.screenPos() - ev.lastScreenPos()).y()
            self.scaleBy((math.exp(dy * 0.01), math.exp(dy * 0.01)))
            vp._zoom_changed()
            return
        super().mouseDragEvent(ev, axis)
        vp._zoom_changed()

    def mouseClickEvent(self, ev) -> None:
        vp = self._viewport
        vp.activated.emit(vp)
        if ev.double() and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            vp.maximise_requested.emit(vp)
            return
        if ev.button() == Qt.MouseButton.LeftButton:
            vp.tools.click(ev)
        ev.accept()

    def wheelEvent(self, ev, axis=None) -> None:
        vp = self._viewport
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            vp._zoom_changed()
            return
        ev.accept()
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        vp.scroll(-1 if delta > 0 else 1)


class Viewport(QWidget):
    """Shows one frame of a stack. Signals carry the viewport itself so the area can synchronise."""

    index_changed = Signal(object, int)
    activated = Signal(object)
    smooth_changed = Signal(object)
    maximise_requested = Signal(object)  # a double click: the area maximises this viewport or restores the layout
    window_changed = Signal(object)
    _frame_arrived = Signal(object, object)  # (key, frame) from a cache worker thread

    def __init__(self, cache: FrameCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cache = cache
        self.stack: SeriesStack | None = None
        self.index = 0
        self.voi: Voi | None = None
        self.invert = False
        self.presentation_shape: str | None = None
        self.presentation_lut: LutData | None = None
        # A presentation state's Modality LUT replaces the image's own for display (PS3.4 N.2).
        self.presentation_modality: Dataset | None = None
        self.rotation = 0
        self.flip_h = False
        self.flip_v = False
        self.show_overlays = True
        self.tools = MeasurementTools(self)
        self.reference_segments: list[tuple[tuple[float, float], tuple[float, float]]] = []
        self.displayed_index: int | None = None
        self.frames_shown = 0
        self.order_settled = False  # True once the position order (from a worker) has been applied
        self._moved_since_open = False
        self._frame: np.ndarray | None = None
        self._lut: DisplayLut | None = None
        self._lut_key: tuple | None = None
        self._direction = 1
        self._presets: list[Preset] = []
        self._overlay_layers: dict[str, OverlayFactory] = {}
        self._overlay_items: dict[str, list[QGraphicsItem]] = {}
        self._reference_items: list[QGraphicsItem] = []
        self._overlay_masks: dict[tuple[str, int], np.ndarray] = {}

        self.view = pg.GraphicsView(self)
        self.view.setBackground("k")
        self.view_box = _ImageViewBox(self)
        self.view.setCentralItem(self.view_box)
        self.image_item = FrameItem()
        self.view_box.addItem(self.image_item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        self._text_pixels = overlay_pixel_size(self.width(), self.height())
        self.corner_labels = {
            name: self._make_label(right=name.endswith("right"))
            for name in ("top_left", "top_right", "bottom_left", "bottom_right")
        }
        self.marker_labels = {name: self._make_label(center=True) for name in ("left", "right", "top", "bottom")}
        self.readout_label = self._make_label()
        self.scale_bar = ScaleBarWidget(self)
        self.scale_bar.set_bar(None)
        self.view_box.sigRangeChanged.connect(lambda *_: self._update_scale_bar())
        self.smooth = True
        self.set_smooth(True)
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(self._cine_tick)
        self.cine_fps = 15.0
        self._frame_arrived.connect(self._on_frame_arrived, Qt.ConnectionType.QueuedConnection)
        self.view.scene().sigMouseMoved.connect(self._mouse_moved)

    # ----------------------------------------------------------------- widgets
    def _make_label(self, *, center: bool = False, right: bool = False) -> OverlayLabel:
        label = OverlayLabel(self)
        label.setFont(overlay_font(self._text_pixels))
        if center:
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        elif right:
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        return label

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_labels()

    def _overlay_widgets(self) -> list[QWidget]:
        return [*self.corner_labels.values(), *self.marker_labels.values(), self.readout_label, self.scale_bar]

    def _place_labels(self) -> None:
        w, h, m = self.width(), self.height(), 4
        pixels = overlay_pixel_size(w, h)
        if pixels != self._text_pixels:
            # the text follows the viewport: a 2×2 tile gets smaller text than a full-screen view
            self._text_pixels = pixels
            for widget in self._overlay_widgets():
                widget.setFont(overlay_font(pixels))
            self._update_scale_bar()
        for name, label in self.corner_labels.items():
            label.adjustSize()
            x = m if name.endswith("left") else w - label.width() - m
            y = m if name.startswith("top") else h - label.height() - m
            if name == "bottom_left":
                y -= self.readout_label.height()
            label.move(x, y)
            label.raise_()
        self.readout_label.adjustSize()
        self.readout_label.move(m, h - self.readout_label.height() - m)
        self.readout_label.raise_()
        for name, label in self.marker_labels.items():
            label.adjustSize()
            positions = {
                "left": (m, (h - label.height()) // 2),
                "right": (w - label.width() - m, (h - label.height()) // 2),
                "top": ((w - label.width()) // 2, m),
                "bottom": ((w - label.width()) // 2, h - label.height() - m),
            }
            label.move(*positions[name])
            label.raise_()
        bottom = self.marker_labels["bottom"]
        self.scale_bar.move((w - self.scale_bar.width()) // 2, bottom.y() - self.scale_bar.height())
        self.scale_bar.raise_()

    def _update_scale_bar(self) -> None:
        """A calibrated bar (Pixel Spacing) of a round length, recomputed on every zoom, pan and resize."""
        if self.stack is None or not len(self.stack) or self.displayed_index is None:
            self.scale_bar.set_bar(None)
            return
        cal = self.calibration()
        if not cal.calibrated:
            self.scale_bar.set_bar(None)
            return
        # the screen's horizontal runs along the image's rows after a 90° or 270° rotation
        spacing = cal.row_mm if self.rotation % 180 == 90 else cal.column_mm
        bar = scale_bar(float(spacing) / max(self.zoom_factor(), 1e-9), max(self.width() / 4, 1.0))
        self.scale_bar.set_bar(bar)
        bottom = self.marker_labels["bottom"]
        self.scale_bar.move((self.width() - self.scale_bar.width()) // 2, bottom.y() - self.scale_bar.height())

    # ----------------------------------------------------------------- interpolation
    def set_smooth(self, smooth: bool) -> None:
        """Bilinear magnification for reading (the default), nearest neighbour to inspect single pixels."""
        self.smooth = smooth
        self.view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        self.view.viewport().update()
        self.smooth_changed.emit(self)

    # ----------------------------------------------------------------- stack and frames
    def set_stack(self, stack: SeriesStack | None, index: int = 0) -> None:
        self.stop_cine()
        self.clear_measurements()
        self.stack = stack
        self.order_settled = False
        self._moved_since_open = False
        self.voi = None
        self.invert = False
        self.rotation, self.flip_h, self.flip_v = 0, False, False
        self._frame = None
        self._lut = None
        self._lut_key = None
        self.displayed_index = None
        self._overlay_masks.clear()
        if stack is None or not len(stack):
            self.image_item.clear()
            for label in [*self.corner_labels.values(), *self.marker_labels.values()]:
                label.setText("")
            self.scale_bar.set_bar(None)
            return
        rate = stack.cine_rate()
        self.cine_fps = rate if rate else 15.0
        self._presets = presets_for(stack.header(0))
        self.index = max(0, min(index, len(stack) - 1))
        # the first frame is decoded here so the image appears at once; every other frame comes from workers
        self._frame = self.cache.get_blocking(stack.key(self.index))
        self._show_frame(self.index, self._frame)
        self._apply_transform()
        self.fit()
        self._schedule_prefetch()

    def reorder(self, stack: SeriesStack, ordered: list | None) -> None:
        """Adopt a new slice order for `stack` (if still shown): image 1 of it, or the same slice once scrolled."""
        if stack is self.stack:
            self.order_settled = True
        if stack is not self.stack or not ordered or ordered == stack.slices:
            return
        current = stack.slices[self.index]
        stack.slices = list(ordered)
        stack.ordered = True
        self.index = stack.slices.index(current)
        self.displayed_index = self.index
        if not self._moved_since_open and self.index != 0:
            # a stack opens at image 1 of its reading order; once the reader has scrolled, stay on their slice
            self.set_index(0)
            self._moved_since_open = False
            return
        self._update_annotations(stack.header(self.index), self.voi)
        self._schedule_prefetch()
        self.index_changed.emit(self, self.index)

    def set_index(self, index: int) -> None:
        if self.stack is None or not len(self.stack):
            return
        index = max(0, min(index, len(self.stack) - 1))
        if index != self.index:
            self._direction = 1 if index > self.index else -1
            self._moved_since_open = True
        self.index = index
        key = self.stack.key(index)
        frame = self.cache.get(key)
        if frame is not None:
            self._show_frame(index, frame)
        else:
            self.cache.request(key, self._frame_arrived.emit)
        self._schedule_prefetch()
        self.index_changed.emit(self, index)

    def scroll(self, step: int) -> None:
        self.set_index(self.index + step)

    def visible_key(self) -> tuple[str, int] | None:
        return self.stack.key(self.index) if self.stack is not None and len(self.stack) else None

    def _schedule_prefetch(self) -> None:
        if self.stack is None:
            return
        parent = self.parent()
        visible_keys = getattr(parent, "visible_keys", None)
        self.cache.set_visible(visible_keys() if callable(visible_keys) else [self.stack.key(self.index)])
        order = neighbour_order(self.index, len(self.stack), direction=self._direction)
        self.cache.prefetch([self.stack.key(i) for i in order])

    def _on_frame_arrived(self, key, frame) -> None:
        if self.stack is None or key != self.stack.key(self.index):
            return  # the user has moved on; the frame stays cached
        self._show_frame(self.index, frame)

    def _show_frame(self, index: int, frame: np.ndarray) -> None:
        assert self.stack is not None
        self._frame = frame
        header = self.stack.header(index)
        source = self.stack.source(index)
        if source.is_color:
            pixels = render_color(frame, invert=self.invert)
            voi = None
        else:
            if self.voi is None:
                self.voi = default_voi(header)
                if self.voi is None:
                    values = modality_value(header, np.array([frame.min(), frame.max()]))
                    self.voi = min_max_window(values)
            lut_header = header
            if self.presentation_modality is not None:
                lut_header = modality_header(self.presentation_modality, header)
            lut = self._lut_for(lut_header)
            pixels = lut(frame)
            voi = self.voi
        if self.show_overlays:
            mask = self._overlay_mask(index)
            if mask is not None:
                pixels = pixels.copy()
                pixels[mask] = 255
        self.image_item.setImage(pixels)
        first = self.displayed_index is None
        self.displayed_index = index
        self.frames_shown += 1
        if first:
            self._apply_aspect(header)
        self._update_annotations(header, voi)
        self.refresh_overlays()
        self._show_measurements_for(index)
        self._draw_reference_lines()

    def _overlay_mask(self, index: int) -> np.ndarray | None:
        assert self.stack is not None
        key = self.stack.key(index)
        if key not in self._overlay_masks:
            source = self.stack.source(index)
            overlays = source.overlays(key[1])
            self._overlay_masks[key] = overlay_mask(overlays, source.rows, source.columns) if overlays else None
        return self._overlay_masks[key]

    def _lut_for(self, header) -> DisplayLut:
        key = (
            tuple(str(header.get(k, "")) for k in _LUT_KEYWORDS),
            id(header.get("ModalityLUTSequence")),
            self.voi,
            self.invert,
            self.presentation_shape,
            id(self.presentation_lut),
        )
        if self._lut is None or key != self._lut_key:
            self._lut = build_display_lut(
                header,
                self.voi,
                invert=self.invert,
                presentation_shape=self.presentation_shape,
                presentation_lut=self.presentation_lut,
            )
            self._lut_key = key
        return self._lut

    def rerender(self) -> None:
        if self._frame is not None and self.stack is not None and self.displayed_index is not None:
            self._show_frame(self.displayed_index, self._frame)

    # ----------------------------------------------------------------- window / level
    @property
    def presets(self) -> list[Preset]:
        return list(self._presets)

    def set_voi(self, voi: Voi | None) -> None:
        if voi is None and self.stack is not None and len(self.stack):
            voi = default_voi(self.stack.header(self.index))
        self.voi = voi
        self.rerender()
        self.window_changed.emit(self)

    def apply_preset(self, number: int) -> bool:
        """Preset `number` (1-based) from `presets`; False when there is no such preset."""
        if not 1 <= number <= len(self._presets):
            return False
        self.set_voi(self._presets[number - 1].voi)
        return True

    def adjust_window(self, dx: float, dy: float) -> None:
        """Right-drag: horizontal changes width, vertical changes level, in steps scaled to the current width."""
        if self.stack is None or self.stack.source(self.index).is_color:
            return
        current = self.voi if isinstance(self.voi, Window) else None
        if current is None:
            frame = self._frame if self._frame is not None else self.stack.load_frame(self.index)
            current = min_max_window(
                modality_value(self.stack.header(self.index), np.array([frame.min(), frame.max()]))
            )
        step = max(current.width / 256.0, 0.5)
        width = max(1.0, current.width + dx * step * 2)
        center = current.center + dy * step
        self.voi = Window(center, width, current.function if current.function != "" else "LINEAR")
        self.rerender()
        self.window_changed.emit(self)

    def set_invert(self, invert: bool) -> None:
        self.invert = invert
        self.rerender()

    def set_presentation_shape(self, shape: str | None) -> None:
        self.presentation_shape = shape
        self.rerender()

    def set_presentation_lut(self, lut: LutData | None) -> None:
        self.presentation_lut = lut
        self.rerender()

    def set_presentation_modality(self, state: Dataset | None) -> None:
        """Display through `state`'s Modality LUT instead of the image's (None: the image's own again)."""
        self.presentation_modality = state
        self.rerender()

    # ----------------------------------------------------------------- geometry of the view
    def _apply_aspect(self, header) -> None:
        spacing = header.get("PixelSpacing") or header.get("ImagerPixelSpacing")
        ratio = 1.0
        try:
            if spacing is not None and len(spacing) == 2 and float(spacing[1]) > 0:
                ratio = float(spacing[0]) / float(spacing[1])
        except (TypeError, ValueError):
            ratio = 1.0
        self.view_box.setAspectLocked(True, ratio=1.0 / ratio if ratio else 1.0)

    def _apply_transform(self) -> None:
        if self._frame is None:
            return
        rows, cols = self._frame.shape[:2]
        t = QTransform()
        t.translate(cols / 2, rows / 2)
        t.rotate(self.rotation)
        t.scale(-1 if self.flip_h else 1, -1 if self.flip_v else 1)
        t.translate(-cols / 2, -rows / 2)
        self.image_item.setTransform(t)
        self._update_markers()

    def set_rotation(self, degrees: int) -> None:
        self.rotation = degrees % 360
        self._apply_transform()

    def rotate(self) -> None:
        self.set_rotation(self.rotation + 90)

    def set_flip(self, horizontal: bool | None = None, vertical: bool | None = None) -> None:
        if horizontal is not None:
            self.flip_h = horizontal
        if vertical is not None:
            self.flip_v = vertical
        self._apply_transform()

    def fit(self) -> None:
        self.view_box.autoRange(padding=0.0)
        self._zoom_changed()

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel."""
        (x0, x1), _ = self.view_box.viewRange()
        width = self.view_box.width()
        return width / (x1 - x0) if x1 > x0 and width > 0 else 1.0

    def set_zoom(self, factor: float) -> None:
        center = self.view_box.viewRect().center()
        width, height = self.view_box.width() / factor, self.view_box.height() / factor
        self.view_box.setRange(QRectF(center.x() - width / 2, center.y() - height / 2, width, height), padding=0.0)
        self._zoom_changed()

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def set_pan_center(self, col: float, row: float) -> None:
        rect = self.view_box.viewRect()
        point = self.image_item.mapToParent(QPointF(col, row))
        rect.moveCenter(point)
        self.view_box.setRange(rect, padding=0.0)

    def _zoom_changed(self) -> None:
        if self.stack is not None and self.displayed_index is not None:
            self._update_annotations(self.stack.header(self.displayed_index), self.voi)

    # ----------------------------------------------------------------- annotations and readout
    def _update_annotations(self, header, voi: Voi | None) -> None:
        assert self.stack is not None
        corners = annotations(
            header,
            frame_index=self.displayed_index or 0,
            frame_count=len(self.stack),
            voi=voi,
            zoom=self.zoom_factor(),
            inverted=self.invert,
        )
        for name, lines in corners.items():
            self.corner_labels[name].setText("\n".join(lines))
        self._update_markers()
        self._update_scale_bar()
        self._place_labels()

    def _update_markers(self) -> None:
        if self.stack is None or not len(self.stack):
            return
        labels = orientation_labels(
            self.stack.geometry(self.index), flip_h=self.flip_h, flip_v=self.flip_v, rotation=self.rotation
        )
        for name, label in self.marker_labels.items():
            label.setText(labels.get(name, ""))
        self._place_labels()

    def pixel_readout(self, col: float, row: float) -> str:
        if self._frame is None or self.stack is None or self.displayed_index is None:
            return ""
        c, r = math.floor(col), math.floor(row)
        rows, cols = self._frame.shape[:2]
        if not (0 <= r < rows and 0 <= c < cols):
            return ""
        value = self._frame[r, c]
        if np.ndim(value):
            return f"({c}, {r})  RGB {', '.join(str(int(v)) for v in value)}"
        header = self.stack.header(self.displayed_index)
        modality = float(modality_value(header, float(value)))
        units = value_units(header)
        text = f"({c}, {r})  {modality:g}{(' ' + units) if units else ''}"
        if modality != float(value):
            text += f"  (stored {int(value)})"
        return text

    def _mouse_moved(self, scene_pos) -> None:
        point = self.image_item.mapFromScene(scene_pos)
        self.readout_label.setText(self.pixel_readout(point.x(), point.y()))
        self._place_labels()
        self.tools.hover((point.x(), point.y()))

    # ----------------------------------------------------------------- cine
    def start_cine(self, fps: float | None = None) -> None:
        if self.stack is None or len(self.stack) < 2:
            return
        if fps:
            self.cine_fps = fps
        self.cine_timer.start(max(1, round(1000.0 / self.cine_fps)))

    def stop_cine(self) -> None:
        self.cine_timer.stop()

    def toggle_cine(self) -> None:
        if self.cine_timer.isActive():
            self.stop_cine()
        else:
            self.start_cine()

    @property
    def cine_playing(self) -> bool:
        return self.cine_timer.isActive()

    def _cine_tick(self) -> None:
        if self.stack is None:
            return
        nxt = (self.index + 1) % len(self.stack)
        if self.displayed_index != self.index and self.cache.get(self.stack.key(self.index)) is None:
            return  # still decoding the current frame: wait rather than skip
        self._direction = 1
        self.set_index(nxt)

    # ----------------------------------------------------------------- overlays (presentation states)
    def add_overlay_layer(self, name: str, factory: OverlayFactory) -> None:
        self._overlay_layers[name] = factory
        self.refresh_overlays()

    def remove_overlay_layer(self, name: str) -> None:
        self._overlay_layers.pop(name, None)
        for item in self._overlay_items.pop(name, []):
            self._remove_item(item)

    def refresh_overlays(self) -> None:
        for name, factory in self._overlay_layers.items():
            for item in self._overlay_items.pop(name, []):
                self._remove_item(item)
            try:
                items = list(factory(self, self.index))
            except Exception:
                log.exception("overlay layer %s failed", name)
                items = []
            for item in items:
                item.setParentItem(self.image_item)
            self._overlay_items[name] = items

    def _remove_item(self, item: QGraphicsItem) -> None:
        scene = item.scene()
        item.setParentItem(None)
        if scene is not None:
            scene.removeItem(item)

    # ----------------------------------------------------------------- reference lines
    def set_reference_segments(self, segments: list[tuple[tuple[float, float], tuple[float, float]]]) -> None:
        self.reference_segments = segments
        self._draw_reference_lines()

    def reference_segments_from(self, other: Viewport) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        if self.stack is None or other.stack is None or not len(self.stack) or not len(other.stack):
            return []
        mine, theirs = self.stack.geometry(self.index), other.stack.geometry(other.index)
        if mine is None or theirs is None:
            return []
        if self.stack.header(self.index).get("FrameOfReferenceUID") != other.stack.header(other.index).get(
            "FrameOfReferenceUID"
        ):
            return []
        segment = reference_line(mine, theirs)
        return [segment] if segment else []

    def _draw_reference_lines(self) -> None:
        for item in self._reference_items:
            self._remove_item(item)
        self._reference_items = []
        pen = QPen(QColor(255, 200, 0))
        pen.setCosmetic(True)
        for (c0, r0), (c1, r1) in self.reference_segments:
            line = QGraphicsLineItem(c0 + 0.5, r0 + 0.5, c1 + 0.5, r1 + 0.5, self.image_item)
            line.setPen(pen)
            self._reference_items.append(line)

    # ----------------------------------------------------------------- measurements (see tools.py)
    @property
    def tool(self) -> str:
        return self.tools.tool

    def set_tool(self, tool: str) -> None:
        self.tools.set_tool(tool)

    @property
    def measurements(self) -> list[PlacedMeasurement]:
        return self.tools.measurements

    def calibration(self) -> Calibration:
        if self.stack is None or not len(self.stack):
            return Calibration()
        return Calibration.from_header(self.stack.header(self.index))

    def add_measurement(self, measurement: Measurement) -> PlacedMeasurement:
        """Place a measurement on the current frame (also used by the mouse tools) and draw it."""
        return self.tools.add(measurement)

    def measurement_label(self, measurement: Measurement) -> str:
        return self.tools.label(measurement)

    def clear_measurements(self) -> None:
        self.tools.clear()

    def delete_selected_measurement(self) -> bool:
        return self.tools.delete_selected()

    def _show_measurements_for(self, index: int) -> None:
        self.tools.show_for(index)

    # ----------------------------------------------------------------- keyboard (see keys.py)
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if handle_key(self, event):
            event.accept()
            return
        super().keyPressEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        # wheel over the labels (outside the view box) still scrolls
        self.scroll(-1 if event.angleDelta().y() > 0 else 1)
        event.accept()

    def focusInEvent(self, event) -> None:
        super().focusInEvent(event)
        self.activated.emit(self)
