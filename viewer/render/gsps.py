"""Applying Softcopy Presentation States to an image, producing a `DisplayList` (numpy, no Qt).

Order of application (PS3.4 N.2, grayscale): Modality LUT (the presentation state's, the image's own is
ignored) → Softcopy VOI LUT (window or VOI LUT Sequence, the item that references this image/frame) →
Softcopy Presentation LUT (shape or LUT Sequence) → overlays and shutters (burned in with their presentation
values) → Spatial Transformation (rotation, then horizontal flip) → Displayed Area (kept as geometry, see
`displaylist.view_transform`) → Graphic Annotations (vector items, in graphic layer order).

Colour (…11.2): the image's RGB, then the presentation state's ICC profile **is applied** (converted to sRGB
with littlecms through Pillow's ImageCms) when the state carries one; the image is otherwise taken as sRGB.
Pseudo-colour (…11.3): modality → VOI, then the state's Palette Color LUT instead of a presentation LUT.
Blending (…11.4): `apply_blending` – the underlying image through its modality/VOI to grey, the superimposed
image through its modality/VOI and the state's palette, mixed with Relative Opacity. The superimposed frame is
resampled onto the underlying image's pixel grid by scaling the full extents onto each other (nearest
neighbour); spatial registration objects are not consulted.

The grayscale stages reuse `viewer.render.lut` (one composed lookup table); decoding uses
`viewer.render.decode.ImageSource`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from viewer.render.decode import ImageSource, overlay_mask
from viewer.render.displaylist import (
    GRAPHIC_TYPES,
    RGB,
    DisplayedArea,
    DisplayList,
    GraphicItem,
    Item,
    SpatialTransform,
    TextItem,
)
from viewer.render.lut import (
    DisplayLut,
    LutData,
    Window,
    apply_lut,
    apply_voi,
    build_display_lut,
    lut_from_item,
    modality_lut,
    modality_output_range,
    stored_value_range,
)

log = logging.getLogger(__name__)

GRAYSCALE_PS = "1.2.840.10008.5.1.4.1.1.11.1"
COLOR_PS = "1.2.840.10008.5.1.4.1.1.11.2"
PSEUDO_COLOR_PS = "1.2.840.10008.5.1.4.1.1.11.3"
BLENDING_PS = "1.2.840.10008.5.1.4.1.1.11.4"


class StateKind(StrEnum):
    """The four softcopy presentation state IODs this viewer applies (PS3.3 A.33)."""

    GRAYSCALE = "grayscale"
    COLOR = "color"
    PSEUDO_COLOR = "pseudo-color"
    BLENDING = "blending"


PS_KINDS = {
    GRAYSCALE_PS: StateKind.GRAYSCALE,
    COLOR_PS: StateKind.COLOR,
    PSEUDO_COLOR_PS: StateKind.PSEUDO_COLOR,
    BLENDING_PS: StateKind.BLENDING,
}


class PresentationStateError(ValueError):
    """The presentation state cannot be applied to this image."""


def ps_kind(ds: Dataset) -> StateKind:
    return PS_KINDS.get(str(ds.get("SOPClassUID", "")), StateKind.GRAYSCALE)


# ----------------------------------------------------------------------------- references
def _multi(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def item_applies(item: Dataset, sop_instance_uid: str, frame_index: int = 0) -> bool:
    """Whether a module item with an optional Referenced Image Sequence applies to this image and frame."""
    refs = item.get("ReferencedImageSequence")
    if not refs:
        return True
    return any(ref_applies(ref, sop_instance_uid, frame_index) for ref in refs)


def ref_applies(ref: Dataset, sop_instance_uid: str, frame_index: int = 0) -> bool:
    if str(ref.get("ReferencedSOPInstanceUID", "")) != sop_instance_uid:
        return False
    frames = [int(f) for f in _multi(ref.get("ReferencedFrameNumber")) if str(f).strip()]
    return not frames or (frame_index + 1) in frames


def referenced_images(ds: Dataset) -> list[tuple[str, str, tuple[int, ...]]]:
    """(series UID, SOP Instance UID, frame numbers (1-based, empty = all)) the state references."""
    out = []
    for series in ds.get("ReferencedSeriesSequence", []) or []:
        series_uid = str(series.get("SeriesInstanceUID", ""))
        for ref in series.get("ReferencedImageSequence", []) or []:
            frames = tuple(int(f) for f in _multi(ref.get("ReferencedFrameNumber")) if str(f).strip())
            out.append((series_uid, str(ref.get("ReferencedSOPInstanceUID", "")), frames))
    return out


def applies_to(ds: Dataset, sop_instance_uid: str, frame_index: int = 0) -> bool:
    """Whether the presentation state references this image (and frame)."""
    if ps_kind(ds) is StateKind.BLENDING:
        for item in ds.get("BlendingSequence", []) or []:
            for series in item.get("ReferencedSeriesSequence", []) or []:
                for ref in series.get("ReferencedImageSequence", []) or []:
                    if ref_applies(ref, sop_instance_uid, frame_index):
                        return True
        return False
    for _series, uid, frames in referenced_images(ds):
        if uid == sop_instance_uid and (not frames or frame_index + 1 in frames):
            return True
    return False


def _first_applying(seq: Iterable[Dataset] | None, uid: str, frame_index: int) -> Dataset | None:
    for item in seq or []:
        if item_applies(item, uid, frame_index):
            return item
    return None


# ----------------------------------------------------------------------------- colours
_D50 = (0.9642, 1.0, 0.8249)
_BRADFORD_D50_TO_D65 = np.array(
    [[0.9555766, -0.0230393, 0.0631636], [-0.0282895, 1.0099416, 0.0210077], [0.0122982, -0.0204830, 1.3299098]]
)
_XYZ_TO_SRGB = np.array(
    [[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560], [0.0556434, -0.2040259, 1.0572252]]
)


def cielab_to_rgb(values: Sequence[int]) -> RGB:
    """DICOM-encoded CIELab (PS3.3 C.10.7.1.1: L* 0..100, a*/b* −128..127 scaled to 0..65535) → sRGB."""
    lv, av, bv = (float(v) for v in list(values)[:3])
    lightness = lv * 100.0 / 65535.0
    a = av * 255.0 / 65535.0 - 128.0
    b = bv * 255.0 / 65535.0 - 128.0
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0

    def finv(t: float) -> float:
        return t**3 if t > 6.0 / 29.0 else 3 * (6.0 / 29.0) ** 2 * (t - 4.0 / 29.0)

    xyz = np.array([_D50[0] * finv(fx), _D50[1] * finv(fy), _D50[2] * finv(fz)])
    linear = _XYZ_TO_SRGB @ (_BRADFORD_D50_TO_D65 @ xyz)
    linear = np.clip(linear, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
    r, g, b_ = (round(float(c) * 255) for c in srgb)
    return r, g, b_


def rgb_to_cielab(rgb: RGB) -> tuple[int, int, int]:
    """sRGB → DICOM-encoded CIELab (the inverse of `cielab_to_rgb`, used when writing layers)."""
    c = np.array(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.linalg.inv(_BRADFORD_D50_TO_D65) @ (np.linalg.inv(_XYZ_TO_SRGB) @ linear)

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = (f(float(xyz[i] / _D50[i])) for i in range(3))
    lightness, a, b = 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)
    return (
        round(np.clip(lightness, 0, 100) * 65535 / 100),
        round(np.clip(a + 128, 0, 255) * 65535 / 255),
        round(np.clip(b + 128, 0, 255) * 65535 / 255),
    )


def p_value_to_grey(p_value: int) -> int:
    return round(max(0, min(int(p_value), 0xFFFF)) * 255 / 0xFFFF)


@dataclass(frozen=True)
class LayerStyle:
    name: str
    order: int
    color: RGB
    grey: int | None
    description: str = ""


def graphic_layers(ds: Dataset) -> dict[str, LayerStyle]:
    out: dict[str, LayerStyle] = {}
    for item in ds.get("GraphicLayerSequence", []) or []:
        name = str(item.get("GraphicLayer", ""))
        grey = item.get("GraphicLayerRecommendedDisplayGrayscaleValue")
        lab = item.get("GraphicLayerRecommendedDisplayCIELabValue")
        rgb_old = item.get("GraphicLayerRecommendedDisplayRGBValue")  # retired, still seen in the wild
        if lab is not None and len(_multi(lab)) >= 3:
            color = cielab_to_rgb(_multi(lab))
        elif grey is not None:
            g = p_value_to_grey(int(grey))
            color = (g, g, g)
        elif rgb_old is not None and len(_multi(rgb_old)) >= 3:
            vals = [int(v) for v in _multi(rgb_old)[:3]]
            scale = 255.0 / 65535.0 if max(vals) > 255 else 1.0
            color = (int(vals[0] * scale), int(vals[1] * scale), int(vals[2] * scale))
        else:
            color = (255, 255, 255)
        out[name] = LayerStyle(
            name,
            int(item.get("GraphicLayerOrder", 0) or 0),
            color,
            int(grey) if grey is not None else None,
            str(item.get("GraphicLayerDescription", "")),
        )
    return out


# ----------------------------------------------------------------------------- module readers
def modality_header(ps: Dataset, image_header: Dataset) -> Dataset:
    """A flat header for the LUT stages: the image's pixel description with the state's Modality LUT."""
    header = Dataset()
    for kw in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PhotometricInterpretation"):
        if kw in image_header:
            header[kw] = image_header[kw]
    if "ModalityLUTSequence" in ps:
        header.ModalityLUTSequence = ps.ModalityLUTSequence
    elif "RescaleSlope" in ps or "RescaleIntercept" in ps:
        header.RescaleSlope = ps.get("RescaleSlope", 1)
        header.RescaleIntercept = ps.get("RescaleIntercept", 0)
    return header


def softcopy_voi(ps: Dataset, uid: str, frame_index: int, *, signed: bool = False) -> Window | LutData | None:
    item = _first_applying(ps.get("SoftcopyVOILUTSequence"), uid, frame_index)
    if item is None:
        return None
    if item.get("VOILUTSequence"):
        return lut_from_item(item.VOILUTSequence[0], signed_input=signed)
    centers, widths = _multi(item.get("WindowCenter")), _multi(item.get("WindowWidth"))
    if centers and widths:
        function = str(item.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
        explanation = _multi(item.get("WindowCenterWidthExplanation"))
        return Window(float(centers[0]), float(widths[0]), function, str(explanation[0]) if explanation else "")
    return None


def presentation_lut(ps: Dataset, photometric: str) -> tuple[str, LutData | None]:
    if ps.get("PresentationLUTSequence"):
        return "IDENTITY", lut_from_item(ps.PresentationLUTSequence[0])
    shape = str(ps.get("PresentationLUTShape", "") or "").strip().upper()
    if not shape:
        shape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    return shape, None


def rotation_and_flip(ps: Dataset) -> tuple[int, bool]:
    rotation = int(ps.get("ImageRotation", 0) or 0) % 360
    if rotation not in (0, 90, 180, 270):
        log.warning("ignoring image rotation %s (not a multiple of 90)", rotation)
        rotation = 0
    flip = str(ps.get("ImageHorizontalFlip", "N") or "N").strip().upper() == "Y"
    return rotation, flip


def displayed_area(ps: Dataset, uid: str, frame_index: int, columns: int, rows: int) -> DisplayedArea:
    item = _first_applying(ps.get("DisplayedAreaSelectionSequence"), uid, frame_index)
    if item is None:
        return DisplayedArea.whole_image(columns, rows)
    tl = [int(v) for v in _multi(item.get("DisplayedAreaTopLeftHandCorner"))] or [1, 1]
    br = [int(v) for v in _multi(item.get("DisplayedAreaBottomRightHandCorner"))] or [columns, rows]
    spacing = [float(v) for v in _multi(item.get("PresentationPixelSpacing"))]
    aspect = [float(v) for v in _multi(item.get("PresentationPixelAspectRatio"))]
    return DisplayedArea(
        tlhc=(tl[0], tl[1]),
        brhc=(br[0], br[1]),
        size_mode=str(item.get("PresentationSizeMode", "SCALE TO FIT") or "SCALE TO FIT").strip().upper(),
        magnification=float(item.get("PresentationPixelMagnificationRatio", 1.0) or 1.0),
        pixel_spacing=(spacing[0], spacing[1]) if len(spacing) == 2 else None,
        aspect_ratio=(aspect[0], aspect[1]) if len(aspect) == 2 else (1.0, 1.0),
    )


def _overlay_from(ds: Dataset, group: int, rows: int, columns: int, frame_index: int) -> np.ndarray | None:
    """An overlay plane (60xx) carried in `ds`, as a rows×columns bool mask over the image, or None."""
    if (group, 0x3000) not in ds or (group, 0x0010) not in ds:
        return None
    o_rows, o_cols = int(ds[group, 0x0010].value), int(ds[group, 0x0011].value)
    n_frames = int(ds[group, 0x0015].value) if (group, 0x0015) in ds else 1
    first = int(ds[group, 0x0051].value) if (group, 0x0051) in ds else 1
    index = frame_index - (first - 1) if n_frames > 1 else 0
    if not 0 <= index < n_frames:
        return None
    raw = ds[group, 0x3000].value
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    per = o_rows * o_cols
    plane = bits[index * per : (index + 1) * per]
    if plane.size < per:
        return None
    origin = _multi(ds[group, 0x0050].value) if (group, 0x0050) in ds else [1, 1]
    mask = np.zeros((rows, columns), dtype=bool)
    r0, c0 = int(origin[0]) - 1, int(origin[1]) - 1
    bm = plane.reshape(o_rows, o_cols).astype(bool)
    sr0, sc0, sr1, sc1 = max(r0, 0), max(c0, 0), min(r0 + o_rows, rows), min(c0 + o_cols, columns)
    if sr1 > sr0 and sc1 > sc0:
        mask[sr0:sr1, sc0:sc1] = bm[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0]
    return mask


def overlay_plane(ps: Dataset, source: ImageSource, group: int, frame_index: int) -> np.ndarray | None:
    """An overlay group from the presentation state if it carries one, else from the image."""
    mask = _overlay_from(ps, group, source.rows, source.columns, frame_index)
    if mask is not None:
        return mask
    planes = [ov for ov in source.overlays(frame_index) if ov.group == group]
    return overlay_mask(planes, source.rows, source.columns) if planes else None


def activated_overlays(ps: Dataset) -> list[tuple[int, str]]:
    """(group, graphic layer) for every overlay the state activates (60xx,1001)."""
    return [(g, str(ps[g, 0x1001].value)) for g in range(0x6000, 0x6020, 2) if (g, 0x1001) in ps]


def shutter_mask(ps: Dataset, source: ImageSource, frame_index: int) -> np.ndarray | None:
    """True where a shutter hides the image (union of every shape the state names), image coordinates."""
    shapes = {str(s).strip().upper() for s in _multi(ps.get("ShutterShape"))}
    rows, cols = source.rows, source.columns
    if not shapes and "ShutterOverlayGroup" not in ps:
        return None
    visible = np.ones((rows, cols), dtype=bool)
    r = np.arange(rows)[:, None] + 1  # 1-based pixel indices, as the shutter attributes use
    c = np.arange(cols)[None, :] + 1
    if "RECTANGULAR" in shapes:
        left = int(ps.get("ShutterLeftVerticalEdge", 1))
        right = int(ps.get("ShutterRightVerticalEdge", cols))
        upper = int(ps.get("ShutterUpperHorizontalEdge", 1))
        lower = int(ps.get("ShutterLowerHorizontalEdge", rows))
        visible &= (c >= left) & (c <= right) & (r >= upper) & (r <= lower)
    if "CIRCULAR" in shapes:
        centre = [float(v) for v in _multi(ps.get("CenterOfCircularShutter"))]  # row\column
        radius = float(ps.get("RadiusOfCircularShutter", 0))
        visible &= (r - centre[0]) ** 2 + (c - centre[1]) ** 2 <= radius**2
    if "POLYGONAL" in shapes:
        vertices = [float(v) for v in _multi(ps.get("VerticesOfThePolygonalShutter"))]
        poly = np.array(vertices).reshape(-1, 2)  # (row, column) pairs
        visible &= _inside_polygon(poly[:, 1], poly[:, 0], rows, cols)
    if "BITMAP" in shapes or "ShutterOverlayGroup" in ps:
        group = int(ps.get("ShutterOverlayGroup", 0x6000))
        plane = overlay_plane(ps, source, group, frame_index)
        if plane is not None:
            visible &= ~plane
    return ~visible


def _inside_polygon(xs: np.ndarray, ys: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Pixels (by 1-based index) inside or on a polygon given by vertex columns/rows (even-odd rule)."""
    py, px = np.mgrid[1 : rows + 1, 1 : cols + 1].astype(np.float64)
    inside = np.zeros((rows, cols), dtype=bool)
    n = len(xs)
    for i in range(n):
        x1, y1, x2, y2 = xs[i], ys[i], xs[(i + 1) % n], ys[(i + 1) % n]
        if y1 == y2:
            continue
        crosses = ((y1 > py) != (y2 > py)) & (px < (x2 - x1) * (py - y1) / (y2 - y1) + x1)
        inside ^= crosses
    return inside


