"""One image viewport: a pyqtgraph view of one frame of a `SeriesStack`, with W/L, zoom/pan, scroll, cine,
annotations, pixel readout, measurements and a hook for presentation-state overlays.

Mouse: right-drag window/level (horizontal width, vertical level), left-drag pan (or the active measurement
tool, see tools.py: draw from the press, click selects, drag moves or edits the selected one), wheel scroll the
stack, Ctrl+wheel zoom, middle-drag zoom, double-click maximise (the area restores on the next one).
Keys: see keys.py (one table of bindings).

The picture is ONE composition (``viewer.render.view.compose``) of the viewport's Qt-free ``ViewState``
(``view_state()`` / ``set_view_state(state)``): the viewport paints its bitmap (in image orientation, placed
by the composed spatial transformation, so tools keep image coordinates), draws the state's annotations as
vector items and turns input into state changes; it does not sequence presentation-state stages itself.
``set_presentation(dataset, path, reset_view=False)`` chooses the presentation state; the user's window,
transform, zoom and pan stay on top of it until reset (F fits, 0 restores the window).

Overlay hook (for other layers, e.g. a key image's region): ``add_overlay_layer(name, factory)`` where
``factory(viewport, stack_index) -> Iterable[QGraphicsItem]`` returns items in image pixel coordinates
(column, row; pixel centres at integer + 0.5 in item space, i.e. stored pixel (c, r) covers c..c+1, r..r+1).
The items are parented to the image item, so zoom, pan, rotation and flips apply to them; the factory is called
again whenever the frame changes or ``refresh_overlays()`` is called. ``remove_overlay_layer(name)`` drops it.
Public setters: ``set_voi``, ``set_invert``, ``set_rotation``, ``set_flip``, ``set_zoom``, ``set_pan_center``, ``fit``.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPen, QTransform, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsLineItem,
    QVBoxLayout,
    QWidget,
)

from viewer.render import gsps
from viewer.render.cache import FrameCache, neighbour_order
from viewer.render.decode import ImageSource
from viewer.render.displaylist import DisplayList
from viewer.render.lut import DisplayLut, Voi, Window, min_max_window
from viewer.render.measure import (
    Calibration,
    Measurement,
    scale_bar,
    value_units,
)
from viewer.render.pipeline import Preset, modality_value, presets_for
from viewer.render.series import SeriesStack, annotations, orientation_labels, reference_line
from viewer.render.view import (
    ComposeCache,
    DecodedImage,
    Interpolation,
    PresentationKind,
    ViewState,
    compose,
)
from viewer.ui.viewer.frame_item import FrameItem
from viewer.ui.viewer.keys import handle_key
from viewer.ui.viewer.overlay_text import OverlayLabel, ScaleBarWidget, overlay_font, overlay_pixel_size
from viewer.ui.viewer.tools import MEASURE_TOOLS, MeasurementTools, PlacedMeasurement

__all__ = ["MEASURE_TOOLS", "PlacedMeasurement", "Viewport"]

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

OverlayFactory = Callable[["Viewport", int], Iterable[QGraphicsItem]]


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
            vp._user_geometry_changed()
            vp._zoom_changed()
            return
        super().mouseDragEvent(ev, axis)
        vp._user_geometry_changed()
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
            vp._user_geometry_changed()
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

    def __init__(
        self, cache: FrameCache, parent: QWidget | None = None, *, luts: OrderedDict[Hashable, DisplayLut] | None = None
    ) -> None:
        super().__init__(parent)
        self.cache = cache
        # display LUTs are keyed by what they are made of (header attributes, VOI, state): viewports of one
        # area share them, so four series of one protocol scrolled with the same window build one table
        self._luts: OrderedDict[Hashable, DisplayLut] = luts if luts is not None else OrderedDict()
        self.stack: SeriesStack | None = None
        self.index = 0
        # Everything that decides the picture lives in one Qt-free ViewState (render/view.py); the viewport
        # paints compose(state) and turns input into state changes.
        self._view = ViewState("")
        self._presentation: Dataset | None = None  # the loaded dataset of the chosen state (path in _view)
        # a blending state's superimposed image, decoded on a worker: (path, source); None until it arrives
        self._superimposed: tuple[str, ImageSource] | None = None
        self._superimposed_loading: str | None = None
        self._compose_cache = self._new_compose_cache()
        self._display: DisplayList | None = None
        self._geometry_key: tuple | None = None
        self._state_items: list[QGraphicsItem] = []
        self._state_items_key: tuple | None = None
        self._markers_key: tuple | None = None
        self._reference_drawn: list | None = None
        self.tools = MeasurementTools(self)
        self.reference_segments: list[tuple[tuple[float, float], tuple[float, float]]] = []
        self.displayed_index: int | None = None
        self.frames_shown = 0
        self.order_settled = False  # True once the position order (from a worker) has been applied
        self._moved_since_open = False
        self._frame: np.ndarray | None = None
        self._direction = 1
        self._presets: list[Preset] = []
        self._overlay_layers: dict[str, OverlayFactory] = {}
        self._overlay_items: dict[str, list[QGraphicsItem]] = {}
        self._reference_items: list[QGraphicsItem] = []

        self.view = pg.GraphicsView(self)
        self.view.setBackground("k")
        self.view_box = _ImageViewBox(self)
        self.view.setCentralItem(self.view_box)
        self.view_box.sigResized.connect(self._view_resized)
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
        self.set_smooth(True)
        self._prefetch_timer = QTimer(self)
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.timeout.connect(self._schedule_prefetch)
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(self._cine_tick)
        self.cine_fps = 15.0
        self._frame_arrived.connect(self._on_frame_arrived, Qt.ConnectionType.QueuedConnection)
        self.view.scene().sigMouseMoved.connect(self._mouse_moved)

    def _new_compose_cache(self) -> ComposeCache:
        return ComposeCache(max_luts=32, luts=self._luts)

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
    @property
    def smooth(self) -> bool:
        return self._view.interpolation is Interpolation.SMOOTH

    def set_smooth(self, smooth: bool) -> None:
        """Bilinear magnification for reading (the default), nearest neighbour to inspect single pixels; kept in
        the view state, so an export or film of this view interpolates as the screen does."""
        self._view = self._view.replace(interpolation=Interpolation.SMOOTH if smooth else Interpolation.NEAREST)
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
        self._view = ViewState("", interpolation=self._view.interpolation)
        self._presentation = None
        self._compose_cache = self._new_compose_cache()
        self._display = None
        self._geometry_key = None
        self._state_items_key = None
        self._markers_key = None
        self._frame = None
        self.displayed_index = None
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
        # the neighbours are decoded on the cache's workers once the first image is painted (a zero timer
        # runs after the pending repaint): decoding threads started now would compete for the interpreter
        # with the first paint
        self._prefetch_timer.start(0)

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
        ref = self.stack[index]
        source = self.stack.source(index)
        self._view = self._view.replace(path=ref.path, sop_instance_uid=ref.sop_instance_uid or "", frame=ref.frame)
        view, presentation, over = self._view, self._presentation, None
        if presentation is not None and PresentationKind.of(presentation) is PresentationKind.BLENDING:
            over = self._superimposed_source()
            if over is None:
                # the superimposed image is being decoded on a worker (never here): the image without the
                # state until it arrives, then the blend
                view, presentation = view.replace(presentation=None, superimposed=None), None
        try:
            display = compose(
                view,
                source=source,
                stored=frame,
                presentation=presentation,
                superimposed=over,
                cache=self._compose_cache,
            )
        except (gsps.PresentationStateError, ValueError, KeyError) as exc:
            # a state that cannot be applied must not leave the image unseen: show it without the state
            log.warning("presentation state not applied: %s", exc)
            display = compose(
                self._view.replace(presentation=None), source=source, stored=frame, cache=self._compose_cache
            )
        self._display = display
        bitmap = display.image_bitmap if display.image_bitmap is not None else display.bitmap
        # The view is asked to repaint directly rather than through the scene's queued dirty-item report: when
        # several viewports change in one step (2×2 scrolling together), that report arrives after the labels'
        # repaint of the window and every view would be painted twice.
        self.image_item.setImage(bitmap, update_scene=False)
        self.view.viewport().update()
        first = self.displayed_index is None
        self.displayed_index = index
        self.frames_shown += 1
        if first:
            self._apply_aspect(header)
        self._apply_geometry(display)
        self._draw_state_items(display)
        self._update_annotations(header, self.voi if not source.is_color else None)
        self.refresh_overlays()
        self._show_measurements_for(index)
        self._draw_reference_lines()

    def _superimposed_source(self) -> ImageSource | None:
        """The decoded superimposed image of the blending state shown, or None while it loads (started here)."""
        path = self._view.superimposed
        if path is None:
            return None
        if self._superimposed is not None and self._superimposed[0] == path:
            return self._superimposed[1]
        if self._superimposed_loading != path:
            from viewer.ui.workers import run_in_background

            self._superimposed_loading = path
            run_in_background(
                DecodedImage,
                path,
                on_result=lambda source, p=path: self._superimposed_arrived(p, source),
                on_error=lambda exc, p=path: self._superimposed_failed(p, exc),
            )
        return None

    def _superimposed_arrived(self, path: str, source: ImageSource) -> None:
        if self._superimposed_loading == path:
            self._superimposed_loading = None
        self._superimposed = (path, source)
        if self._view.superimposed == path:
            self._geometry_key = None
            self.rerender()

    def _superimposed_failed(self, path: str, exc: BaseException) -> None:
        if self._superimposed_loading == path:
            self._superimposed_loading = None
        log.warning("the blending state's superimposed image cannot be read: %s", exc)

    @property
    def superimposed_pending(self) -> bool:
        """True while a blending state's superimposed image is decoded on a worker (the blend follows)."""
        return self._superimposed_loading is not None

    def _draw_state_items(self, display: DisplayList) -> None:
        """The state's graphic and text annotations (vector items, image coordinates, over the bitmap)."""
        from viewer.ui.presentation_items import items_for

        # a window change or a scroll through slices the state does not annotate keeps the same vectors:
        # rebuilding QGraphicsItems on every frame costs more than composing the frame
        v = self._view
        key = (
            id(self._presentation),
            v.presentation,
            v.sop_instance_uid,
            v.frame,
            v.show_annotations,
            v.items,
            display.spatial,
            display.area,
            len(display.items),
        )
        if key == self._state_items_key:
            return
        self._state_items_key = key
        for item in self._state_items:
            self._remove_item(item)
        self._state_items = []
        if self._presentation is None or not display.items:
            return
        view = display.view(1000, 1000)  # DISPLAY units are size-independent once mapped back to the image
        for item in items_for(display.items, view):
            item.setParentItem(self.image_item)
            item.setZValue(10)
            self._state_items.append(item)

    @property
    def display_list(self) -> DisplayList | None:
        """The composition now on screen (its bitmap is what `image_item` shows, transformed)."""
        return self._display

    def rerender(self) -> None:
        if self._frame is not None and self.stack is not None and self.displayed_index is not None:
            self._show_frame(self.displayed_index, self._frame)

    # ----------------------------------------------------------------- the view state
    def view_state(self) -> ViewState:
        """The state of this viewport (print, export and the CLI compose it), with the measurements of the
        image shown as render items."""
        from viewer.render.gsps_writer import items_from_measurements

        placed = [
            (p.measurement, self.measurement_label(p.measurement))
            for p in self.measurements
            if p.stack_index == self.displayed_index
        ]
        # zoom stays None while the view fits the displayed area (a film box then fits it too); a user's
        # zoom is in this viewport's device pixels (scale it by film size / `view_size()` for another device)
        state = self._view
        return state.replace(items=tuple(items_from_measurements(placed))) if placed else state

    def view_size(self) -> tuple[int, int]:
        """The device size (width, height) the view state's zoom refers to."""
        return int(self.view_box.width()), int(self.view_box.height())

    def set_view_state(self, state: ViewState) -> None:
        """Adopt a state's settings (window, transform, zoom/pan, toggles); the image shown stays."""
        self._view = state.replace(
            path=self._view.path, sop_instance_uid=self._view.sop_instance_uid, frame=self._view.frame, items=()
        )
        self._geometry_key = None
        self.rerender()
        self.window_changed.emit(self)

    def _update_view(self, **changes) -> None:
        self._view = self._view.replace(**changes)
        self.rerender()

    @property
    def voi(self) -> Voi | None:
        """The VOI on screen: the user's, else the state's or the image's default."""
        if self._view.voi is not None:
            return self._view.voi
        lut = self._display.lut if self._display is not None else None
        return getattr(lut, "voi", None)

    @voi.setter
    def voi(self, voi: Voi | None) -> None:
        """Set the user's VOI for the next frame shown (no repaint now; `set_voi` repaints)."""
        self._view = self._view.replace(voi=voi)

    @property
    def user_voi(self) -> Voi | None:
        return self._view.voi

    @property
    def invert(self) -> bool:
        return self._view.invert

    @property
    def rotation(self) -> int:
        return self._view.rotation

    @property
    def flip_h(self) -> bool:
        return self._view.flip_h

    @property
    def flip_v(self) -> bool:
        return self._view.flip_v

    @property
    def show_overlays(self) -> bool:
        return self._view.show_overlays

    @show_overlays.setter
    def show_overlays(self, show: bool) -> None:
        self._view = self._view.replace(show_overlays=bool(show))

    @property
    def presentation(self) -> Dataset | None:
        """The presentation state applied to the image shown (None: none, or it does not reference it)."""
        if self._presentation is None or self._display is None or self._view.presentation is None:
            return None
        uid = self._view.sop_instance_uid or str(self._presentation.get("SOPInstanceUID", ""))
        return self._presentation if gsps.applies_to(self._presentation, uid, self._view.frame) else None

    def set_presentation(
        self,
        state: Dataset | None,
        path: str | None = None,
        *,
        superimposed: str | None = None,
        reset_view: bool = False,
    ) -> None:
        """Show through `state` (None: none). The user's window, zoom/pan and transform stay on top unless
        `reset_view` (the state was chosen explicitly: its own VOI and spatial settings apply once)."""
        self._presentation = state
        if state is None:
            path = None
        elif path is None:
            path = str(getattr(state, "filename", "") or f"memory:{state.get('SOPInstanceUID', id(state))}")
        changes: dict = {"presentation": path, "superimposed": superimposed if state is not None else None}
        if reset_view:
            changes.update(voi=None, rotation=0, flip_h=False, flip_v=False, invert=False, zoom=None, pan=None)
        self._view = self._view.replace(**changes)
        self._geometry_key = None
        self.rerender()
        self.window_changed.emit(self)

    # ----------------------------------------------------------------- window / level
    @property
    def presets(self) -> list[Preset]:
        return list(self._presets)

    def set_voi(self, voi: Voi | None) -> None:
        """The user's VOI (None: back to the state's or the image's own window)."""
        self._update_view(voi=voi)
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
        self._update_view(voi=Window(center, width, current.function if current.function != "" else "LINEAR"))
        self.window_changed.emit(self)

    def set_invert(self, invert: bool) -> None:
        self._update_view(invert=bool(invert))

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
        """Place the image item by the composed spatial transformation (state's, then the user's)."""
        if self._display is None:
            return
        m = self._display.spatial.matrix
        # QTransform maps (x, y) to (m11 x + m21 y + dx, m12 x + m22 y + dy)
        self.image_item.setTransform(QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2]))

    def _apply_geometry(self, display: DisplayList, *, force: bool = False) -> None:
        """Set the view box to what the composition says (zoom/pan, else the displayed area) when that changed.

        The key holds only what the state decides, so scrolling through a series the user has zoomed keeps
        the user's zoom and pan, and a state's displayed area applies when it first shows (PS3.3 C.10.4).
        """
        width, height = int(self.view_box.width()), int(self.view_box.height())
        key = (display.spatial, display.area, display.zoom, display.center, width, height)
        if not force and key == self._geometry_key:
            return
        self._geometry_key = key
        self._apply_transform()
        self._update_markers()
        if width <= 0 or height <= 0:
            return
        inv = np.linalg.inv(display.view(width, height).transformed_matrix)
        (x0, y0), (x1, y1) = (inv[:2, :2] @ np.array(p, dtype=float) + inv[:2, 2] for p in ((0, 0), (width, height)))
        self.view_box.setRange(QRectF(x0, y0, x1 - x0, y1 - y0), padding=0.0)

    def _view_resized(self, *_args) -> None:
        if self._display is not None and self._view.zoom is None:
            self._apply_geometry(self._display)

    def _user_geometry_changed(self) -> None:
        """The user zoomed or panned with the mouse: that is now the view's zoom and pan."""
        if self._display is None:
            return
        self._view = self._view.replace(zoom=self.zoom_factor(), pan=self.pan_center())
        self._display.zoom, self._display.center = self._view.zoom, self._view.pan
        width, height = int(self.view_box.width()), int(self.view_box.height())
        d = self._display
        self._geometry_key = (d.spatial, d.area, d.zoom, d.center, width, height)

    def set_rotation(self, degrees: int) -> None:
        self._update_view(rotation=degrees % 360)

    def rotate(self) -> None:
        self._view = self._view.rotated(90)
        self.rerender()

    def set_flip(self, horizontal: bool | None = None, vertical: bool | None = None) -> None:
        changes = {}
        if horizontal is not None:
            changes["flip_h"] = horizontal
        if vertical is not None:
            changes["flip_v"] = vertical
        self._update_view(**changes)

    def fit(self) -> None:
        """Back to the displayed area (the whole image without a state), as its size mode says."""
        self._view = self._view.replace(zoom=None, pan=None)
        if self._display is not None:
            self._display.zoom = self._display.center = None
            self._apply_geometry(self._display, force=True)
        self._zoom_changed()

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel."""
        (x0, x1), _ = self.view_box.viewRange()
        width = self.view_box.width()
        return width / (x1 - x0) if x1 > x0 and width > 0 else 1.0

    def pan_center(self) -> tuple[float, float]:
        """The image coordinates (before any transformation) at the centre of the view."""
        centre = self.view_box.viewRect().center()
        point = self.image_item.mapFromParent(centre)
        return float(point.x()), float(point.y())

    def set_zoom(self, factor: float) -> None:
        self._view = self._view.replace(zoom=float(factor), pan=self.pan_center())
        self.rerender()
        self._zoom_changed()

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def set_pan_center(self, col: float, row: float) -> None:
        self._view = self._view.replace(zoom=self.zoom_factor(), pan=(float(col), float(row)))
        self.rerender()

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
        self._update_markers(place=False)
        self._update_scale_bar()
        self._place_labels()

    def _update_markers(self, *, place: bool = True) -> None:
        if self.stack is None or not len(self.stack):
            return
        # the labels follow the image's orientation and the composed transform only: scrolling through a
        # series (or changing the window) keeps them
        header = self.stack.header(self.index)
        key = (
            id(self.stack),
            str(header.get("ImageOrientationPatient", "")),
            str(header.get("PatientOrientation", "")),
            "ImagePositionPatient" in header,
            self._display.spatial if self._display is not None else (self.flip_h, self.flip_v, self.rotation),
        )
        if key == self._markers_key:
            if place:
                self._place_labels()
            return
        self._markers_key = key
        if self._display is not None:
            # the composed transform rotates, then flips; the labels take the flip first: H·R(r) = R(−r)·H
            spatial = self._display.spatial
            rotation = (-spatial.rotation) % 360 if spatial.flip else spatial.rotation
            labels = orientation_labels(self.stack.geometry(self.index), flip_h=spatial.flip, rotation=rotation)
        else:
            labels = orientation_labels(
                self.stack.geometry(self.index), flip_h=self.flip_h, flip_v=self.flip_v, rotation=self.rotation
            )
        for name, label in self.marker_labels.items():
            label.setText(labels.get(name, ""))
        if place:
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
        if self._reference_drawn == self.reference_segments and all(
            item.parentItem() is self.image_item for item in self._reference_items
        ):
            return  # the same lines are on screen (every frame shown asks again)
        self._reference_drawn = list(self.reference_segments)
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
