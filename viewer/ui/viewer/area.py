"""The viewer area: a toolbar and a grid of viewports (1×1, 1×2, 2×2) sharing one frame cache."""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QPainter, QPainterPath, QPen, QTransform
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from viewer.render.cache import FrameCache
from viewer.render.decode import SourcePool
from viewer.render.series import SeriesStack
from viewer.ui.viewer.viewport import Viewport

log = logging.getLogger(__name__)

LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}
REGION_LAYER = "report-region"


def region_item(region: object) -> QGraphicsPathItem:
    """A report's SCOORD region (POINT, MULTIPOINT, POLYLINE, CIRCLE, ELLIPSE) as a path in image pixels."""
    kind = str(getattr(region, "graphic_type", "")).upper()
    points = [QPointF(float(x), float(y)) for x, y in getattr(region, "points", ())]
    path = QPainterPath()
    if kind == "CIRCLE" and len(points) >= 2:
        centre, edge = points[0], points[1]
        radius = ((edge.x() - centre.x()) ** 2 + (edge.y() - centre.y()) ** 2) ** 0.5
        path.addEllipse(centre, radius, radius)
    elif kind == "ELLIPSE" and len(points) >= 4:
        major_a, major_b, minor_a, minor_b = points[:4]
        centre = (major_a + major_b) / 2
        semi_major = ((major_b.x() - major_a.x()) ** 2 + (major_b.y() - major_a.y()) ** 2) ** 0.5 / 2
        semi_minor = ((minor_b.x() - minor_a.x()) ** 2 + (minor_b.y() - minor_a.y()) ** 2) ** 0.5 / 2
        angle = math.degrees(math.atan2(major_b.y() - major_a.y(), major_b.x() - major_a.x()))
        ellipse = QPainterPath()
        ellipse.addEllipse(QPointF(0, 0), semi_major, semi_minor)
        path = QTransform().translate(centre.x(), centre.y()).rotate(angle).map(ellipse)
    elif kind in ("POINT", "MULTIPOINT"):
        for point in points:  # a small cross: a point has no extent of its own
            path.moveTo(point.x() - 3, point.y())
            path.lineTo(point.x() + 3, point.y())
            path.moveTo(point.x(), point.y() - 3)
            path.lineTo(point.x(), point.y() + 3)
    elif points:
        path.moveTo(points[0])
        for point in points[1:]:
            path.lineTo(point)
    item = QGraphicsPathItem(path)
    pen = QPen(QColor(255, 200, 0))
    pen.setCosmetic(True)
    pen.setWidthF(2.0)
    item.setPen(pen)
    return item


class _ActiveFrame(QWidget):
    """The active viewport's frame: drawn over the image (transparent to the mouse) so it is always seen."""

    COLOUR = QColor(0x3A, 0x7B, 0xD5)
    WIDTH = 2

    def __init__(self, viewport: QWidget) -> None:
        super().__init__(viewport)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setGeometry(viewport.rect())
        self.hide()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        pen = QPen(self.COLOUR)
        pen.setWidth(self.WIDTH)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        half = self.WIDTH // 2
        painter.drawRect(self.rect().adjusted(half, half, -half, -half))
        painter.end()


class _Grid(QWidget):
    """Holds the viewports; viewports ask their parent for every visible key so none of them is evicted."""

    def __init__(self, area: ViewerArea) -> None:
        super().__init__(area)
        self._area = area
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)

    def visible_keys(self) -> list:
        return self._area.visible_keys()


PRESENTATION_LIST_DELAY_MS = 40
MESSAGE_SHOWN_MS = 10000  # a confirmation stays in the toolbar this long (the `message` signal has it too)