def shutter_color(ps: Dataset) -> tuple[int, RGB]:
    """(grey 0..255, RGB) the shuttered area is shown in; black unless the state says otherwise."""
    lab = ps.get("ShutterPresentationColorCIELabValue")
    grey = p_value_to_grey(int(ps.get("ShutterPresentationValue", 0) or 0))
    if lab is not None and len(_multi(lab)) >= 3:
        rgb = cielab_to_rgb(_multi(lab))
        return round(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]), rgb
    return grey, (grey, grey, grey)


def annotations(ps: Dataset, uid: str, frame_index: int) -> list[Item]:
    """Text and graphic objects for this image/frame, sorted by graphic layer order."""
    layers = graphic_layers(ps)
    items: list[tuple[int, int, Item]] = []
    for seq_index, ann in enumerate(ps.get("GraphicAnnotationSequence", []) or []):
        if not item_applies(ann, uid, frame_index):
            continue
        layer_name = str(ann.get("GraphicLayer", ""))
        style = layers.get(layer_name, LayerStyle(layer_name, 1 << 30, (255, 255, 255), None))
        for text in ann.get("TextObjectSequence", []) or []:
            box = None
            if "BoundingBoxTopLeftHandCorner" in text and "BoundingBoxBottomRightHandCorner" in text:
                tl = [float(v) for v in text.BoundingBoxTopLeftHandCorner]
                br = [float(v) for v in text.BoundingBoxBottomRightHandCorner]
                box = ((tl[0], tl[1]), (br[0], br[1]))
            anchor = None
            if "AnchorPoint" in text:
                ap = [float(v) for v in text.AnchorPoint]
                anchor = (ap[0], ap[1])
            color = _style_color(text.get("TextStyleSequence"), "TextColorCIELabValue", style.color)
            items.append(
                (
                    style.order,
                    seq_index,
                    TextItem(
                        text=str(text.get("UnformattedTextValue", "")),
                        box=box,
                        box_units=str(text.get("BoundingBoxAnnotationUnits", "PIXEL") or "PIXEL").upper(),
                        anchor=anchor,
                        anchor_units=str(text.get("AnchorPointAnnotationUnits", "PIXEL") or "PIXEL").upper(),
                        anchor_visible=str(text.get("AnchorPointVisibility", "N") or "N").upper() == "Y",
                        justification=str(text.get("BoundingBoxTextHorizontalJustification", "LEFT") or "LEFT")
                        .strip()
                        .upper(),
                        layer=layer_name,
                        color=color,
                        grey=style.grey,
                    ),
                )
            )
        for graphic in ann.get("GraphicObjectSequence", []) or []:
            kind = str(graphic.get("GraphicType", "POLYLINE")).strip().upper()
            if kind not in GRAPHIC_TYPES:
                log.warning("skipping unknown graphic type %s", kind)
                continue
            data = [float(v) for v in _multi(graphic.get("GraphicData"))]
            points = tuple((data[i], data[i + 1]) for i in range(0, len(data) - 1, 2))
            color = _style_color(graphic.get("LineStyleSequence"), "PatternOnColorCIELabValue", style.color)
            items.append(
                (
                    style.order,
                    seq_index,
                    GraphicItem(
                        kind=kind,
                        points=points,
                        units=str(graphic.get("GraphicAnnotationUnits", "PIXEL") or "PIXEL").upper(),
                        filled=str(graphic.get("GraphicFilled", "N") or "N").upper() == "Y",
                        layer=layer_name,
                        color=color,
                        grey=style.grey,
                    ),
                )
            )
    items.sort(key=lambda t: (t[0], t[1]))
    return [item for _, _, item in items]


