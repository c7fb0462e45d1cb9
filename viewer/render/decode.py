"""Decoding DICOM pixel data lazily, one frame at a time (numpy only, no Qt).

API
---
``ImageSource(path)``
    Opens a Part 10 file. The header (everything except Pixel Data) is read once, without pixels.

    * ``header: Dataset`` – the dataset without (7FE0,0010); overlay data (60xx,3000) is kept.
    * ``num_frames: int``, ``rows``, ``columns``, ``samples_per_pixel``, ``photometric: str``,
      ``is_color: bool`` (RGB, YBR_*, PALETTE COLOR), ``transfer_syntax: str``.
    * ``frame(i) -> np.ndarray`` – frame *i* (0-based): stored values for grayscale (H×W, signed when
      Pixel Representation is 1; no rescale applied), RGB (H×W×3) for colour: YBR_FULL / YBR_FULL_422 /
      YBR_ICT / YBR_RCT are converted to RGB, planar configuration 0 and 1 give the same H×W×3 layout,
      PALETTE COLOR is expanded through its (possibly segmented) palette (uint8 or uint16 as the palette's
      entry size says).
    * ``stored_frame(i)`` – the stored values without palette expansion (palette indices for PALETTE COLOR).
    * ``iter_frames(indices)`` – several frames from one parse of the file (used by the frame cache).
    * ``frame_header(i) -> Dataset`` – the header with the frame's functional groups (Enhanced multi-frame:
      Shared + Per-frame Pixel Value Transformation, Frame VOI LUT, Plane Position/Orientation, Pixel
      Measures) merged in at the top level, so every LUT stage reads one flat dataset. The plain header for
      single-frame objects.
    * ``overlays(i) -> list[Overlay]`` – graphics overlays (60xx) that apply to frame *i*, including
      multi-frame overlays (Number of Frames in Overlay / Image Frame Origin).
    * ``padding: PixelPadding | None`` – Pixel Padding Value (and Range Limit) in stored-value units.
    * ``burned_in_annotation: bool`` – Burned In Annotation is YES.

Decoders are pydicom 3's pixel backends; with pylibjpeg (libjpeg, openjpeg, rle) and python-gdcm
installed that covers Implicit/Explicit VR LE, Explicit VR BE, Deflated, JPEG 4.50/4.51/4.57/4.70,
JPEG-LS 4.80/4.81, JPEG 2000 4.90/4.91, HTJ2K 4.201-4.203 (openjpeg) and RLE. ``supported_transfer_syntaxes()``
lists what the installed plugins can decode. Every method is thread-safe: each decode opens the file itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, get_decoder, iter_pixels, pixel_array
from pydicom.uid import UID

COLOR_PHOTOMETRICS = frozenset(
    {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "YBR_PARTIAL_422", "PALETTE COLOR"}
)

# Functional group macros whose contents describe one frame; merged flat by `frame_header`.
_FRAME_MACROS = (
    "PixelValueTransformationSequence",
    "FrameVOILUTSequence",
    "PlanePositionSequence",
    "PlaneOrientationSequence",
    "PixelMeasuresSequence",
    "FrameContentSequence",
)

DEFLATED = "1.2.840.10008.1.2.1.99"

_ALL_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.5",
)


def supported_transfer_syntaxes() -> list[str]:
    """Transfer syntaxes the installed pixel plugins can decode."""
    out = []
    for ts in _ALL_TRANSFER_SYNTAXES:
        try:
            if get_decoder(UID(ts)).is_available:
                out.append(ts)
        except (NotImplementedError, KeyError, ValueError):
            continue
    return out


class DecodeError(RuntimeError):
    """The pixel data could not be decoded (no plugin for the transfer syntax, or corrupt data)."""


@dataclass(frozen=True)
class Overlay:
    """One overlay plane for one frame; `bitmap` is rows×columns bool, placed at `origin` (row, col), 0-based."""

    group: int
    bitmap: np.ndarray
    origin: tuple[int, int]
    kind: str = "G"  # G graphics, R ROI
    label: str = ""
    description: str = ""


@dataclass(frozen=True)
class PixelPadding:
    """Stored values that are padding, not patient (inclusive range; a single value when low == high)."""

    low: int
    high: int


class ImageSource:
    """A DICOM image file whose frames are decoded on demand."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.header: Dataset = pydicom.dcmread(self.path, stop_before_pixels=True)
        except Exception as exc:
            raise DecodeError(f"cannot read {self.path.name}: {exc}") from exc
        h = self.header
        self.transfer_syntax = str(h.file_meta.get("TransferSyntaxUID", "")) if hasattr(h, "file_meta") else ""
        self.rows = int(h.get("Rows", 0) or 0)
        self.columns = int(h.get("Columns", 0) or 0)
        self.samples_per_pixel = int(h.get("SamplesPerPixel", 1) or 1)
        self.bits_allocated = int(h.get("BitsAllocated", 16) or 16)
        self.bits_stored = int(h.get("BitsStored", self.bits_allocated) or self.bits_allocated)
        self.pixel_representation = int(h.get("PixelRepresentation", 0) or 0)
        self.photometric = str(h.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        try:
            self.num_frames = max(1, int(h.get("NumberOfFrames", 1) or 1))
        except (TypeError, ValueError):
            self.num_frames = 1
        self.is_color = self.samples_per_pixel > 1 or self.photometric in COLOR_PHOTOMETRICS
        self.burned_in_annotation = str(h.get("BurnedInAnnotation", "")).upper() == "YES"
        self.padding = _padding(h)
        self._frame_headers: dict[int, Dataset] = {}
        self._lock = threading.Lock()
        self._full: Dataset | None = None  # whole dataset, only for encodings that cannot be read frame-wise

    def _pixel_source(self) -> str | Path | Dataset:
        # A deflated dataset has no seekable Pixel Data, so it is inflated once and kept.
        if self.transfer_syntax != DEFLATED:
            return self.path
        with self._lock:
            if self._full is None:
                self._full = pydicom.dcmread(self.path)
            return self._full

    def __repr__(self) -> str:
        return f"ImageSource({self.path.name!r}, {self.num_frames} frame(s), {self.photometric})"

    # ----------------------------------------------------------------- pixels
    def stored_frame(self, index: int = 0) -> np.ndarray:
        """Frame `index` as stored (palette indices for PALETTE COLOR, RGB for YBR)."""
        self._check_index(index)
        try:
            arr = pixel_array(self._pixel_source(), index=index if self.num_frames > 1 else None)
        except Exception as exc:
            raise DecodeError(f"cannot decode frame {index} of {self.path.name}: {exc}") from exc
        return self._shape(arr)

    def frame(self, index: int = 0) -> np.ndarray:
        """Frame `index` ready for the LUT stages: stored values for grayscale, RGB for colour."""
        return self._expand(self.stored_frame(index))

    def iter_frames(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) pairs for `indices`, decoding each once from a single parse of the file."""
        wanted = [i for i in indices if 0 <= i < self.num_frames]
        if not wanted:
            return
        if self.num_frames == 1:
            yield 0, self.frame(0)
            return
        try:
            for i, arr in zip(wanted, iter_pixels(self._pixel_source(), indices=wanted)):
                yield i, self._expand(self._shape(arr))
        except Exception as exc:
            raise DecodeError(f"cannot decode frames of {self.path.name}: {exc}") from exc

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} out of range (0..{self.num_frames - 1})")

    def _shape(self, arr: np.ndarray) -> np.ndarray:
        # pydicom returns (frames, rows, cols[, 3]) when asked for one frame of some multi-frame objects
        if arr.ndim == (4 if self.samples_per_pixel > 1 else 3) and arr.shape[0] == 1:
            arr = arr[0]
        return arr

    def _expand(self, arr: np.ndarray) -> np.ndarray:
        if self.photometric == "PALETTE COLOR":
            return apply_color_lut(arr, self.header)
        return arr

    # ----------------------------------------------------------------- per-frame attributes
    def frame_header(self, index: int = 0) -> Dataset:
        """The header with the frame's functional groups merged in at the top level (cached)."""
        h = self.header
        if "PerFrameFunctionalGroupsSequence" not in h and "SharedFunctionalGroupsSequence" not in h:
            return h
        with self._lock:
            cached = self._frame_headers.get(index)
            if cached is not None:
                return cached
        merged = Dataset()
        for elem in h:
            if elem.keyword not in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
                merged.add(elem)
        merged.file_meta = getattr(h, "file_meta", Dataset())
        groups: list[Dataset] = []
        shared = h.get("SharedFunctionalGroupsSequence")
        if shared:
            groups.append(shared[0])
        per_frame = h.get("PerFrameFunctionalGroupsSequence")
        if per_frame and index < len(per_frame):
            groups.append(per_frame[index])
        for group in groups:
            for macro in _FRAME_MACROS:
                seq = group.get(macro)
                if seq:
                    if macro == "FrameVOILUTSequence":
                        # a frame's own windows replace the image-level ones rather than mixing with them
                        for kw in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction"):
                            if kw in merged:
                                del merged[kw]
                    for elem in seq[0]:
                        merged.add(elem)
        with self._lock:
            self._frame_headers[index] = merged
        return merged

    # ----------------------------------------------------------------- overlays
    def overlays(self, index: int = 0) -> list[Overlay]:
        """Overlay planes (60xx,3000) that apply to frame `index`."""
        out: list[Overlay] = []
        h = self.header
        for group in range(0x6000, 0x6020, 2):
            if (group, 0x3000) not in h or (group, 0x0010) not in h:
                continue
            rows = int(h[group, 0x0010].value)
            cols = int(h[group, 0x0011].value)
            n_frames = int(h[group, 0x0015].value) if (group, 0x0015) in h else 1
            first = int(h[group, 0x0051].value) if (group, 0x0051) in h else 1
            overlay_index = index - (first - 1) if self.num_frames > 1 else 0
            if not 0 <= overlay_index < n_frames:
                continue
            raw = h[group, 0x3000].value
            bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
            per_frame = rows * cols
            plane = bits[overlay_index * per_frame : (overlay_index + 1) * per_frame]
            if plane.size < per_frame:
                continue
            origin = h[group, 0x0050].value if (group, 0x0050) in h else [1, 1]
            out.append(
                Overlay(
                    group=group,
                    bitmap=plane.reshape(rows, cols).astype(bool),
                    origin=(int(origin[0]) - 1, int(origin[1]) - 1),
                    kind=str(h[group, 0x0040].value).strip() if (group, 0x0040) in h else "G",
                    label=str(h[group, 0x1500].value) if (group, 0x1500) in h else "",
                    description=str(h[group, 0x0022].value) if (group, 0x0022) in h else "",
                )
            )
        return out


def overlay_mask(overlays: Iterable[Overlay], rows: int, columns: int) -> np.ndarray:
    """The union of overlays as one rows×columns bool mask, clipped to the image."""
    mask = np.zeros((rows, columns), dtype=bool)
    for ov in overlays:
        r0, c0 = ov.origin
        r1, c1 = r0 + ov.bitmap.shape[0], c0 + ov.bitmap.shape[1]
        sr0, sc0 = max(r0, 0), max(c0, 0)
        sr1, sc1 = min(r1, rows), min(c1, columns)
        if sr1 <= sr0 or sc1 <= sc0:
            continue
        mask[sr0:sr1, sc0:sc1] |= ov.bitmap[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0]
    return mask


def _padding(h: Dataset) -> PixelPadding | None:
    value = h.get("PixelPaddingValue")
    if value is None:
        return None
    if isinstance(value, bytes):  # US or SS read as bytes when the VR was unknown
        return None
    low = int(value)
    limit = h.get("PixelPaddingRangeLimit")
    high = int(limit) if limit is not None and not isinstance(limit, bytes) else low
    return PixelPadding(min(low, high), max(low, high))


class SourcePool:
    """One `ImageSource` per file path, shared by series stacks and frame-cache loaders (thread-safe)."""

    def __init__(self) -> None:
        self._sources: dict[str, ImageSource] = {}
        self._lock = threading.Lock()

    def get(self, path: str | Path) -> ImageSource:
        key = str(path)
        with self._lock:
            source = self._sources.get(key)
        if source is None:
            source = ImageSource(key)  # read outside the lock: headers of different files load in parallel
            with self._lock:
                source = self._sources.setdefault(key, source)
        return source

    def load(self, key: tuple[str, int]) -> np.ndarray:
        """Frame-cache loader for (path, frame index) keys."""
        return self.get(key[0]).frame(key[1])

    def __len__(self) -> int:
        return len(self._sources)