class ViewerArea(QWidget):
    """`open_series(series_uid)` shows a stored series in the active viewport."""

    series_opened = Signal(str)
    message = Signal(str)  # a confirmation or error for the status bar (e.g. "Saved presentation state …")

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        settings = getattr(getattr(ctx, "settings", None), "viewer", None)
        megabytes = getattr(settings, "cache_megabytes", 1024) if settings is not None else 1024
        self.pool = SourcePool()
        self.cache = FrameCache(self.pool.load, max_bytes=int(megabytes) << 20, workers=2)
        self.viewports: list[Viewport] = []
        self.active: Viewport | None = None
        self.sync_scroll = False
        self.reference_lines = bool(getattr(settings, "show_reference_lines", False))
        self.layout_name = "1x1"
        self.maximised: Viewport | None = None
        self._shown: list[Viewport] = []
        self.frames: dict[Viewport, _ActiveFrame] = {}
        self._syncing = False
        self._presentation_timers: dict[Viewport, QTimer] = {}
        self._luts: OrderedDict = OrderedDict()  # display LUTs shared by the viewports (see Viewport)
        # Presentation states: one overlay and one chooser per viewport; the toolbar shows the active one's.
        self.presentation_menus: dict[Viewport, object] = {}
        self.presentation_box = QWidget(self)
        QHBoxLayout(self.presentation_box).setContentsMargins(0, 0, 0, 0)

        self.toolbar = QToolBar("Viewer", self)
        self.grid_widget = _Grid(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.grid_widget, 1)
        self._build_toolbar()
        self.set_layout(getattr(settings, "default_layout", "1x1") if settings is not None else "1x1")

    # ----------------------------------------------------------------- toolbar
    def _build_toolbar(self) -> None:
        tb = self.toolbar
        layouts = QActionGroup(self)
        self.layout_actions: dict[str, QAction] = {}
        for name in LAYOUTS:
            action = QAction(name.replace("x", "×"), self, checkable=True)
            action.triggered.connect(lambda _=False, n=name: self.set_layout(n))
            layouts.addAction(action)
            tb.addAction(action)
            self.layout_actions[name] = action
        tb.addSeparator()
        for text, slot in (
            ("Fit", lambda: self._on_active(lambda v: v.fit())),
            ("1:1", lambda: self._on_active(lambda v: v.actual_size())),
            ("Rotate", lambda: self._on_active(lambda v: v.rotate())),
            ("Flip H", lambda: self._on_active(lambda v: v.set_flip(horizontal=not v.flip_h))),
            ("Flip V", lambda: self._on_active(lambda v: v.set_flip(vertical=not v.flip_v))),
            ("Invert", lambda: self._on_active(lambda v: v.set_invert(not v.invert))),
            ("Cine", lambda: self._on_active(lambda v: v.toggle_cine())),
        ):
            tb.addAction(text, slot)
        tb.addSeparator()
        tools = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool, text in (
            ("none", "Pan"),
            ("distance", "Distance"),
            ("angle", "Angle"),
            ("ellipse", "Ellipse ROI"),
            ("rectangle", "Rect ROI"),
        ):
            action = QAction(text, self, checkable=True)
            action.triggered.connect(lambda _=False, t=tool: self.set_tool(t))
            tools.addAction(action)
            tb.addAction(action)
            self.tool_actions[tool] = action
        self.tool_actions["none"].setChecked(True)
        tb.addAction("Clear", lambda: self._on_active(lambda v: v.clear_measurements()))
        self.save_annotations_action = tb.addAction("Save as PR", lambda: self.save_annotations())
        self.save_annotations_action.setToolTip(
            "Save this viewport's measurements as a Grayscale Softcopy Presentation State in the study"
        )
        tb.addSeparator()
        self.smooth_action = QAction("Smooth", self, checkable=True)
        self.smooth_action.setChecked(True)
        self.smooth_action.setToolTip("Smooth magnification (S); off: nearest neighbour, to inspect single pixels")
        self.smooth_action.toggled.connect(self.set_smooth)
        tb.addAction(self.smooth_action)
        self.sync_action = QAction("Sync", self, checkable=True)
        self.sync_action.toggled.connect(self.set_sync_scroll)
        tb.addAction(self.sync_action)
        self.reference_action = QAction("Ref lines", self, checkable=True)
        self.reference_action.setChecked(self.reference_lines)
        self.reference_action.toggled.connect(self.set_reference_lines)
        tb.addAction(self.reference_action)
        tb.addSeparator()
        tb.addWidget(self.presentation_box)
        self.last_message = ""
        self.message_label = QLabel("", self)
        tb.addWidget(self.message_label)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(lambda: self.message_label.setText(""))

    def set_smooth(self, smooth: bool) -> None:
        """Interpolation for every viewport: smooth (reading) or nearest neighbour (pixel inspection)."""
        for viewport in self.viewports:
            if viewport.smooth != smooth:
                viewport.set_smooth(smooth)
        if self.smooth_action.isChecked() != smooth:
            self.smooth_action.setChecked(smooth)

    def _on_smooth_changed(self, viewport: Viewport) -> None:
        if viewport is self.active and self.smooth_action.isChecked() != viewport.smooth:
            self.smooth_action.blockSignals(True)  # the key toggles that viewport only
            self.smooth_action.setChecked(viewport.smooth)
            self.smooth_action.blockSignals(False)

    def _on_active(self, fn) -> None:
        if self.active is not None:
            fn(self.active)

    def set_tool(self, tool: str) -> None:
        for viewport in self.viewports:
            viewport.set_tool(tool)
        if tool in self.tool_actions:
            self.tool_actions[tool].setChecked(True)

    # ----------------------------------------------------------------- layout
    def set_layout(self, name: str) -> None:
        """1×1 shows the active viewport; 1×2 and 2×2 the first two or four, in equal rows and columns."""
        rows, cols = LAYOUTS.get(name, (1, 1))
        self.layout_name = name if name in LAYOUTS else "1x1"
        self.maximised = None
        needed = rows * cols
        while len(self.viewports) < needed:
            viewport = Viewport(self.cache, self.grid_widget, luts=self._luts)
            # the grid shares its space out equally: no viewport may claim more for its labels or its view
            viewport.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            viewport.activated.connect(self._set_active)
            viewport.index_changed.connect(self._on_index_changed)
            viewport.maximise_requested.connect(self.toggle_maximised)
            viewport.smooth_changed.connect(self._on_smooth_changed)
            if hasattr(self, "smooth_action"):
                viewport.set_smooth(self.smooth_action.isChecked())
            viewport.installEventFilter(self)
            self.frames[viewport] = _ActiveFrame(viewport)
            self.viewports.append(viewport)
            self._add_presentation_menu(viewport)
        if needed == 1 and self.active is not None and self.active in self.viewports:
            shown = [self.active]
        else:
            shown = self.viewports[:needed]
        self._arrange(shown, rows, cols)
        if self.layout_name in self.layout_actions:
            self.layout_actions[self.layout_name].setChecked(True)

    def toggle_maximised(self, viewport: Viewport) -> None:
        """Double click: the viewport alone fills the area; again, the layout comes back as it was."""
        if self.maximised is not None:
            self.set_layout(self.layout_name)
            self._set_active(viewport)
            return
        if len(self._shown) < 2 or viewport not in self._shown:
            return
        self._arrange([viewport], 1, 1)
        self.maximised = viewport
        self._set_active(viewport)

    def _arrange(self, shown: list[Viewport], rows: int, cols: int) -> None:
        grid = self.grid_widget.grid
        for viewport in self.viewports:
            grid.removeWidget(viewport)
        for r in range(max(grid.rowCount(), rows)):
            grid.setRowStretch(r, 1 if r < rows else 0)
        for c in range(max(grid.columnCount(), cols)):
            grid.setColumnStretch(c, 1 if c < cols else 0)
        for i, viewport in enumerate(shown):
            grid.addWidget(viewport, i // cols, i % cols)
        for viewport in self.viewports:
            if viewport in shown:
                viewport.show()
            else:
                viewport.hide()
                viewport.stop_cine()
        self._shown = list(shown)
        if self.active is None or self.active not in shown:
            self._set_active(shown[0])
        else:
            self._set_active(self.active)

    @property
    def visible_viewports(self) -> list[Viewport]:
        return list(self._shown)

    def visible_keys(self) -> list:
        return [k for v in self.visible_viewports if (k := v.visible_key()) is not None]

    def _set_active(self, viewport: Viewport) -> None:
        self.active = viewport
        several = len(self._shown) > 1
        for v, frame in self.frames.items():
            frame.setVisible(several and v is viewport)
            if frame.isVisible():
                frame.raise_()
        for owner, menu in self.presentation_menus.items():
            menu.setVisible(owner is viewport)
        self._on_smooth_changed(viewport)
        self._update_reference_lines()

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize and watched in self.frames:
            self.frames[watched].setGeometry(watched.rect())  # type: ignore[attr-defined]
        return super().eventFilter(watched, event)

    # ----------------------------------------------------------------- presentation states
    def _add_presentation_menu(self, viewport: Viewport) -> None:
        store = getattr(self.ctx, "store", None)
        if store is None:
            return
        from viewer.ui.presentation_items import PresentationOverlay
        from viewer.ui.presentation_menu import PresentationMenu

        menu = PresentationMenu(store, PresentationOverlay(viewport), self.presentation_box)
        menu.setToolTip("Presentation state applied to this image (the newest that applies by default)")
        menu.setVisible(viewport is self.active)
        self.presentation_box.layout().addWidget(menu)
        self.presentation_menus[viewport] = menu

    def presentation_menu(self, viewport: Viewport | None = None):
        return self.presentation_menus.get(viewport or self.active)

    def _update_presentation(self, viewport: Viewport) -> None:
        menu = self.presentation_menus.get(viewport)
        stack = viewport.stack
        if menu is None or stack is None or not len(stack):
            return
        ref = stack[viewport.index]
        instance = self.ctx.store.instance(ref.sop_instance_uid) if ref.sop_instance_uid else None
        if instance is not None:
            menu.set_image(instance, ref.frame)

    # ----------------------------------------------------------------- opening
    def open_series(self, series_uid: str, viewport: Viewport | None = None) -> Viewport | None:
        """Show a stored series in `viewport` (default: the active one). Returns the viewport used."""
        stack = SeriesStack.from_store(self.ctx.store, series_uid, pool=self.pool)
        if not len(stack):
            log.info("series %s has no displayable images", series_uid)
            return None
        return self.open_stack(stack, viewport, series_uid=series_uid)

    def open_stack(
        self,
        stack: SeriesStack,
        viewport: Viewport | None = None,
        *,
        series_uid: str = "",
        order_by_position: bool = True,
    ) -> Viewport:
        target = viewport or self.active or self.viewports[0]
        target.set_stack(stack)
        self._set_active(target)
        if (menu := self.presentation_menus.get(target)) is not None:
            menu.reset()  # a new series starts from its own default state
        # listed right after the first image is painted (a zero timer runs after the pending repaint), so the
        # store query and worker start do not delay the first image
        self._presentation_timer(target).start(0)
        # Without indexed planes ordering by position needs every header: the store's instance order shows at
        # once, and the reading order replaces it when the headers have been read on a worker thread.
        from viewer.ui.workers import run_in_background

        if not order_by_position or stack.ordered:
            # key images keep the order the key object lists them in; a stack whose order came from the index
            # (Image Position/Orientation kept at ingest) is already in reading order
            target.reorder(stack, None)
            target.setFocus()
            if series_uid and order_by_position:
                self.series_opened.emit(series_uid)
            return target
        run_in_background(
            stack.position_order,
            on_result=lambda ordered, v=target, s=stack: v.reorder(s, ordered),
            on_error=lambda exc: log.warning("sorting series by position failed: %s", exc),
        )
        target.setFocus()
        if series_uid:
            self.series_opened.emit(series_uid)
        return target

    def open_image(self, sop_instance_uid: str, frame: int = 0, region: object = None) -> Viewport | None:
        """Open the series holding an instance at that frame (1-based; 0 = first) and mark `region` on it.

        `region` has `graphic_type` and `points` in image pixel coordinates (SCOORD: 0,0 is the top-left
        corner of the first pixel, the same convention as the viewport's items).
        """
        instance = self.ctx.store.instance(sop_instance_uid)
        if instance is None:
            return None
        viewport = self.open_series(instance.series_uid)
        if viewport is None or viewport.stack is None:
            return None
        wanted_frame = max(frame - 1, 0)
        index = next(
            (
                i
                for i, ref in enumerate(viewport.stack.slices)
                if ref.sop_instance_uid == sop_instance_uid and ref.frame == wanted_frame
            ),
            None,
        )
        if index is not None:
            viewport.set_index(index)
        viewport.remove_overlay_layer(REGION_LAYER)
        if region is not None and index is not None:
            target = viewport.stack.slices[index]
            viewport.add_overlay_layer(
                REGION_LAYER,
                lambda vp, i, ref=target, r=region: (
                    [region_item(r)] if vp.stack is not None and vp.stack.slices[i] == ref else []
                ),
            )
        return viewport

    def save_annotations(self, on_saved: Callable[[Any], object] | None = None) -> bool:
        """Save the active viewport's measurements as a standard GSPS into the store (in a worker).

        Returns False when there is nothing to save. Once stored, the viewport adopts the saved state (its
        measurements are cleared, so the state draws them once), the confirmation naming the state is shown
        (`last_message`, the `message` signal) and `on_saved(AddResult)` is called, all in the GUI thread.
        """
        viewport = self.active
        if viewport is None or viewport.stack is None or not viewport.measurements:
            return False
        from viewer.render.gsps_writer import GspsContent, items_from_measurements, save_gsps
        from viewer.ui.workers import run_in_background

        stack = viewport.stack
        per_image: dict[str, list] = {}
        headers: dict[str, object] = {}
        for placed in viewport.measurements:
            ref = stack.slices[placed.stack_index]
            label = viewport.measurement_label(placed.measurement) if placed.stack_index == viewport.index else ""
            items = items_from_measurements([(placed.measurement, label)])
            per_image.setdefault(ref.sop_instance_uid, []).extend(items)
            headers.setdefault(ref.sop_instance_uid, stack.header(placed.stack_index))
        voi = viewport.voi
        content = GspsContent(
            per_image=per_image,
            window_center=getattr(voi, "center", None),
            window_width=getattr(voi, "width", None),
            description="Measurements saved in Lightbox",
        )
        count = len(viewport.measurements)

        def saved(result: Any) -> None:
            menu = self.presentation_menus.get(viewport)
            if menu is not None and viewport.stack is stack:
                menu.adopt_saved(result)
            things = "measurement" if count == 1 else "measurements"
            self._show_message(
                f"Saved presentation state \u201c{content.label} \u2014 {content.description}\u201d "
                f"({count} {things}) to the local store"
            )
            if on_saved is not None:
                on_saved(result)

        def failed(exc: BaseException) -> None:
            log.error("saving the presentation state failed: %s", exc)
            self._show_message(f"The presentation state could not be saved: {exc}")

        run_in_background(save_gsps, self.ctx.store, list(headers.values()), content, on_result=saved, on_error=failed)
        return True

    def _show_message(self, text: str) -> None:
        """A confirmation in the viewer's toolbar (and to whoever shows `message` in a status bar)."""
        self.last_message = text
        self.message_label.setText(text)
        self._message_timer.start(MESSAGE_SHOWN_MS)
        self.message.emit(text)

    # ----------------------------------------------------------------- synchronisation
    def set_sync_scroll(self, enabled: bool) -> None:
        self.sync_scroll = enabled
        if self.sync_action.isChecked() != enabled:
            self.sync_action.setChecked(enabled)

    def set_reference_lines(self, enabled: bool) -> None:
        self.reference_lines = enabled
        if self.reference_action.isChecked() != enabled:
            self.reference_action.setChecked(enabled)
        self._update_reference_lines()

    def _presentation_timer(self, viewport: Viewport) -> QTimer:
        timer = self._presentation_timers.get(viewport)
        if timer is None:
            timer = self._presentation_timers[viewport] = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda v=viewport: self._update_presentation(v))
        return timer

    def _on_index_changed(self, viewport: Viewport, index: int) -> None:
        # The chooser lists the states of the image shown in a worker. While the reader scrolls faster than
        # PRESENTATION_LIST_DELAY_MS per image that would be one store query and thread per frame, for a list
        # nobody can read: it follows once the scrolling pauses (a state already applied stays applied, and
        # compose() ignores it on images it does not reference).
        timer = self._presentation_timer(viewport)
        if not timer.isActive():
            self._update_presentation(viewport)  # the first step of a scroll lists at once
        timer.start(PRESENTATION_LIST_DELAY_MS)
        if self.sync_scroll and not self._syncing and viewport.stack is not None:
            geometry = viewport.stack.geometry(index)
            if geometry is not None:
                self._syncing = True
                try:
                    frame_of_reference = viewport.stack.header(index).get("FrameOfReferenceUID")
                    for other in self.visible_viewports:
                        if other is viewport or other.stack is None or not len(other.stack):
                            continue
                        if other.stack.header(0).get("FrameOfReferenceUID") != frame_of_reference:
                            continue
                        nearest = other.stack.nearest_index(geometry.position)
                        if nearest is not None and nearest != other.index:
                            other.set_index(nearest)
                finally:
                    self._syncing = False
        self._update_reference_lines()

    def _update_reference_lines(self) -> None:
        active = self.active
        for viewport in self.visible_viewports:
            if not self.reference_lines or active is None or viewport is active:
                viewport.set_reference_segments([])
            else:
                viewport.set_reference_segments(viewport.reference_segments_from(active))

    # ----------------------------------------------------------------- lifetime
    def close_cache(self) -> None:
        for viewport in self.viewports:
            viewport.stop_cine()
        self.cache.close()

    def closeEvent(self, event) -> None:
        self.close_cache()
        super().closeEvent(event)

    def keyPressEvent(self, event) -> None:
        if self.active is not None and event.key() != Qt.Key.Key_Tab:
            self.active.keyPressEvent(event)
        else:
            super().keyPressEvent(event)
