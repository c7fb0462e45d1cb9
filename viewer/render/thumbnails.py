"""Small previews of a series for the browser (no Qt): a uint8 numpy array, grey (H, W) or RGB (H, W, 3).

Uses the render pipeline when it offers a thumbnail function, so previews look like the viewer; otherwise a
plain decode with the stored window (or min/max) is enough for a recognisable icon.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pydicom

from viewer.core.store import StudyStore

log = logging.getLogger(__name__)


def series_thumbnail(store: StudyStore, series_uid: str, size: int = 64) -> np.ndarray | None:
    """A preview of the series' middle image, at most `size` pixels on its longer side; None if no image."""
    instances = [i for i in store.instances_for_series(series_uid) if i.rows and i.columns]
    if not instances:
        return None
    middle = instances[len(instances) // 2]
    pipeline_thumbnail = _pipeline_thumbnail()
    if pipeline_thumbnail is not None:
        try:
            return pipeline_thumbnail(middle.path, size)
        except Exception as exc:  # fall back to the plain decode below
            log.debug("render pipeline thumbnail failed for %s: %s", middle.path, exc)
    return file_thumbnail(middle.path, size)


def _pipeline_thumbnail() -> Any:
    """The view composition (the screen's, with no presentation state) wrapped to make a thumbnail."""
    from viewer.render.view import ViewState, compose

    def thumbnail(path: str, size: int) -> np.ndarray:
        composed = compose(ViewState(str(path)))
        return downsample(np.asarray(composed.bitmap, dtype=np.uint8), size)

    return thumbnail


def file_thumbnail(path: str, size: int = 64) -> np.ndarray:
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames > 1:
        pixels = pixels[frames // 2]
    image = _to_uint8_rgb(pixels) if samples == 3 else _window_grey(ds, pixels.astype(np.float32))
    return downsample(image, size)


def _to_uint8_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    top = float(pixels.max()) or 1.0
    return (pixels.astype(np.float32) * (255.0 / top)).clip(0, 255).astype(np.uint8)


def _window_grey(ds: Any, pixels: np.ndarray) -> np.ndarray:
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    values = pixels * slope + intercept
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 1:
        low, high = center - width / 2.0, center + width / 2.0
    else:
        low, high = float(np.percentile(values, 0.5)), float(np.percentile(values, 99.5))
    if high <= low:
        high = low + 1.0
    out = ((values - low) * (255.0 / (high - low))).clip(0, 255).astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        out = 255 - out
    return out


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def downsample(image: np.ndarray, size: int) -> np.ndarray:
    """Shrink by block averaging (no resampling library needed) so the longer side is at most `size`."""
    h, w = image.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / size)))
    if step == 1:
        return np.ascontiguousarray(image)
    hh, ww = (h // step) * step, (w // step) * step
    cropped = image[:hh, :ww].astype(np.float32)
    if image.ndim == 2:
        blocks = cropped.reshape(hh // step, step, ww // step, step).mean(axis=(1, 3))
    else:
        blocks = cropped.reshape(hh // step, step, ww // step, step, image.shape[2]).mean(axis=(1, 3))
    return np.ascontiguousarray(blocks.clip(0, 255).astype(np.uint8))
