"""Turning a stored frame into print pixels: the screen's render pipeline, then resampling to the box.

Film images go through `viewer.render.pipeline.render_frame`, the same pipeline as the screen (modality
LUT, VOI window or LUT, MONOCHROME1 inversion, overlays), at 8 or 12 bits.  Output is either grayscale
P-values (uint16 array, 0..2^bits-1) or RGB 8 bits (uint8, H×W×3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from viewer.render.displaylist import rasterize
from viewer.render.gsps import apply_presentation_state
from viewer.render.lut import Window
from viewer.render.pipeline import render_frame


@dataclass(frozen=True)
class PrintPixels:
    """A rendered image ready for an image box: `array` is H×W (grayscale) or H×W×3 (RGB)."""

    array: np.ndarray
    bits: int  # 8 or 12 for grayscale, 8 for RGB

    @property
    def is_color(self) -> bool:
        return self.array.ndim == 3

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def height(self) -> int:
        return int(self.array.shape[0])


def _voi(window: Any) -> Any:
    """A (center, width) pair becomes the pipeline's Window; Window / LUT objects pass through."""
    if isinstance(window, tuple | list) and len(window) == 2:
        return Window(float(window[0]), float(window[1]))
    return window


def render_for_print(
    path: str, frame: int, *, window: Any = None, bits: int = 8, burn_overlays: bool = False
) -> PrintPixels:
    """Render one frame at its own matrix size through the screen's pipeline (P-values at `bits`, or RGB)."""
    rendered = render_frame(path, frame, window=_voi(window), output_bits=bits, burn_overlays=burn_overlays)
    return normalise(rendered.pixels, 8 if rendered.is_color else bits)


