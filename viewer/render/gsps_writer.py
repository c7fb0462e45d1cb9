"""Saving the user's annotations as a standard Grayscale Softcopy Presentation State (no Qt, no private tags).

API
---
``GspsContent`` – what goes in: the annotations (`displaylist.GraphicItem` / `TextItem`, PIXEL or DISPLAY
    units), the window, rotation/flip, label/description/creator, and the layer name and colour.
``build_gsps(images, content) -> Dataset`` – the presentation state for one or more image datasets (headers
    suffice) of one study; every annotation applies to every referenced image unless `per_image` names
    the SOP Instance UID it belongs to.
``save_gsps(store, images, content) -> AddResult`` – build and add to the store.
``send_gsps(ds, node, local=None)`` – C-STORE to a remote node (the PACS) over one pynetdicom association;
    returns the DIMSE status.
``items_from_measurements(pairs)`` – the viewer's measurements with their labels, as GSPS items.

The object passes DCMTK `dcmpschk` (tests/render/test_gsps_roundtrip.py).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian

from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, new_uid
from viewer.render.displaylist import RGB, GraphicItem, Item, TextItem

GRAYSCALE_PS = "1.2.840.10008.5.1.4.1.1.11.1"
CLOSED_TYPES = ("CIRCLE", "ELLIPSE")


@dataclass
class GspsContent:
    items: list[Item] = field(default_factory=list)
    per_image: dict[str, list[Item]] = field(default_factory=dict)  # SOP Instance UID → its own items
    window_center: float | None = None
    window_width: float | None = None
    rotation: int = 0
    flip: bool = False
    invert: bool = False
    label: str = "LIGHTBOX"
    description: str = "Annotations"
    creator: str = ""
    layer: str = "ANNOTATIONS"
    layer_color: RGB = (255, 255, 0)
    layer_grey: int = 0xFFFF
    series_number: int = 9001
    instance_number: int = 1


def content_label(text: str) -> str:
    """A valid Content Label (CS, 16 chars, upper case letters, digits, space and underscore)."""
    cleaned = re.sub(r"[^A-Z0-9 _]", "_", text.upper()).strip()[:16]
    return cleaned or "LIGHTBOX"


def _fits_latin1(*texts: str) -> bool:
    try:
        for t in texts:
            t.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _copy(src: Dataset, dst: Dataset, keywords: Iterable[str]) -> None:
    for kw in keywords:
        if kw in src:
            dst[kw] = src[kw]
        else:
            setattr(dst, kw, "")


def _text_object(item: TextItem) -> Dataset:
    t = Dataset()
    if item.box is not None:
        t.BoundingBoxAnnotationUnits = item.box_units.upper()
    if item.anchor is not None:
        t.AnchorPointAnnotationUnits = item.anchor_units.upper()
    t.UnformattedTextValue = item.text[:1024]
    if item.box is not None:
        (x0, y0), (x1, y1) = item.box
        t.BoundingBoxTopLeftHandCorner = [float(x0), float(y0)]
        t.BoundingBoxBottomRightHandCorner = [float(x1), float(y1)]
        t.BoundingBoxTextHorizontalJustification = item.justification.upper()
    if item.anchor is not None:
        t.AnchorPoint = [float(item.anchor[0]), float(item.anchor[1])]
        t.AnchorPointVisibility = "Y" if item.anchor_visible else "N"
    return t


def _graphic_object(item: GraphicItem) -> Dataset:
    g = Dataset()
    g.GraphicAnnotationUnits = item.units.upper()
    g.GraphicDimensions = 2
    g.NumberOfGraphicPoints = len(item.points)
    g.GraphicData = [float(v) for p in item.points for v in p]
    g.GraphicType = item.kind.upper()
    kind = item.kind.upper()
    closed = kind in CLOSED_TYPES or (len(item.points) > 2 and tuple(item.points[0]) == tuple(item.points[-1]))
    if closed:
        g.GraphicFilled = "Y" if item.filled else "N"
    return g


def _annotation(layer: str, items: Sequence[Item], refs: Sequence[Dataset] | None) -> Dataset | None:
    texts = [_text_object(i) for i in items if isinstance(i, TextItem)]
    graphics = [_graphic_object(i) for i in items if isinstance(i, GraphicItem)]
    if not texts and not graphics:
        return None
    ann = Dataset()
    if refs:
        ann.ReferencedImageSequence = DicomSequence(list(refs))
    ann.GraphicLayer = layer
    if texts:
        ann.TextObjectSequence = DicomSequence(texts)
    if graphics:
        ann.GraphicObjectSequence = DicomSequence(graphics)
    return ann


def _image_ref(image: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = image.SOPClassUID
    ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return ref


def build_gsps(images: Sequence[Dataset], content: GspsContent, *, now: _dt.datetime | None = None) -> Dataset:
    if not images:
        raise ValueError("a presentation state needs at least one image")
    first = images[0]
    studies = {str(i.StudyInstanceUID) for i in images}
    if len(studies) != 1:
        raise ValueError("all images of a presentation state must belong to one study")
    now = now or _dt.datetime.now()
    texts = [i.text for i in content.items if isinstance(i, TextItem)] + [
        i.text for items in content.per_image.values() for i in items if isinstance(i, TextItem)
    ]
    ds = Dataset()
    ds.SpecificCharacterSet = (
        "ISO_IR 100" if _fits_latin1(*texts, content.description, content.creator) else "ISO_IR 192"
    )
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.SOPClassUID = GRAYSCALE_PS
    ds.SOPInstanceUID = new_uid()
    _copy(first, ds, ("StudyDate", "StudyTime", "AccessionNumber"))
    ds.Modality = "PR"
    ds.Manufacturer = "Lightbox"
    _copy(first, ds, ("ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate", "PatientSex"))
    ds.StudyInstanceUID = first.StudyInstanceUID
    ds.SeriesInstanceUID = new_uid()
    _copy(first, ds, ("StudyID",))
    ds.SeriesNumber = content.series_number
    ds.InstanceNumber = content.instance_number

    by_series: dict[str, list[Dataset]] = {}
    for image in images:
        by_series.setdefault(str(image.SeriesInstanceUID), []).append(_image_ref(image))
    series_items = []
    for series_uid, refs in by_series.items():
        item = Dataset()
        item.ReferencedImageSequence = DicomSequence(refs)
        item.SeriesInstanceUID = series_uid
        series_items.append(item)
    ds.ReferencedSeriesSequence = DicomSequence(series_items)

    # Modality LUT: carry the image's rescale so the VOI window stays in the same (e.g. HU) units.
    if "RescaleSlope" in first or "RescaleIntercept" in first:
        ds.RescaleIntercept = first.get("RescaleIntercept", 0)
        ds.RescaleSlope = first.get("RescaleSlope", 1)
        ds.RescaleType = "HU" if str(first.get("Modality", "")) == "CT" else "US"

    if content.window_center is not None and content.window_width is not None:
        voi = Dataset()
        voi.WindowCenter = float(content.window_center)
        voi.WindowWidth = max(float(content.window_width), 1.0)
        ds.SoftcopyVOILUTSequence = DicomSequence([voi])

    area_items = []
    for image in images:
        area = Dataset()
        area.ReferencedImageSequence = DicomSequence([_image_ref(image)])
        area.DisplayedAreaTopLeftHandCorner = [1, 1]
        area.DisplayedAreaBottomRightHandCorner = [int(image.get("Columns", 1)), int(image.get("Rows", 1))]
        area.PresentationSizeMode = "SCALE TO FIT"
        spacing = image.get("PixelSpacing")
        if spacing is not None and len(spacing) == 2 and float(spacing[0]) > 0 and float(spacing[1]) > 0:
            area.PresentationPixelSpacing = [float(spacing[0]), float(spacing[1])]
        else:
            area.PresentationPixelAspectRatio = [1, 1]
        area_items.append(area)
    ds.DisplayedAreaSelectionSequence = DicomSequence(area_items)

    annotations = []
    shared = _annotation(content.layer, content.items, None)
    if shared is not None:
        annotations.append(shared)
    by_uid = {str(i.SOPInstanceUID): i for i in images}
    for uid, items in content.per_image.items():
        if uid not in by_uid:
            raise ValueError(f"annotations for {uid}, which is not among the referenced images")
        ann = _annotation(content.layer, items, [_image_ref(by_uid[uid])])
        if ann is not None:
            annotations.append(ann)
    if annotations:
        ds.GraphicAnnotationSequence = DicomSequence(annotations)
        from viewer.render.gsps import rgb_to_cielab

        layer = Dataset()
        layer.GraphicLayer = content.layer
        layer.GraphicLayerOrder = 1
        layer.GraphicLayerRecommendedDisplayGrayscaleValue = int(content.layer_grey)
        layer.GraphicLayerRecommendedDisplayCIELabValue = list(rgb_to_cielab(content.layer_color))
        layer.GraphicLayerDescription = "Measurements and text"
        ds.GraphicLayerSequence = DicomSequence([layer])

    ds.ImageRotation = int(content.rotation) % 360
    ds.ImageHorizontalFlip = "Y" if content.flip else "N"
    ds.ContentLabel = content_label(content.label)
    ds.ContentDescription = content.description[:64]
    ds.PresentationCreationDate = now.strftime("%Y%m%d")
    ds.PresentationCreationTime = now.strftime("%H%M%S")
    ds.ContentCreatorName = content.creator
    photometric = str(first.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    inverse = (photometric == "MONOCHROME1") != content.invert
    ds.PresentationLUTShape = "INVERSE" if inverse else "IDENTITY"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    return ds


def save_gsps(store: Any, images: Sequence[Dataset], content: GspsContent) -> Any:
    """Build the state and add it to the store (returns the store's AddResult)."""
    ds = build_gsps(images, content)
    return store.add_dataset(ds, source="lightbox:gsps")


def send_gsps(ds: Dataset, node: Any, local: Any = None) -> int:
    """C-STORE the state to `node` (a settings.RemoteNode); returns the DIMSE status (0 = success).

    viewer.net.scu has no C-STORE SCU yet, so this opens one pynetdicom association itself (no TLS).
    """
    from pynetdicom import AE

    ae = AE(ae_title=getattr(local, "ae_title", "LIGHTBOX") if local else "LIGHTBOX")
    ae.add_requested_context(GRAYSCALE_PS, ExplicitVRLittleEndian)
    assoc = ae.associate(node.host, int(node.port), ae_title=node.ae_title)
    if not assoc.is_established:
        raise ConnectionError(f"{node.ae_title} at {node.host}:{node.port} did not accept the association")
    try:
        status = assoc.send_c_store(ds)
        return int(status.Status) if status is not None and "Status" in status else -1
    finally:
        assoc.release()


def items_from_measurements(measurements: Iterable[tuple[Any, str]]) -> list[Item]:
    """The viewer's measurements (`viewer.render.measure`), each with its shown label, as GSPS items.

    Points are image pixel coordinates with 0,0 at the top-left corner of the first pixel, which is what
    GSPS PIXEL units mean, so they are written unchanged.
    """
    from viewer.render.measure import Angle, Distance, EllipseRoi, RectangleRoi

    out: list[Item] = []
    for measurement, label in measurements:
        if isinstance(measurement, Distance):
            points = (measurement.p0, measurement.p1)
            graphic = GraphicItem("POLYLINE", _floats(points), "PIXEL")
        elif isinstance(measurement, Angle):
            points = (measurement.p0, measurement.vertex, measurement.p1)
            graphic = GraphicItem("POLYLINE", _floats(points), "PIXEL")
        elif isinstance(measurement, EllipseRoi):
            (cx, cy), (rx, ry) = measurement.center, measurement.radii
            horizontal = ((cx - rx, cy), (cx + rx, cy))
            vertical = ((cx, cy - ry), (cx, cy + ry))
            points = (*horizontal, *vertical) if rx >= ry else (*vertical, *horizontal)  # major axis first
            graphic = GraphicItem("ELLIPSE", _floats(points), "PIXEL")
        elif isinstance(measurement, RectangleRoi):
            x0, y0, x1, y1 = measurement.bounds()
            points = ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))  # closed: first point repeated
            graphic = GraphicItem("POLYLINE", _floats(points), "PIXEL")
        else:
            raise TypeError(f"no GSPS form for {type(measurement).__name__}")
        out.append(graphic)
        if label:
            anchor = graphic.points[1] if isinstance(measurement, Angle) else graphic.points[-1]
            out.append(TextItem(label, anchor=anchor, anchor_units="PIXEL", anchor_visible=True))
    return out


def _floats(points: Iterable[Any]) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in points)
