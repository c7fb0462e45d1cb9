"""File ▸ Export view as image…, Copy view (Ctrl+C), Export series as video…: the active viewport as composed.

The viewport's view state is captured in the GUI thread (cheap: a small immutable record); composing it and
encoding run on a worker thread (`viewer.export.image`), and only the finished result comes back (a status
line, or a QImage for the clipboard). The same capture feeds printing (`viewer.ui.print_dialog`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from viewer.export.image import ExportError, write_image, write_video
from viewer.print.selection import ShownImage
from viewer.print.views import CapturedView, view_of_image, view_pixels
from viewer.ui.workers import Worker, run_in_background

if TYPE_CHECKING:
    from viewer.ui.viewer.viewport import Viewport

log = logging.getLogger(__name__)


def shown_image(viewport: Viewport | None) -> ShownImage | None:
    """What `viewport` shows now (image, frame, its view state, the state's dataset and the size its zoom
    refers to), or None when it is empty."""
    if viewport is None or viewport.stack is None or not len(viewport.stack):
        return None
    ref = viewport.stack[viewport.index]
    width, height = viewport.view_size()
    view = CapturedView(viewport.view_state(), max(1, width), max(1, height), viewport.presentation)
    return ShownImage(ref.path, ref.frame, ref.sop_instance_uid, view)


def series_views(viewport: Viewport, current: ShownImage) -> list[CapturedView]:
    """Every image of the viewport's series with the viewport's view settings, in stack order."""
    stack = viewport.stack
    assert stack is not None
    return [view_of_image(current.view, ref.path, ref.sop_instance_uid, ref.frame) for ref in stack.slices]


def to_qimage(rgb: np.ndarray) -> QImage:
    data = np.ascontiguousarray(rgb[:, :, :3].astype(np.uint8))
    height, width = data.shape[:2]
    return QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def _active(window: Any) -> Any:
    return getattr(getattr(window, "viewer_area", None), "active", None)


def _status(window: Any, text: str) -> None:
    bar = getattr(window, "statusBar", None)
    if callable(bar):
        bar().showMessage(text, 8000)


def _need_image(window: QWidget, what: str) -> ShownImage | None:
    current = shown_image(_active(window))
    if current is None:
        QMessageBox.information(window, what, "Open an image in the viewer first.")
    return current


def export_view_image(window: Any, path: str | Path | None = None) -> Worker | None:
    """Write the active view to PNG or JPEG (asked for when `path` is None); returns the worker."""
    current = _need_image(window, "Export view")
    if current is None:
        return None
    if path is None:
        chosen, _ = QFileDialog.getSaveFileName(
            window, "Export view as image", "view.png", "PNG image (*.png);;JPEG image (*.jpg *.jpeg)"
        )
        if not chosen:
            return None
        path = chosen
    target = Path(path)
    _status(window, f"Exporting the view to {target.name}…")
    return run_in_background(
        lambda: write_image(target, view_pixels(current.view)),
        on_result=lambda written: _status(window, f"Saved the view to {written}"),
        on_error=lambda exc: _failed(window, "Export view", exc),
    )


def copy_view(window: Any) -> Worker | None:
    """Put the active view on the clipboard as an image (composed on a worker thread)."""
    current = shown_image(_active(window))
    if current is None:
        _status(window, "Nothing to copy: the viewer is empty.")
        return None

    def done(rgb: np.ndarray) -> None:
        QGuiApplication.clipboard().setImage(to_qimage(rgb))
        _status(window, f"Copied the view ({rgb.shape[1]}×{rgb.shape[0]}) to the clipboard")

    return run_in_background(
        view_pixels, current.view, on_result=done, on_error=lambda exc: _failed(window, "Copy view", exc)
    )


def export_series_video(window: Any, path: str | Path | None = None, *, fps: float | None = None) -> Worker | None:
    """The active viewport's series (or cine) as an MP4 with the view applied, at the cine rate."""
    viewport = _active(window)
    current = _need_image(window, "Export video")
    if current is None:
        return None
    if path is None:
        chosen, _ = QFileDialog.getSaveFileName(window, "Export series as video", "series.mp4", "MP4 video (*.mp4)")
        if not chosen:
            return None
        path = chosen
    target = Path(path)
    if target.suffix.lower() != ".mp4":
        target = target.with_suffix(".mp4")
    views = series_views(viewport, current)
    rate = float(fps or viewport.cine_fps or 10.0)

    def frames() -> Iterator[np.ndarray]:
        for view in views:
            yield view_pixels(view)

    _status(window, f"Exporting {len(views)} images to {target.name}…")
    return run_in_background(
        lambda: write_video(target, frames(), fps=rate),
        on_result=lambda count: _status(window, f"Saved {count} frames to {target}"),
        on_error=lambda exc: _failed(window, "Export video", exc),
    )


def _failed(window: Any, what: str, exc: BaseException) -> None:
    message = str(exc) if isinstance(exc, ExportError | OSError) else f"{exc.__class__.__name__}: {exc}"
    log.warning("%s failed: %s", what, exc.__class__.__name__)
    _status(window, f"{what} failed: {message}")
    QMessageBox.warning(window, what, f"{what} failed: {message}")


def install_export(window: Any) -> None:
    """The File menu entries and the Copy shortcut (a focused text field keeps its own Ctrl+C)."""
    window.menus["File"].addSeparator()
    window.add_menu_action("File", "Export view as &image…", lambda: export_view_image(window))
    window.add_menu_action("File", "&Copy view", lambda: copy_view(window), QKeySequence.StandardKey.Copy)
    window.add_menu_action("File", "Export series as &video…", lambda: export_series_video(window))