def _style_color(seq, keyword: str, default: RGB) -> RGB:
    if seq:
        lab = seq[0].get(keyword)
        if lab is not None and len(_multi(lab)) >= 3:
            return cielab_to_rgb(_multi(lab))
    return default


# ----------------------------------------------------------------------------- applying
def _source(image: ImageSource | str | Path) -> ImageSource:
    return image if isinstance(image, ImageSource) else ImageSource(image)


def modality_can_be_negative(lut_header: Dataset) -> bool:
    """Whether the modality output can be negative: then a VOI LUT's first mapped value is signed.

    PS3.3 C.11.2.1.1: the first value of a VOI LUT Descriptor is signed (SS) when the modality output range
    includes negative values, which is a property of the Modality LUT stage (a CT with Rescale Intercept −1024
    stored unsigned), not of the image's Pixel Representation.
    """
    return modality_output_range(lut_header)[0] < 0


def state_voi(ps: Dataset, header: Dataset, uid: str, frame_index: int) -> Window | LutData | None:
    """The state's Softcopy VOI for this image/frame, with the LUT descriptor's sign as C.11.2.1.1 says."""
    return softcopy_voi(ps, uid, frame_index, signed=modality_can_be_negative(modality_header(ps, header)))


def grayscale_lut(
    ps: Dataset,
    header: Dataset,
    uid: str,
    frame_index: int,
    *,
    voi: Window | LutData | None = None,
    invert: bool = False,
    output_bits: int = 8,
) -> DisplayLut:
    """The state's modality → VOI → presentation LUT as one table; `voi` (the user's) replaces the state's.

    `invert` is the user's inversion on top of the state's presentation LUT.
    """
    lut_header = modality_header(ps, header)
    if voi is None:
        voi = state_voi(ps, header, uid, frame_index)
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    shape, plut = presentation_lut(ps, photometric)
    lo, hi = stored_value_range(lut_header)
    values = modality_lut(np.arange(lo, hi + 1, dtype=np.int64), lut_header)
    normalised = apply_voi(values, voi, (float(values.min()), float(values.max())))
    if plut is not None:
        # Truncating the index (not rounding) is what DCMTK does; the standard leaves it open.
        n = len(plut.data)
        index = np.clip(np.floor(normalised * (n - 1)).astype(np.int64), 0, n - 1)
        normalised = plut.data[index] / float((1 << plut.bits) - 1)
    elif shape == "INVERSE":
        normalised = 1.0 - normalised
    inverted = (shape == "INVERSE") != bool(invert)
    if invert:
        normalised = 1.0 - normalised
    out_max = (1 << output_bits) - 1
    dtype = np.uint8 if output_bits <= 8 else np.uint16
    table = np.rint(np.clip(normalised, 0.0, 1.0) * out_max).astype(dtype)
    return DisplayLut(table, lo, output_bits, voi, inverted)


