"""What a viewport shows, as pixels for film, PDF and image export (no Qt).

A `CapturedView` is a viewport's `ViewState` (viewer.render.view) together with the viewport's size in
device pixels at the time it was taken. Film, PDF and export all compose it with the same
`compose` + `rasterize` the screen paints, so what is printed is what is on screen: the presentation state
the user chose, their window, rotation, flips, inversion, zoom and pan, overlays, shutters and annotations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewer.print.render import PrintPixels, to_grayscale


@dataclass(frozen=True)
class CapturedView:
    state: Any  # viewer.render.view.ViewState
    width: int
    height: int


def view_pixels(view: CapturedView) -> np.ndarray:
    """The view as the viewport composes it: H×W×3 uint8 RGB at the viewport's size."""
    from viewer.render.displaylist import rasterize
    from viewer.render.view import compose

    rgb = rasterize(compose(view.state), max(1, view.width), max(1, view.height))
    return np.ascontiguousarray(rgb[:, :, :3] if rgb.ndim == 3 else np.repeat(rgb[:, :, None], 3, axis=2))


def print_pixels(view: CapturedView, bits: int) -> PrintPixels:
    """The view for an image box: grey P-values at `bits` when the view is grey, RGB otherwise (the job
    turns RGB into grey for a grayscale printer)."""
    rgb = view_pixels(view)
    if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]):
        return to_grayscale(PrintPixels(np.ascontiguousarray(rgb[:, :, 0]), 8), bits)
    return PrintPixels(rgb, 8)


def view_of_image(view: CapturedView, path: str, sop_instance_uid: str, frame: int) -> CapturedView:
    """The same view settings on another image of the series (printing or exporting a whole series)."""
    state = _replace(
        view.state,
        path=("image_path", "path"),
        uid=("sop_instance_uid",),
        frame=("frame", "frame_index"),
        values={"path": path, "uid": sop_instance_uid, "frame": frame},
    )
    return CapturedView(state, view.width, view.height)


def without_graphics(state: Any) -> Any:
    """The state with annotations, measurements and overlays hidden (printing without burn-in)."""
    names = {f.name for f in dataclasses.fields(state)}
    changes: dict[str, Any] = {}
    for name in ("show_overlays", "show_annotations", "overlays_visible", "annotations_visible"):
        if name in names:
            changes[name] = False
    if "measurements" in names:
        changes["measurements"] = ()
    return dataclasses.replace(state, **changes)


def _replace(state: Any, *, values: dict[str, Any], **candidates: tuple[str, ...]) -> Any:
    """`dataclasses.replace` on the ViewState's own names for image path, SOP Instance UID and frame."""
    names = {f.name for f in dataclasses.fields(state)}
    changes: dict[str, Any] = {}
    for key, options in candidates.items():
        name = next((option for option in options if option in names), None)
        if name is None:
            raise TypeError(f"{type(state).__name__} has none of {options}")
        changes[name] = values[key]
    return dataclasses.replace(state, **changes)
