"""What a viewport shows, as pixels for film, PDF and image export (no Qt).

A `CapturedView` is a viewport's `ViewState` (viewer.render.view) together with the device size its zoom
refers to (`Viewport.view_size()`). Film, PDF and export compose it with the same `compose` + `rasterize`
the screen paints, so what is printed is what is on screen: the presentation state the user chose (not the
newest one in the store), their window, rotation, flips, inversion, zoom and pan, the displayed area,
shutters, overlays, the state's annotations and the user's measurements.

An image box is usually larger (film) or smaller (a 4×5 sheet) than the viewport. `CapturedView.at_size`
re-targets the view to the box: the box keeps the viewport's aspect ratio, a view that fits the displayed
area (zoom None) fits it again in the box, and a user zoom (device pixels per image pixel) is scaled by
box size / viewport size, so the box shows exactly the part of the image the viewport showed, drawn at the
box's own resolution rather than an enlarged screen grab.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from viewer.core.tasks import Cancelled, CancelToken, Progress, ProgressCallback
from viewer.export.image import ExportError, write_video
from viewer.print.render import PrintPixels, to_grayscale
from viewer.render import gsps
from viewer.render.displaylist import Item, rasterize
from viewer.render.view import ComposeCache, ViewState, compose

log = logging.getLogger(__name__)

# rasterize's default text size, for a viewport-sized raster; scaled with the view on other sizes so a
# label covers the same part of the image on film as on screen.
BASE_FONT_PX = 12
MIN_FONT_PX = 8


@dataclass(frozen=True)
class CapturedView:
    """One viewport's view: its state, the device size (width, height) it was seen at, and the presentation
    state's dataset when the viewport had it loaded (a state chosen from memory has no file to re-read)."""

    state: ViewState
    width: int
    height: int
    presentation: Dataset | None = None
    scale: float = 1.0  # box size / viewport size once re-targeted (`at_size`); 1.0 as captured

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"a view needs a size of at least 1×1, not {self.width}×{self.height}")

    def at_size(self, width: int, height: int) -> CapturedView:
        """The same view for a `width`×`height` device (an image box of about the viewport's aspect ratio).

        The user's zoom is scaled by the smaller of the two size ratios, so the whole of what the viewport
        showed stays in the box when rounding makes the ratios differ by a pixel; the pan (image coordinates)
        stays as it is."""
        width, height = max(1, int(width)), max(1, int(height))
        factor = min(width / self.width, height / self.height)
        state = self.state
        if state.zoom is not None:
            state = state.replace(zoom=state.zoom * factor)
        return CapturedView(state, width, height, self.presentation, self.scale * factor)

    def on_image(self, path: str, sop_instance_uid: str, frame: int, items: tuple[Item, ...] = ()) -> CapturedView:
        """The same view settings on another image of the series (printing or exporting a whole series).

        The user's measurements belong to one image: the other image gets `items` (its own), not these."""
        state = self.state.replace(path=path, sop_instance_uid=sop_instance_uid, frame=frame, items=items)
        return CapturedView(state, self.width, self.height, self.presentation, self.scale)

    def without_graphics(self) -> CapturedView:
        """The view with overlays, the state's annotations and the user's measurements hidden (printing
        without burn-in); window, transform, displayed area and shutters stay."""
        state = self.state.replace(show_overlays=False, show_annotations=False, items=())
        return CapturedView(state, self.width, self.height, self.presentation, self.scale)

    @property
    def font_px(self) -> int:
        return max(MIN_FONT_PX, round(BASE_FONT_PX * self.scale))


def view_pixels(view: CapturedView, *, cache: ComposeCache | None = None) -> np.ndarray:
    """The view as the viewport composes it: H×W×3 uint8 RGB at the view's size."""
    try:
        display = compose(view.state, presentation=view.presentation, cache=cache)
    except (gsps.PresentationStateError, ValueError, KeyError, OSError) as exc:
        # The viewport shows an image whose state cannot be applied without the state; print the same.
        log.warning("presentation state not applied to the printed view: %s", exc.__class__.__name__)
        display = compose(view.state.replace(presentation=None, superimposed=None), cache=cache)
    return np.ascontiguousarray(rasterize(display, view.width, view.height, font_size=view.font_px))


def print_pixels(view: CapturedView, bits: int, *, cache: ComposeCache | None = None) -> PrintPixels:
    """The view for an image box: grey P-values at `bits` when the view is grey, RGB otherwise (the job
    turns RGB into grey for a grayscale printer)."""
    rgb = view_pixels(view, cache=cache)
    if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]):
        return to_grayscale(PrintPixels(np.ascontiguousarray(rgb[:, :, 0]), 8), bits)
    return PrintPixels(rgb, 8)


def composed_frames(
    views: Sequence[CapturedView],
    *,
    cancel: CancelToken | None = None,
    progress: ProgressCallback | None = None,
) -> Iterator[np.ndarray]:
    """Each view composed in turn (a series as video), sharing one cache so the series' frames share their
    LUTs; stops early, without an error, once `cancel` is set (the caller discards what was written)."""
    cache = ComposeCache()
    started = time.monotonic()
    for done, view in enumerate(views):
        if cancel is not None and cancel.cancelled:
            return
        yield view_pixels(view, cache=cache)
        if progress is not None:
            progress(Progress(done + 1, len(views), started))


def write_series_video(
    path: str | Path,
    views: Sequence[CapturedView],
    *,
    fps: float,
    cancel: CancelToken | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """The views as one MP4 (`viewer.export.image.write_video`); returns the frames written. A cancelled
    export leaves no file behind and raises `Cancelled`."""
    target = Path(path)
    try:
        count = write_video(target, composed_frames(views, cancel=cancel, progress=progress), fps=fps)
    except ExportError:
        if cancel is not None and cancel.cancelled:
            raise Cancelled() from None  # cancelled before the first frame: nothing was written
        raise
    if cancel is not None and cancel.cancelled:
        target.unlink(missing_ok=True)
        raise Cancelled()
    return count