def render_grayscale(ps: Dataset, source: ImageSource, frame_index: int) -> np.ndarray:
    """Stored frame → P-values as 8-bit grey through the state's modality/VOI/presentation LUTs."""
    header = source.frame_header(frame_index)
    uid = str(header.get("SOPInstanceUID", ""))
    return apply_lut(source.frame(frame_index), grayscale_lut(ps, header, uid, frame_index))


def voi_normalised_lut(
    ps_or_item: Dataset, header: Dataset, uid: str, frame_index: int, *, voi: Window | LutData | None = None
) -> DisplayLut:
    """Modality → VOI only, as a 16-bit table (the input of a pseudo-colour palette)."""
    if voi is None:
        voi = state_voi(ps_or_item, header, uid, frame_index)
    return build_display_lut(
        modality_header(ps_or_item, header), voi, output_bits=16, presentation_shape="IDENTITY", apply_padding=False
    )


def _voi_normalised(ps_or_item: Dataset, ps: Dataset, source: ImageSource, frame_index: int) -> np.ndarray:
    """Modality → VOI only, as floats 0..1 (the input of a pseudo-colour palette)."""
    header = source.frame_header(frame_index)
    uid = str(header.get("SOPInstanceUID", ""))
    lut = voi_normalised_lut(ps_or_item, header, uid, frame_index)
    return apply_lut(source.frame(frame_index), lut).astype(np.float64) / 65535.0


