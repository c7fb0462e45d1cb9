"""File ▸ Export view as image…, Copy view (Ctrl+C), Export series as video…: the active viewport as composed.

The viewport's view state is captured in the GUI thread (cheap: a small immutable record); composing it and
encoding run on a worker thread (`viewer.export.image`), and only the finished result comes back (a status
line, or a QImage for the clipboard). The same capture feeds printing (`viewer.ui.print_dialog`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QWidget

from viewer.core.tasks import CancelToken, ProgressCallback
from viewer.export.image import ExportError, write_image
from viewer.print.selection import ShownImage
from viewer.print.views import CapturedView, view_pixels, write_series_video
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


def series_images(viewport: Viewport, current: ShownImage) -> list[ShownImage]:
    """Every image of the viewport's series with the viewport's view settings, in stack order; each image
    carries its own measurements (they belong to the image they were drawn on)."""
    from viewer.render.gsps_writer import items_from_measurements

    stack = viewport.stack
    assert stack is not None
    by_index: dict[int, list] = {}
    for placed in viewport.measurements:
        by_index.setdefault(placed.stack_index, []).append(
            (placed.measurement, viewport.measurement_label(placed.measurement))
        )
    return [
        ShownImage(
            ref.path,
            ref.frame,
            ref.sop_instance_uid,
            current.view.on_image(
                ref.path, ref.sop_instance_uid, ref.frame, tuple(items_from_measurements(by_index.get(index, [])))
            ),
        )
        for index, ref in enumerate(stack.slices)
    ]


def series_views(viewport: Viewport, current: ShownImage) -> list[CapturedView]:
    """The views of `series_images` (video export)."""
    return [image.view for image in series_images(viewport, current)]


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


def export_view_image(
    window: Any, path: str | Path | None = None, *, size: tuple[int, int] | None = None
) -> Worker | None:
    """Write the active view to PNG or JPEG (asked for when `path` is None); returns the worker.

    `size` (width, height) exports the view re-targeted to that many pixels (`CapturedView.at_size`: the
    same part of the image, a user zoom scaled with the size); None keeps the viewport's size."""
    current = _need_image(window, "Export view")
    if current is None:
        return None
    view = current.view if size is None else current.view.at_size(*size)
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
        lambda: write_image(target, view_pixels(view)),
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
    # Composing and encoding run on a worker; the dialog shows how far it is and its Cancel stops the
    # worker at the next frame (the half-written file is removed).
    dialog = QProgressDialog(f"Exporting {len(views)} images to {target.name}…", "Cancel", 0, len(views), window)
    dialog.setWindowTitle("Export series as video")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(500)
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    window.video_progress = dialog  # kept while the export runs (tests read it)

    def job(cancel: CancelToken, progress: ProgressCallback) -> int:
        return write_series_video(target, views, fps=rate, cancel=cancel, progress=progress)

    def finished() -> None:
        dialog.close()
        dialog.deleteLater()
        if getattr(window, "video_progress", None) is dialog:
            window.video_progress = None

    _status(window, f"Exporting {len(views)} images to {target.name}…")
    worker = run_in_background(
        job,
        on_result=lambda count: _status(window, f"Saved {count} frames to {target}"),
        on_error=lambda exc: _failed(window, "Export video", exc),
        on_progress=lambda done: dialog.setValue(done.done),
        on_cancelled=lambda: _status(window, "Video export cancelled"),
        on_finished=finished,
    )
    dialog.canceled.connect(worker.cancel)
    return worker


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
