"""Rendering one frame for display or print: decode → modality → VOI → presentation → 8/12-bit (no Qt).

API
---
``render_frame(source, frame_index=0, *, window=None, output_bits=8, invert=False,
               presentation_shape=None, presentation_lut=None, frame=None, burn_overlays=False) -> RenderedImage``
    `source` is an `ImageSource` (or a path). `window` is a `Window`, a VOI `LutData`, or None for the file's
    first window (then its first VOI LUT, then the frame's min/max). `frame` passes an already decoded stored
    frame (from the frame cache) so nothing is decoded again.
``RenderedImage``: `pixels` (uint8 H×W for 8-bit output, uint16 H×W with values 0..4095 for output_bits=12,
    uint8 H×W×3 for colour), `lut` (the `DisplayLut` that produced grayscale pixels; None for colour),
    `voi` / `window` (what was applied), `frame_index`, `stored` (the stored frame, for pixel readout),
    `header` (the frame's merged header), `is_color`, `inverted`.
``windows_from_header(header) -> list[Window]``  the file's own windows (`lut.windows_in_header`).
``presets_for(header) -> list[Preset]``  file windows + VOI LUTs + the modality's presets (key 1..n order).
``MODALITY_PRESETS``  CT lung / mediastinum / bone / brain / abdomen (W/L in HU).
``modality_value(header, stored)``  stored value(s) → modality value (HU for CT), for the cursor readout.
``render_color(frame, invert=False)``  RGB frame → uint8 RGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from viewer.render.decode import ImageSource, overlay_mask
from viewer.render.lut import (
    DisplayLut,
    LutData,
    Voi,
    Window,
    build_display_lut,
    min_max_window,
    modality_lut,
    voi_luts_in_header,
    windows_in_header,
)

MODALITY_PRESETS: dict[str, list[Window]] = {
    "CT": [
        Window(-600, 1500, explanation="Lung"),
        Window(50, 350, explanation="Mediastinum"),
        Window(500, 2000, explanation="Bone"),
        Window(40, 80, explanation="Brain"),
        Window(50, 400, explanation="Abdomen"),
    ],
}


@dataclass(frozen=True)
class Preset:
    name: str
    voi: Voi
    source: str  # "file" or "modality"


def windows_from_header(header: Dataset) -> list[Window]:
    """The windows the file itself names, in order."""
    return windows_in_header(header)


def presets_for(header: Dataset) -> list[Preset]:
    """Modality presets first (stable keys 1–5 for CT), then the file's windows and VOI LUTs."""
    modality = str(header.get("Modality", "")).upper()
    out = [Preset(w.explanation, w, "modality") for w in MODALITY_PRESETS.get(modality, [])]
    for i, w in enumerate(windows_in_header(header)):
        out.append(Preset(w.explanation or f"File window {i + 1}", w, "file"))
    for i, lut in enumerate(voi_luts_in_header(header)):
        out.append(Preset(lut.explanation or f"File VOI LUT {i + 1}", lut, "file"))
    return out


def default_voi(header: Dataset) -> Voi | None:
    """The file's first window, else its first VOI LUT, else None (caller falls back to min/max)."""
    windows = windows_in_header(header)
    if windows:
        return windows[0]
    luts = voi_luts_in_header(header)
    return luts[0] if luts else None


def modality_value(header: Dataset, stored: np.ndarray | float) -> np.ndarray:
    return modality_lut(np.asarray(stored, dtype=np.float64), header)


@dataclass(eq=False)
class RenderedImage:
    pixels: np.ndarray
    lut: DisplayLut | None
    voi: Voi | None
    frame_index: int
    stored: np.ndarray
    header: Dataset
    is_color: bool
    inverted: bool

    @property
    def window(self) -> Window | None:
        return self.voi if isinstance(self.voi, Window) else None


def render_color(frame: np.ndarray, *, invert: bool = False) -> np.ndarray:
    """An RGB frame (any unsigned depth) → uint8 RGB."""
    if frame.dtype != np.uint8:
        peak = 65535 if frame.dtype.itemsize >= 2 and frame.max() > 255 else 255
        shift_bits = 8 if peak == 65535 else 0
        frame = (frame.astype(np.uint32) >> shift_bits).astype(np.uint8)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    return 255 - frame if invert else frame


def render_frame(
    source: ImageSource | str | Path,
    frame_index: int = 0,
    *,
    window: Voi | None = None,
    output_bits: int = 8,
    invert: bool = False,
    presentation_shape: str | None = None,
    presentation_lut: LutData | None = None,
    frame: np.ndarray | None = None,
    burn_overlays: bool = False,
    apply_padding: bool = True,
) -> RenderedImage:
    """Render one frame; see the module docstring."""
    if not isinstance(source, ImageSource):
        source = ImageSource(source)
    header = source.frame_header(frame_index)
    stored = frame if frame is not None else source.frame(frame_index)
    if source.is_color:
        pixels = render_color(stored, invert=invert)
        if burn_overlays:
            mask = overlay_mask(source.overlays(frame_index), *pixels.shape[:2])
            pixels = pixels.copy()
            pixels[mask] = 255
        return RenderedImage(pixels, None, None, frame_index, stored, header, True, invert)
    voi = window if window is not None else default_voi(header)
    stored_range = None
    if source.bits_allocated > 16:
        stored_range = (int(stored.min()), int(stored.max()))
    if voi is None:
        values = modality_lut(np.array([stored.min(), stored.max()], dtype=np.float64), header)
        voi = min_max_window(values)
    lut = build_display_lut(
        header,
        voi,
        output_bits=output_bits,
        invert=invert,
        presentation_shape=presentation_shape,
        presentation_lut=presentation_lut,
        apply_padding=apply_padding,
        stored_range=stored_range,
    )
    pixels = lut(stored)
    if burn_overlays:
        mask = overlay_mask(source.overlays(frame_index), *pixels.shape[:2])
        if mask.any():
            pixels = pixels.copy()
            pixels[mask] = lut.max_output
    return RenderedImage(pixels, lut, voi, frame_index, stored, header, False, lut.inverted)