def pseudo_color_table(
    ps: Dataset, header: Dataset, uid: str, frame_index: int, *, voi: Window | LutData | None = None
) -> DisplayLut:
    """Stored value → RGB through the state's modality/VOI and Palette Color LUT: a (N, 3) uint8 table.

    Indexing this table with a stored frame gives exactly ``palette_rgb(ps, voi-normalised frame)``: the
    palette is evaluated once per stored value instead of once per pixel.
    """
    voi_lut = voi_normalised_lut(ps, header, uid, frame_index, voi=voi)
    rgb = palette_rgb(ps, voi_lut.table.astype(np.float64) / 65535.0)
    return DisplayLut(np.ascontiguousarray(rgb.reshape(-1, 3)), voi_lut.first_stored, 8, voi_lut.voi, False)


def apply_rgb_table(frame: np.ndarray, table: DisplayLut) -> np.ndarray:
    """Index an (N, 3) table (see `pseudo_color_table`) with a stored frame → H×W×3 uint8."""
    patterns = table.pattern_table()
    if frame.dtype in (np.uint16, np.int16) and len(patterns) == 65536:
        return patterns[frame.view(np.uint16)]
    if frame.dtype in (np.uint8, np.int8) and len(patterns) == 256:
        return patterns[frame.view(np.uint8)]
    idx = np.clip(frame.astype(np.int64) - table.first_stored, 0, len(table.table) - 1)
    return table.table[idx]


