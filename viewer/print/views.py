"""What a viewport shows, as pixels for film, PDF and image export (no Qt).

A `CapturedView` is a viewport's `ViewState` (viewer.render.view), the presentation state it applies and
the device size its zoom refers to (`Viewport.view_size()`). Film, PDF and export compose it with the same
`compose` + `rasterize` the screen paints, so what is printed is what is on screen: the presentation state
the user chose, their window, rotation, flips, inversion, zoom and pan, overlays, shutters, annotations
and measurements. The view is composed at the viewport's size and then resampled into the image box, so a
user's zoom covers on film the part of the image it covers on screen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pydicom.dataset import Dataset

from viewer.print.render import PrintPixels, to_grayscale
from viewer.render.displaylist import rasterize
from viewer.render.view import ViewState, compose


@dataclass(frozen=True)
class CapturedView:
    state: ViewState
    width: int  # the device size `state.zoom` refers to
    height: int
    # The state's dataset as the viewport holds it: a state saved from the viewer and not yet re-read from the
    # store has no file for `compose` to load.
    presentation: Dataset | None = None


def view_pixels(view: CapturedView) -> np.ndarray:
    """The view as the viewport composes it: H×W×3 uint8 RGB at the viewport's size."""
    rgb = rasterize(compose(view.state, presentation=view.presentation), max(1, view.width), max(1, view.height))
    return np.ascontiguousarray(rgb[:, :, :3] if rgb.ndim == 3 else np.repeat(rgb[:, :, None], 3, axis=2))


def print_pixels(view: CapturedView, bits: int) -> PrintPixels:
    """The view for an image box: grey P-values at `bits` when the view is grey, RGB otherwise (the job
    turns RGB into grey for a grayscale printer)."""
    rgb = view_pixels(view)
    if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]):
        return to_grayscale(PrintPixels(np.ascontiguousarray(rgb[:, :, 0]), 8), bits)
    return PrintPixels(rgb, 8)


def view_of_image(view: CapturedView, path: str, sop_instance_uid: str, frame: int) -> CapturedView:
    """The same view settings on another image of the series (printing or exporting a whole series).

    The measurements belong to the image they were drawn on, so they are not carried over; a presentation
    state that does not reference the other image is not applied to it (`compose` checks)."""
    state = view.state.replace(path=path, sop_instance_uid=sop_instance_uid, frame=frame, items=())
    return replace(view, state=state)


def without_graphics(view: CapturedView) -> CapturedView:
    """The view with annotations, measurements and overlays hidden (printing without burn-in)."""
    state = view.state.replace(show_overlays=False, show_annotations=False, items=())
    return replace(view, state=state)
