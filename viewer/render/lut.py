"""The grayscale display pipeline as small pure stages, composed into ONE lookup table (numpy, no Qt).

PS3.4 grayscale pipeline: stored value → Modality LUT → VOI LUT → Presentation LUT → display (P-values).
Each stage here is a vectorised function over numpy arrays; `build_display_lut` evaluates the chain once over
every possible stored value, so a frame is rendered by one `np.take` (or one GPU texture lookup).

API
---
``Window(center, width, function="LINEAR", explanation="")``
    A VOI window; `function` is LINEAR, LINEAR_EXACT or SIGMOID (PS3.3 C.11.2.1.2/3).
``LutData(first_mapped, bits, data, explanation="")``
    A LUT from a Modality/VOI/Presentation LUT Sequence item: `data[i]` is the output for input
    `first_mapped + i`; inputs below/above clamp to the first/last entry (PS3.3 C.11.1/C.11.2).
``Voi = Window | LutData``
``windows_in_header(header) -> list[Window]``     every window the file (or merged frame header) names.
``voi_luts_in_header(header) -> list[LutData]``  every VOI LUT Sequence item.
``modality_lut(values, header) -> float array``  rescale slope/intercept or Modality LUT Sequence.
``apply_window(values, window, out_min, out_max)``, ``apply_voi_lut(values, lut)`` → [0, 1] floats.
``build_display_lut(header, voi, *, output_bits=8, invert=False, presentation_shape=None,
                    presentation_lut=None, apply_padding=True) -> DisplayLut``
    `voi` is a Window, a LutData, or None (identity over the modality output range).
    `presentation_shape` 'IDENTITY'/'INVERSE' overrides the file's (MONOCHROME1 defaults to INVERSE);
    `presentation_lut` (a Presentation LUT Sequence item, from a GSPS) replaces the shape; `invert` flips
    the result on top (the user's invert button). Pixel Padding Value(s) map to black when `apply_padding`.
    `output_bits` 8 gives uint8 (screen), 12 gives uint16 values 0..4095 (film print), 16 gives 0..65535.
``DisplayLut`` – `table` (entry i is the output for stored value `first_stored + i`), `first_stored`,
    `output_bits`, `voi`, `inverted`; `lut(frame)` / ``apply_lut(frame, lut)`` render a stored frame.
``min_max_window(modality_values)`` – the window that spans a frame's range (when the file names none).

The table covers the whole stored-value range of Bits Allocated ≤ 16 (65,536 entries at most); for signed
data it is also kept in bit-pattern order so `apply_lut` indexes with the frame's uint16 view, no arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "LINEAR"
    explanation: str = ""

    @property
    def label(self) -> str:
        text = f"W {self.width:g} / L {self.center:g}"
        return f"{self.explanation} ({text})" if self.explanation else text


@dataclass(frozen=True, eq=False)
class LutData:
    first_mapped: int
    bits: int
    data: np.ndarray
    explanation: str = ""

    @property
    def label(self) -> str:
        return self.explanation or f"VOI LUT ({len(self.data)} entries)"


Voi = Window | LutData


def _multi(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def windows_in_header(header: Dataset) -> list[Window]:
    """The file's windows, in order (Window Center/Width are multi-valued in step with the explanations)."""
    centers = _multi(header.get("WindowCenter"))
    widths = _multi(header.get("WindowWidth"))
    explanations = [str(e) for e in _multi(header.get("WindowCenterWidthExplanation"))]
    function = str(header.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    out = []
    for i, (c, w) in enumerate(zip(centers, widths)):
        try:
            center, width = float(c), float(w)
        except (TypeError, ValueError):
            continue
        if width <= 0 or (function == "LINEAR" and width < 1):
            continue
        out.append(Window(center, width, function, explanations[i] if i < len(explanations) else ""))
    return out


def lut_from_item(item: Dataset, *, signed_input: bool = False) -> LutData | None:
    """A LutData from a Modality/VOI/Presentation LUT Sequence item."""
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or "LUTData" not in item:
        return None
    n_entries, first, bits = (int(v) for v in _multi(descriptor)[:3])
    n_entries = n_entries or 65536
    if signed_input and first >= 32768:  # US-encoded descriptor of a signed first value
        first -= 65536
    elem = item["LUTData"]
    raw = elem.value
    if isinstance(raw, bytes):
        dtype = np.dtype("<u1") if bits <= 8 and len(raw) == n_entries else np.dtype("<u2")
        data = np.frombuffer(raw, dtype=dtype)
    else:
        data = np.asarray(_multi(raw), dtype=np.int64)
    data = np.asarray(data[:n_entries], dtype=np.float64)
    explanation = str(item.get("LUTExplanation", ""))
    return LutData(first, bits, data, explanation)


def voi_luts_in_header(header: Dataset) -> list[LutData]:
    # PS3.3 C.11.2.1.1: the VOI LUT's first mapped value is a modality value, signed when the modality output
    # can be negative (an unsigned CT with Rescale Intercept -1024), not when the stored pixels are signed.
    signed = "VOILUTSequence" in header and modality_output_range(header)[0] < 0
    out = []
    for item in header.get("VOILUTSequence", []) or []:
        lut = lut_from_item(item, signed_input=signed)
        if lut is not None:
            out.append(lut)
    return out


def vois_in_header(header: Dataset) -> list[Voi]:
    """Windows first, then VOI LUTs (PS3.4: either may be chosen; DCMTK's --use-window picks the window)."""
    return [*windows_in_header(header), *voi_luts_in_header(header)]


# ----------------------------------------------------------------------------- stages
def _apply_lut_data(values: np.ndarray, lut: LutData) -> np.ndarray:
    idx = np.clip(np.rint(values).astype(np.int64) - lut.first_mapped, 0, len(lut.data) - 1)
    return lut.data[idx]


def modality_lut(values: np.ndarray, header: Dataset) -> np.ndarray:
    """Stored values → modality values (Rescale Slope/Intercept, or a Modality LUT Sequence)."""
    seq = header.get("ModalityLUTSequence")
    if seq:
        lut = lut_from_item(seq[0], signed_input=int(header.get("PixelRepresentation", 0) or 0) == 1)
        if lut is not None:
            return _apply_lut_data(values, lut)
    slope = float(header.get("RescaleSlope", 1) or 1)
    intercept = float(header.get("RescaleIntercept", 0) or 0)
    return values.astype(np.float64) * slope + intercept


def modality_output_range(header: Dataset) -> tuple[float, float]:
    """The range of modality values the stored-value range can produce."""
    lo, hi = stored_value_range(header)
    ends = modality_lut(np.array([lo, hi], dtype=np.float64), header)
    seq = header.get("ModalityLUTSequence")
    if seq:
        lut = lut_from_item(seq[0])
        if lut is not None and len(lut.data):
            return float(lut.data.min()), float(lut.data.max())
    return float(min(ends)), float(max(ends))


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """VOI window → [0, 1] (PS3.3 C.11.2.1.2 LINEAR, C.11.2.1.3.1 SIGMOID, C.11.2.1.3.2 LINEAR_EXACT)."""
    c, w = window.center, window.width
    x = values.astype(np.float64, copy=False)
    function = window.function.upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if function == "LINEAR_EXACT":
        return np.clip((x - c) / w + 0.5, 0.0, 1.0)
    # LINEAR: x <= c-0.5-(w-1)/2 → min; x > c-0.5+(w-1)/2 → max; else ((x-(c-0.5))/(w-1)+0.5)
    if w <= 1:
        return (x > c - 0.5).astype(np.float64)
    return np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)