def palette_rgb(ps: Dataset, normalised: np.ndarray) -> np.ndarray:
    """Index the state's Palette Color LUT with 0..1 values → H×W×3 uint8."""
    from pydicom.pixels import apply_color_lut

    desc = _multi(ps.RedPaletteColorLookupTableDescriptor)
    n = int(desc[0]) or 65536
    first = int(desc[1])
    index = (np.rint(normalised * (n - 1)) + first).astype(np.uint16)
    rgb = apply_color_lut(index, ps)
    if rgb.dtype != np.uint8:
        bits = int(desc[2]) if len(desc) > 2 else 16
        rgb = (rgb.astype(np.float64) * 255.0 / ((1 << bits) - 1)).round().clip(0, 255).astype(np.uint8)
    return rgb


def _to_uint8_rgb(frame: np.ndarray, bits_stored: int) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    return (frame.astype(np.float64) * 255.0 / ((1 << bits_stored) - 1)).round().clip(0, 255).astype(np.uint8)


def apply_icc(rgb: np.ndarray, icc_profile: bytes) -> tuple[np.ndarray, bool]:
    """Convert from the profile's colour space to sRGB (littlecms via Pillow); unchanged if that fails."""
    try:
        from PIL import Image, ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        dst = ImageCms.createProfile("sRGB")
        transform = ImageCms.buildTransform(src, dst, "RGB", "RGB")
        out = ImageCms.applyTransform(Image.fromarray(rgb, "RGB"), transform)
        return np.asarray(out), True
    except Exception as exc:  # a broken profile must not stop the image being shown
        log.warning("ICC profile not applied: %s", exc)
        return rgb, False