def render_with_presentation_state(path: str, frame: int, state_path: str, bits: int = 8) -> PrintPixels:
    """A frame with its presentation state burned in: shutters, overlays, spatial transform and the
    graphic/text annotations rasterised at the image's own resolution (as on screen)."""
    import pydicom

    state = pydicom.dcmread(state_path)
    display_list = apply_presentation_state(state, path, frame)
    rows, columns = display_list.bitmap.shape[:2]
    rgb = rasterize(display_list, columns, rows, display_pixel_mm=0.25, font_size=max(10, columns // 40))
    pixels = PrintPixels(np.ascontiguousarray(rgb), 8)
    grey = display_list.bitmap.ndim == 2 and not any(
        getattr(item, "color", None) not in (None, (255, 255, 255)) for item in display_list.items
    )
    return to_grayscale(pixels, bits) if grey else pixels


def normalise(array: np.ndarray, bits: int) -> PrintPixels:
    """Coerce a rendered array to what an image box carries: uint16 0..2^bits-1 or uint8 RGB."""
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        if array.dtype != np.uint8:
            array = _rescale(array, 8).astype(np.uint8)
        return PrintPixels(np.ascontiguousarray(array), 8)
    top = (1 << bits) - 1
    if array.dtype == np.uint8 and bits != 8:
        array = (array.astype(np.uint32) * top // 255).astype(np.uint16)
    elif array.dtype.kind == "f":
        array = np.rint(np.clip(array, 0.0, 1.0) * top if array.max(initial=0) <= 1.0 else np.clip(array, 0, top))
    elif array.max(initial=0) > top:
        array = _rescale(array, bits)
    return PrintPixels(np.ascontiguousarray(array.astype(np.uint16)), bits)


def _rescale(array: np.ndarray, bits: int) -> np.ndarray:
    low, high = float(array.min()), float(array.max())
    top = (1 << bits) - 1
    if high <= low:
        return np.zeros_like(array, dtype=np.uint16)
    return np.rint((array.astype(np.float64) - low) / (high - low) * top).astype(np.uint16)


def to_grayscale(pixels: PrintPixels, bits: int) -> PrintPixels:
    """RGB → luminance (Rec. 601 weights) at `bits`, for a grayscale-only printer."""
    if not pixels.is_color:
        if pixels.bits == bits:
            return pixels
        scaled = np.rint(pixels.array.astype(np.float64) * ((1 << bits) - 1) / ((1 << pixels.bits) - 1))
        return PrintPixels(scaled.astype(np.uint16), bits)
    rgb = pixels.array.astype(np.float64)
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return PrintPixels(np.rint(luma * ((1 << bits) - 1) / 255.0).astype(np.uint16), bits)


def to_rgb(pixels: PrintPixels) -> PrintPixels:
    if pixels.is_color:
        return pixels
    top = (1 << pixels.bits) - 1
    gray = np.rint(pixels.array.astype(np.float64) * 255.0 / top).astype(np.uint8)
    return PrintPixels(np.repeat(gray[:, :, None], 3, axis=2), 8)


def resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resampling (area-averaging first when shrinking a lot) keeping dtype."""
    src_h, src_w = array.shape[:2]
    if (src_w, src_h) == (width, height):
        return array
    work = array.astype(np.float64)
    # Shrinking by more than 2× with plain bilinear aliases; box-average down to < 2× first.
    factor = min(src_w // max(width, 1), src_h // max(height, 1))
    if factor >= 2:
        cut_h, cut_w = (src_h // factor) * factor, (src_w // factor) * factor
        work = work[:cut_h, :cut_w]
        shape = (cut_h // factor, factor, cut_w // factor, factor, *work.shape[2:])
        work = work.reshape(shape).mean(axis=(1, 3))
        src_h, src_w = work.shape[:2]
    ys = (np.arange(height) + 0.5) * src_h / height - 0.5
    xs = (np.arange(width) + 0.5) * src_w / width - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, src_h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, src_w - 1)
    y1 = np.clip(y0 + 1, 0, src_h - 1)
    x1 = np.clip(x0 + 1, 0, src_w - 1)
    wy = np.clip(ys - y0, 0.0, 1.0)
    wx = np.clip(xs - x0, 0.0, 1.0)
    if work.ndim == 3:
        wy = wy[:, None, None]
        wx = wx[None, :, None]
    else:
        wy = wy[:, None]
        wx = wx[None, :]
    top = work[y0][:, x0] * (1 - wx) + work[y0][:, x1] * wx
    bottom = work[y1][:, x0] * (1 - wx) + work[y1][:, x1] * wx
    out = top * (1 - wy) + bottom * wy
    return np.rint(out).astype(array.dtype)


# ---------------------------------------------------------------------- patient identification on film
IDENTIFICATION_MM = 2.5  # text height on film: readable on a light box at arm's length


def identification_font_px(dpi: int) -> int:
    return max(6, round(dpi * IDENTIFICATION_MM / 25.4))


def identification_strip_height(lines: list[str], font_px: int) -> int:
    """Height in pixels of the band `identification_strip` draws (0 without text)."""
    lines = [line for line in lines if line]
    return 0 if not lines else round(len(lines) * font_px * 1.3 + font_px * 0.5)


def identification_strip(lines: list[str], width: int, font_px: int, bits: int, *, color: bool) -> PrintPixels:
    """The patient identification as white text on a black band `width` pixels wide, at `bits` (or RGB).

    A film must say whose it is even when the printer has no annotation boxes (PS3.4 H.4.1: the Basic
    Annotation Box is optional), so the text is burned into the image box pixels above the image; the text
    shrinks to fit a narrow box rather than being cut.
    """
    from PIL import Image, ImageDraw, ImageFont

    lines = [line for line in lines if line]
    height = identification_strip_height(lines, font_px)
    image = Image.new("L", (max(1, width), max(1, height)), 0)
    draw = ImageDraw.Draw(image)
    size = font_px
    font = ImageFont.load_default(size=size)
    widest = max((draw.textlength(line, font=font) for line in lines), default=0.0)
    if widest > width - 4 and widest > 0:
        size = max(5, int(size * (width - 4) / widest))
        font = ImageFont.load_default(size=size)
    for index, line in enumerate(lines):
        draw.text((2, round(font_px * 0.25 + index * font_px * 1.3)), line, fill=255, font=font)
    grey = np.asarray(image, dtype=np.uint8)
    if color:
        return PrintPixels(np.repeat(grey[:, :, None], 3, axis=2), 8)
    top = (1 << bits) - 1
    return PrintPixels((grey.astype(np.uint32) * top // 255).astype(np.uint16), bits)


def with_identification(pixels: PrintPixels, lines: list[str], font_px: int) -> PrintPixels:
    """`pixels` with the identification band stacked on top (same width, type and bit depth)."""
    if not any(lines):
        return pixels
    strip = identification_strip(lines, pixels.width, font_px, pixels.bits, color=pixels.is_color)
    return PrintPixels(np.ascontiguousarray(np.concatenate([strip.array, pixels.array], axis=0)), pixels.bits)