def apply_voi_lut(values: np.ndarray, lut: LutData) -> np.ndarray:
    """VOI LUT Sequence → [0, 1] (output scaled by the LUT's bit depth)."""
    out_max = float((1 << lut.bits) - 1) if lut.bits else float(lut.data.max() or 1)
    # Some writers say 16 bits but only use 12: scale by the real maximum like DCMTK does for such LUTs.
    if lut.data.size and lut.data.max() > out_max:
        out_max = float(lut.data.max())
    return _apply_lut_data(values, lut) / out_max


def apply_voi(values: np.ndarray, voi: Voi | None, value_range: tuple[float, float]) -> np.ndarray:
    if isinstance(voi, Window):
        return apply_window(values, voi)
    if isinstance(voi, LutData):
        return apply_voi_lut(values, voi)
    lo, hi = value_range
    return np.clip((values - lo) / max(hi - lo, 1e-9), 0.0, 1.0)


def min_max_window(modality_values: np.ndarray) -> Window:
    """A LINEAR window spanning the frame's modality values (used when the file has no VOI)."""
    lo, hi = float(np.min(modality_values)), float(np.max(modality_values))
    width = max(hi - lo + 1.0, 2.0)
    return Window(center=lo + (hi - lo + 1.0) / 2.0, width=width, explanation="min/max")