@dataclass
class StateBitmap:
    """One frame through a presentation state, in image orientation (before the spatial transformation)."""

    bitmap: np.ndarray
    lut: DisplayLut | None  # the table that made it (grey: P-values; pseudo-colour: (N, 3) RGB)
    icc_applied: bool = False


def presentation_bitmap(
    ps: Dataset,
    source: ImageSource,
    frame_index: int = 0,
    *,
    stored: np.ndarray | None = None,
    voi: Window | LutData | None = None,
    invert: bool = False,
    show_overlays: bool = True,
    show_shutters: bool = True,
    output_bits: int = 8,
    apply_icc_profile: bool = True,
    lut: DisplayLut | None = None,
) -> StateBitmap:
    """The LUT stages, activated overlays and shutters of a grayscale, colour or pseudo-colour state.

    `voi` (the user's) replaces the state's Softcopy VOI, `invert` inverts on top; `stored` passes an already
    decoded frame and `lut` an already built table (from `grayscale_lut` / `pseudo_color_table`) for speed.
    `output_bits` 12 or 16 gives uint16 grey P-values (film); colour is always 8 bits.
    """
    kind = ps_kind(ps)
    if kind is StateKind.BLENDING:
        raise PresentationStateError("a blending state needs two images: use apply_blending")
    header = source.frame_header(frame_index)
    uid = str(header.get("SOPInstanceUID", ""))
    frame = stored if stored is not None else source.frame(frame_index)
    icc_applied = False
    out_max = 255
    if kind is StateKind.GRAYSCALE:
        if source.is_color:
            raise PresentationStateError("a grayscale presentation state cannot be applied to a colour image")
        if lut is None:
            lut = grayscale_lut(ps, header, uid, frame_index, voi=voi, invert=invert, output_bits=output_bits)
        bitmap: np.ndarray = apply_lut(frame, lut)
        out_max = lut.max_output
    elif kind is StateKind.PSEUDO_COLOR:
        if lut is None:
            lut = pseudo_color_table(ps, header, uid, frame_index, voi=voi)
        bitmap = apply_rgb_table(frame, lut)
        if invert:
            bitmap = 255 - bitmap
    else:
        lut = None
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        bitmap = _to_uint8_rgb(frame, source.bits_stored)
        icc = ps.get("ICCProfile")
        if icc and apply_icc_profile:
            bitmap, icc_applied = apply_icc(np.ascontiguousarray(bitmap), bytes(icc))
        bitmap = 255 - bitmap if invert else np.array(bitmap)

    layers = graphic_layers(ps)
    if show_overlays:
        for group, layer in activated_overlays(ps):
            plane = overlay_plane(ps, source, group, frame_index)
            if plane is None:
                continue
            style = layers.get(layer)
            if bitmap.ndim == 2:
                grey = style.grey if style and style.grey is not None else 0xFFFF
                bitmap = bitmap if bitmap.flags.writeable and bitmap is not frame else bitmap.copy()
                bitmap[plane] = round(max(0, min(int(grey), 0xFFFF)) * out_max / 0xFFFF)
            else:
                bitmap[plane] = style.color if style else (255, 255, 255)

    shutter = shutter_mask(ps, source, frame_index) if show_shutters else None
    if shutter is not None:
        grey, rgb = shutter_color(ps)
        if bitmap.ndim == 2 and "ShutterPresentationColorCIELabValue" in ps and kind is not StateKind.GRAYSCALE:
            bitmap = np.repeat(bitmap[:, :, None], 3, axis=2)
        if bitmap.ndim == 2 and out_max != 255:
            grey = round(grey * out_max / 255)
        bitmap[shutter] = grey if bitmap.ndim == 2 else rgb
    return StateBitmap(bitmap, lut, icc_applied)


def layer_order(ps: Dataset) -> tuple[str, ...]:
    layers = graphic_layers(ps)
    return tuple(name for name, _ in sorted(((n, s.order) for n, s in layers.items()), key=lambda t: t[1]))


def apply_presentation_state(
    ps: Dataset, image: ImageSource | str | Path, frame_index: int = 0, *, apply_icc_profile: bool = True
) -> DisplayList:
    """Render one frame of `image` under a grayscale, colour or pseudo-colour presentation state."""
    source = _source(image)
    header = source.frame_header(frame_index)
    uid = str(header.get("SOPInstanceUID", ""))
    rows, cols = source.rows, source.columns
    made = presentation_bitmap(ps, source, frame_index, apply_icc_profile=apply_icc_profile)
    rotation, flip = rotation_and_flip(ps)
    spatial = SpatialTransform(cols, rows, rotation, flip)
    return DisplayList(
        bitmap=spatial.apply_to_array(made.bitmap),
        spatial=spatial,
        area=displayed_area(ps, uid, frame_index, cols, rows),
        items=annotations(ps, uid, frame_index),
        layer_order=layer_order(ps),
        description=str(ps.get("ContentLabel", "")),
        icc_applied=made.icc_applied,
        image_bitmap=made.bitmap,
        lut=made.lut,
    )