def stored_value_range(header: Dataset) -> tuple[int, int]:
    bits_allocated = int(header.get("BitsAllocated", 16) or 16)
    bits = min(int(header.get("BitsStored", bits_allocated) or bits_allocated), 16)
    if int(header.get("PixelRepresentation", 0) or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


# ----------------------------------------------------------------------------- composed LUT
@dataclass(eq=False)
class DisplayLut:
    """Stored value → display value, precomputed for every stored value of the image's bit depth."""

    table: np.ndarray  # table[i] is the output for stored value first_stored + i
    first_stored: int
    output_bits: int
    voi: Voi | None = None
    inverted: bool = False
    _by_pattern: np.ndarray | None = field(default=None, repr=False)

    @property
    def window(self) -> Window | None:
        return self.voi if isinstance(self.voi, Window) else None

    @property
    def max_output(self) -> int:
        return (1 << self.output_bits) - 1

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return apply_lut(frame, self)

    def pattern_table(self) -> np.ndarray:
        """The table indexed by the stored value's unsigned bit pattern (65,536 or 256 entries)."""
        if self._by_pattern is None:
            size = 256 if len(self.table) <= 256 and self.first_stored >= -128 else 65536
            patterns = np.arange(size, dtype=np.int64)
            values = patterns.copy()
            if self.first_stored < 0:
                values = np.where(patterns >= size // 2, patterns - size, patterns)
            idx = np.clip(values - self.first_stored, 0, len(self.table) - 1)
            self._by_pattern = np.ascontiguousarray(self.table[idx])
        return self._by_pattern


def build_display_lut(
    header: Dataset,
    voi: Voi | None = None,
    *,
    output_bits: int = 8,
    invert: bool = False,
    presentation_shape: str | None = None,
    presentation_lut: LutData | None = None,
    apply_padding: bool = True,
    stored_range: tuple[int, int] | None = None,
) -> DisplayLut:
    """Compose modality → VOI → presentation → output scaling into one table (see module docstring).

    `stored_range` overrides the range implied by Bits Stored (needed for 32-bit data: pass the frame's range).
    """
    lo, hi = stored_range or stored_value_range(header)
    stored = np.arange(lo, hi + 1, dtype=np.int64)
    values = modality_lut(stored, header)
    normalised = apply_voi(values, voi, (float(values.min()), float(values.max())))
    if presentation_lut is not None:
        n = len(presentation_lut.data)
        idx = np.clip(np.rint(normalised * (n - 1)).astype(np.int64), 0, n - 1)
        normalised = presentation_lut.data[idx] / float((1 << presentation_lut.bits) - 1)
        shape_inverse = False
    else:
        shape = presentation_shape or str(header.get("PresentationLUTShape", "") or "").strip().upper()
        if not shape:
            photometric = str(header.get("PhotometricInterpretation", "")).strip().upper()
            shape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
        shape_inverse = shape.upper() == "INVERSE"
    inverted = shape_inverse != bool(invert)
    if inverted:
        normalised = 1.0 - normalised
    out_max = (1 << output_bits) - 1
    table = np.rint(np.clip(normalised, 0.0, 1.0) * out_max)
    if apply_padding:
        padding = _padding_range(header)
        if padding is not None:
            p_lo, p_hi = padding
            table[max(p_lo - lo, 0) : max(min(p_hi - lo + 1, len(table)), 0)] = 0
    dtype = np.uint8 if output_bits <= 8 else np.uint16
    return DisplayLut(table.astype(dtype), lo, output_bits, voi, inverted)


def _padding_range(header: Dataset) -> tuple[int, int] | None:
    value = header.get("PixelPaddingValue")
    if value is None or isinstance(value, bytes):
        return None
    limit = header.get("PixelPaddingRangeLimit")
    values = [int(value)] + ([int(limit)] if limit is not None and not isinstance(limit, bytes) else [])
    if int(header.get("PixelRepresentation", 0) or 0) == 1:
        bits = int(header.get("BitsAllocated", 16) or 16)
        values = [v - (1 << bits) if v >= 1 << (bits - 1) else v for v in values]
    return min(values), max(values)


def apply_lut(frame: np.ndarray, lut: DisplayLut) -> np.ndarray:
    """Render a grayscale stored frame through `lut` in one table lookup."""
    if frame.dtype in (np.uint16, np.int16):
        table = lut.pattern_table()
        if len(table) == 65536:
            return np.take(table, frame.view(np.uint16))
    if frame.dtype in (np.uint8, np.int8):
        table = lut.pattern_table()
        if len(table) == 256:
            return np.take(table, frame.view(np.uint8))
        if frame.dtype == np.uint8:
            return np.take(table, frame.view(np.uint8))
        return np.take(table, frame.astype(np.int16).view(np.uint16))
    idx = np.clip(frame.astype(np.int64) - lut.first_stored, 0, len(lut.table) - 1)
    return np.take(lut.table, idx)