def blending_items(ps: Dataset) -> tuple[Dataset, Dataset]:
    """(underlying, superimposed) Blending Sequence items."""
    items = list(ps.get("BlendingSequence", []) or [])
    if len(items) != 2:
        raise PresentationStateError("a blending state needs exactly two Blending Sequence items")
    by_position = {str(i.get("BlendingPosition", "")).upper(): i for i in items}
    return by_position.get("UNDERLYING", items[0]), by_position.get("SUPERIMPOSED", items[1])


def blending_sources(ps: Dataset) -> tuple[list[str], list[str]]:
    """SOP Instance UIDs of the (underlying, superimposed) images the blending state names."""
    out: list[list[str]] = []
    for item in blending_items(ps):
        uids = [
            str(ref.ReferencedSOPInstanceUID)
            for series in item.get("ReferencedSeriesSequence", []) or []
            for ref in series.get("ReferencedImageSequence", []) or []
        ]
        out.append(uids)
    return out[0], out[1]


def blending_bitmap(
    ps: Dataset,
    underlying: ImageSource | str | Path,
    superimposed: ImageSource | str | Path,
    underlying_frame: int = 0,
    superimposed_frame: int = 0,
) -> np.ndarray:
    """The blended RGB frame in the underlying image's orientation (before the spatial transformation)."""
    under_src, over_src = _source(underlying), _source(superimposed)
    under_item, over_item = blending_items(ps)
    under = _voi_normalised(under_item, ps, under_src, underlying_frame)
    over = _voi_normalised(over_item, ps, over_src, superimposed_frame)
    if over.shape != under.shape:
        rows = (np.arange(under.shape[0]) * over.shape[0] // under.shape[0]).astype(np.int64)
        cols = (np.arange(under.shape[1]) * over.shape[1] // under.shape[1]).astype(np.int64)
        over = over[rows[:, None], cols[None, :]]
    grey = np.repeat((under * 255.0)[:, :, None], 3, axis=2)
    if "RedPaletteColorLookupTableDescriptor" in ps:
        color = palette_rgb(ps, over).astype(np.float64)
    else:
        color = np.repeat((over * 255.0)[:, :, None], 3, axis=2)
    opacity = float(ps.get("RelativeOpacity", 0.5) or 0.5)
    return np.rint((1.0 - opacity) * grey + opacity * color).clip(0, 255).astype(np.uint8)


def apply_blending(
    ps: Dataset,
    underlying: ImageSource | str | Path,
    superimposed: ImageSource | str | Path,
    underlying_frame: int = 0,
    superimposed_frame: int = 0,
) -> DisplayList:
    """Blend a grey underlying image (e.g. CT) with a palette-coloured superimposed one (e.g. PET)."""
    under_src = _source(underlying)
    bitmap = blending_bitmap(ps, under_src, superimposed, underlying_frame, superimposed_frame)
    uid = str(under_src.header.get("SOPInstanceUID", ""))
    rows, cols = under_src.rows, under_src.columns
    rotation, flip = rotation_and_flip(ps)
    spatial = SpatialTransform(cols, rows, rotation, flip)
    return DisplayList(
        bitmap=spatial.apply_to_array(bitmap),
        spatial=spatial,
        area=displayed_area(ps, uid, underlying_frame, cols, rows),
        items=annotations(ps, uid, underlying_frame),
        description=str(ps.get("ContentLabel", "")),
        image_bitmap=bitmap,
    )


def default_display_list(image: ImageSource | str | Path, frame_index: int = 0) -> DisplayList:
    """The display list with no presentation state: the image's own first window, no annotations."""
    source = _source(image)
    header = source.frame_header(frame_index)
    ps = Dataset()
    if "RescaleSlope" in header or "RescaleIntercept" in header:
        ps.RescaleSlope = header.get("RescaleSlope", 1)
        ps.RescaleIntercept = header.get("RescaleIntercept", 0)
    if "ModalityLUTSequence" in header:
        ps.ModalityLUTSequence = header.ModalityLUTSequence
    centers, widths = _multi(header.get("WindowCenter")), _multi(header.get("WindowWidth"))
    if centers and widths:
        item = Dataset()
        item.WindowCenter, item.WindowWidth = centers[0], widths[0]
        ps.SoftcopyVOILUTSequence = [item]
    ps.SOPClassUID = COLOR_PS if source.is_color else GRAYSCALE_PS
    return apply_presentation_state(ps, source, frame_index)
