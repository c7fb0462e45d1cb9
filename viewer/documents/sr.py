"""DICOM Structured Report documents as a plain content tree, plus text and HTML renderings.

Covers every SR storage class the workstation displays (Basic Text, Enhanced, Comprehensive, Comprehensive 3D,
Key Object Selection, Mammography/Chest CAD, X-Ray Radiation Dose, Procedure Log, and template-based documents
such as TID 1500 measurement reports and TID 5100/5200 ultrasound measurements, which are Comprehensive or
Enhanced SRs). Parsing is tolerant: a malformed item becomes an item with a `problem` string instead of
aborting the document, because a radiologist would rather read a slightly broken report than none.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

SR_CLASS_NAMES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
    "1.2.840.10008.5.1.4.1.1.88.40": "Procedure Log",
    "1.2.840.10008.5.1.4.1.1.88.50": "Mammography CAD SR",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection Document",
    "1.2.840.10008.5.1.4.1.1.88.65": "Chest CAD SR",
    "1.2.840.10008.5.1.4.1.1.88.67": "X-Ray Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.68": "Radiopharmaceutical Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.69": "Colon CAD SR",
    "1.2.840.10008.5.1.4.1.1.88.70": "Implantation Plan SR",
    "1.2.840.10008.5.1.4.1.1.88.71": "Acquisition Context SR",
    "1.2.840.10008.5.1.4.1.1.88.72": "Simplified Adult Echo SR",
    "1.2.840.10008.5.1.4.1.1.88.73": "Patient Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.76": "Enhanced X-Ray Radiation Dose SR",
}

# Root templates that change how a document is presented (title, measurement tables).
TEMPLATE_NAMES: dict[str, str] = {
    "1500": "Measurement Report (TID 1500)",
    "2000": "Basic Diagnostic Imaging Report (TID 2000)",
    "2010": "Key Object Selection (TID 2010)",
    "3001": "Procedure Log (TID 3001)",
    "4000": "Mammography CAD Document Root (TID 4000)",
    "4100": "Chest CAD Document Root (TID 4100)",
    "5100": "Vascular Ultrasound Report (TID 5100)",
    "5200": "Echocardiography Procedure Report (TID 5200)",
    "10001": "Projection X-Ray Radiation Dose (TID 10001)",
    "10011": "CT Radiation Dose (TID 10011)",
}

# Root concept codes (Value, Scheme) naming the same documents when no template identifier is encoded.
ROOT_CONCEPT_TEMPLATES: dict[tuple[str, str], str] = {
    ("126000", "DCM"): "1500",
    ("113701", "DCM"): "10001",
    ("111036", "DCM"): "4000",
    ("112000", "DCM"): "4100",
    ("125100", "DCM"): "5100",
    ("125200", "DCM"): "5200",
    ("121145", "DCM"): "3001",
}

RELATIONSHIP_LABELS: dict[str, str] = {
    "CONTAINS": "contains",
    "HAS PROPERTIES": "has properties",
    "INFERRED FROM": "inferred from",
    "HAS OBS CONTEXT": "has obs context",
    "HAS ACQ CONTEXT": "has acq context",
    "HAS CONCEPT MOD": "has concept mod",
    "SELECTED FROM": "selected from",
}

VALUE_TYPES = (
    "CONTAINER",
    "TEXT",
    "CODE",
    "NUM",
    "DATE",
    "TIME",
    "DATETIME",
    "PNAME",
    "UIDREF",
    "COMPOSITE",
    "IMAGE",
    "WAVEFORM",
    "SCOORD",
    "SCOORD3D",
    "TCOORD",
)
# Value types whose value is a single string attribute.
_STRING_VALUE_ATTRIBUTES = {
    "TEXT": "TextValue",
    "DATE": "Date",
    "TIME": "Time",
    "DATETIME": "DateTime",
    "PNAME": "PersonName",
    "UIDREF": "UID",
}


class SRError(ValueError):
    """The object is not a structured report this module can read; the message is meant for the user."""


@dataclass(frozen=True)
class Code:
    value: str
    scheme: str
    meaning: str
    scheme_version: str = ""

    def __str__(self) -> str:
        return self.meaning or f"({self.value}, {self.scheme})"


@dataclass(frozen=True)
class Measurement:
    """The value of a NUM item; `value` is the Numeric Value string exactly as encoded."""

    value: str = ""
    unit: Code | None = None
    qualifier: Code | None = None
    floating_point: float | None = None
    rational: tuple[int, int] | None = None

    @property
    def number(self) -> float | None:
        if self.floating_point is not None:
            return self.floating_point
        try:
            return float(self.value)
        except ValueError:
            return None

    def __str__(self) -> str:
        if not self.value and self.qualifier is not None:
            return str(self.qualifier)
        unit = ""
        if self.unit is not None:
            # UCUM "1" means unitless; showing it would read like a count.
            unit = "" if self.unit.value == "1" and self.unit.scheme == "UCUM" else f" {_unit_label(self.unit)}"
        text = f"{self.value}{unit}".strip()
        if self.qualifier is not None:
            text += f" ({self.qualifier})"
        return text


def _unit_label(unit: Code) -> str:
    # Unit code values are the compact symbols radiologists read ("mm", "mGy"); meanings are long.
    return unit.value or unit.meaning


@dataclass(frozen=True)
class Reference:
    """A referenced SOP instance (COMPOSITE, IMAGE or WAVEFORM value)."""

    sop_class_uid: str
    sop_instance_uid: str
    frames: tuple[int, ...] = ()
    segments: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()  # waveform channel pairs, flattened (M1, C1, M2, C2, ...)
    presentation_state: Reference | None = None


@dataclass(frozen=True)
class SpatialCoordinates:
    """SCOORD (2D, image pixel space) or SCOORD3D (patient space in a frame of reference)."""

    graphic_type: str
    data: tuple[float, ...]
    dimensions: int = 2
    frame_of_reference_uid: str = ""
    pixel_origin_interpretation: str = ""
    fiducial_uid: str = ""

    @property
    def points(self) -> tuple[tuple[float, ...], ...]:
        n = self.dimensions
        return tuple(tuple(self.data[i : i + n]) for i in range(0, len(self.data) - n + 1, n))


@dataclass(frozen=True)
class TemporalCoordinates:
    range_type: str
    sample_positions: tuple[int, ...] = ()
    time_offsets: tuple[float, ...] = ()
    datetimes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageRegion:
    """A region to mark on an image when the viewer opens it from a report link."""

    graphic_type: str
    points: tuple[tuple[float, float], ...]
    pixel_origin_interpretation: str = ""


@dataclass(frozen=True)
class ImageLink:
    """Where an IMAGE or SCOORD item points: what the main window opens, and what it marks."""

    sop_instance_uid: str
    sop_class_uid: str
    frame: int = 0  # 1-based, 0 = whole image / first frame
    region: ImageRegion | None = None


@dataclass
class ContentItem:
    position: str  # DCMTK-style position: "1", "1.2", "1.2.3"
    relationship: str  # "" for the root
    value_type: str
    concept: Code | None = None
    children: list[ContentItem] = field(default_factory=list)
    observation_datetime: str = ""
    observation_uid: str = ""
    template: str = ""  # "DCMR 1500" style, from the Content Template Sequence
    # By-reference relationship: the item's target position ("1.2.2.1"); value_type is then "" .
    referenced_position: str = ""
    text: str = ""  # TEXT, DATE, TIME, DATETIME, PNAME, UIDREF
    code: Code | None = None
    measurement: Measurement | None = None
    continuity: str = ""  # CONTAINER: SEPARATE or CONTINUOUS
    references: tuple[Reference, ...] = ()
    scoord: SpatialCoordinates | None = None
    tcoord: TemporalCoordinates | None = None
    problem: str = ""

    @property
    def is_by_reference(self) -> bool:
        return bool(self.referenced_position)

    @property
    def concept_name(self) -> str:
        return str(self.concept) if self.concept else ""

    @property
    def depth(self) -> int:
        return self.position.count(".")

    def walk(self) -> Iterator[ContentItem]:
        yield self
        for child in self.children:
            yield from child.walk()

    def display_value(self) -> str:
        """The item's value as a reader sees it (no concept name)."""
        vt = self.value_type
        if self.is_by_reference:
            return f"(see item {self.referenced_position})"
        if vt in _STRING_VALUE_ATTRIBUTES:
            return _format_string_value(vt, self.text)
        if vt == "CODE":
            return str(self.code) if self.code else ""
        if vt == "NUM":
            return str(self.measurement) if self.measurement else ""
        if vt == "CONTAINER":
            return ""
        if vt in ("COMPOSITE", "IMAGE", "WAVEFORM"):
            return "; ".join(_describe_reference(vt, ref) for ref in self.references)
        if vt in ("SCOORD", "SCOORD3D") and self.scoord is not None:
            pts = ", ".join("(" + ", ".join(_fmt_float(v) for v in p) + ")" for p in self.scoord.points)
            return f"{self.scoord.graphic_type.title()} {pts}".strip()
        if vt == "TCOORD" and self.tcoord is not None:
            tc = self.tcoord
            if tc.sample_positions:
                values = "samples " + ", ".join(str(v) for v in tc.sample_positions)
            elif tc.time_offsets:
                values = "offsets " + ", ".join(_fmt_float(v) + " s" for v in tc.time_offsets)
            else:
                values = ", ".join(_format_string_value("DATETIME", v) for v in tc.datetimes)
            return f"{tc.range_type.title()} {values}".strip()
        return ""

    def image_link(self) -> ImageLink | None:
        """For IMAGE items, the image; for SCOORD items, the image they are selected from, with the region."""
        if self.value_type == "IMAGE" and self.references:
            ref = self.references[0]
            return ImageLink(ref.sop_instance_uid, ref.sop_class_uid, ref.frames[0] if ref.frames else 0)
        if self.value_type == "SCOORD" and self.scoord is not None:
            source = next((c for c in self.children if c.value_type == "IMAGE" and c.references), None)
            if source is None:
                return None
            ref = source.references[0]
            region = ImageRegion(
                self.scoord.graphic_type,
                tuple((p[0], p[1]) for p in self.scoord.points),
                self.scoord.pixel_origin_interpretation,
            )
            return ImageLink(ref.sop_instance_uid, ref.sop_class_uid, ref.frames[0] if ref.frames else 0, region)
        return None


@dataclass(frozen=True)
class VerifyingObserver:
    name: str
    organization: str
    datetime: str
    code: Code | None = None


@dataclass(frozen=True)
class Observer:
    """An author or participant of the document (observer type PSN or DEV)."""

    role: str
    observer_type: str
    name: str
    institution: str = ""
    datetime: str = ""


@dataclass
class DocumentHeader:
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_uid: str = ""
    study_description: str = ""
    study_date: str = ""
    study_time: str = ""
    study_id: str = ""
    accession_number: str = ""
    referring_physician: str = ""
    series_uid: str = ""
    series_description: str = ""
    series_number: str = ""
    modality: str = ""
    manufacturer: str = ""
    institution: str = ""
    content_date: str = ""
    content_time: str = ""
    instance_creation_date: str = ""
    instance_creation_time: str = ""
    instance_number: str = ""
    completion_flag: str = ""
    completion_description: str = ""
    verification_flag: str = ""
    preliminary_flag: str = ""
    verifying_observers: list[VerifyingObserver] = field(default_factory=list)
    authors: list[Observer] = field(default_factory=list)
    participants: list[Observer] = field(default_factory=list)
    predecessors: list[Reference] = field(default_factory=list)
    evidence: list[Reference] = field(default_factory=list)

    @property
    def content_datetime(self) -> str:
        return _format_string_value("DATETIME", self.content_date + self.content_time)


@dataclass
class SRDocument:
    sop_class_uid: str
    sop_instance_uid: str
    header: DocumentHeader
    root: ContentItem
    warnings: list[str] = field(default_factory=list)

    @property
    def class_name(self) -> str:
        return SR_CLASS_NAMES.get(self.sop_class_uid, "Structured Report")

    @property
    def title(self) -> str:
        return self.root.concept_name or self.class_name

    @property
    def template_id(self) -> str:
        """The root template number ("1500"), from the encoded identifier or the root concept."""
        if self.root.template:
            return self.root.template.split()[-1]
        if self.root.concept is not None:
            return ROOT_CONCEPT_TEMPLATES.get((self.root.concept.value, self.root.concept.scheme), "")
        return ""

    @property
    def template_name(self) -> str:
        tid = self.template_id
        return TEMPLATE_NAMES.get(tid, f"TID {tid}" if tid else "")

    def items(self) -> Iterator[ContentItem]:
        return self.root.walk()

    def item_at(self, position: str) -> ContentItem | None:
        return next((i for i in self.items() if i.position == position), None)

    def image_links(self) -> list[ImageLink]:
        links = []
        for item in self.items():
            link = item.image_link()
            if link is not None:
                links.append(link)
        return links

    def measurements(self) -> list[MeasurementRow]:
        """Every NUM item with the heading of the container it sits in (for tables and exports)."""
        rows: list[MeasurementRow] = []

        def visit(item: ContentItem, heading: str) -> None:
            if item.value_type == "CONTAINER" and item.concept is not None:
                heading = item.concept_name
            if item.value_type == "NUM" and not item.is_by_reference:
                rows.append(measurement_row(item, heading))
            for child in item.children:
                visit(child, heading)

        visit(self.root, self.title)
        return rows


@dataclass(frozen=True)
class MeasurementRow:
    position: str
    section: str
    name: str
    value: str
    unit: str
    qualifier: str
    modifiers: str  # concept modifiers and properties (finding site, laterality, method...) in one line


def is_row_detail(child: ContentItem) -> bool:
    """Children of a NUM that fit in its table row's "details" cell; the others (coordinates, images,
    evidence) are shown after the table so their links stay reachable."""
    return (
        child.relationship in ("HAS CONCEPT MOD", "HAS PROPERTIES", "HAS ACQ CONTEXT")
        and not child.is_by_reference
        and not child.children
        and child.value_type in ("CODE", "TEXT", "NUM", "DATE", "TIME", "DATETIME", "PNAME", "UIDREF")
    )


def measurement_row(item: ContentItem, heading: str) -> MeasurementRow:
    m = item.measurement or Measurement()
    mods = [f"{c.concept_name}: {c.display_value()}" for c in item.children if is_row_detail(c)]
    return MeasurementRow(
        position=item.position,
        section=heading,
        name=item.concept_name,
        value=m.value,
        unit=_unit_label(m.unit) if m.unit else "",
        qualifier=str(m.qualifier) if m.qualifier else "",
        modifiers="; ".join(mods),
    )


# --------------------------------------------------------------------------------------------- parsing
def is_structured_report(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")).startswith("1.2.840.10008.5.1.4.1.1.88.") and "ValueType" in ds


def load_sr(path: Path | str) -> SRDocument:
    """Read and parse an SR file; raises `SRError` with a readable message for anything else."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise SRError(f"cannot read {Path(path).name}: {exc}") from exc
    return sr_from_dataset(ds)


def sr_from_dataset(ds: Dataset) -> SRDocument:
    sop_class = str(ds.get("SOPClassUID", ""))
    if not sop_class.startswith("1.2.840.10008.5.1.4.1.1.88."):
        raise SRError(f"not a structured report (SOP class {sop_class or 'missing'})")
    if str(ds.get("ValueType", "")) != "CONTAINER":
        raise SRError("the report has no root CONTAINER content item")
    warnings: list[str] = []
    root = _parse_item(ds, "1", "", warnings)
    positions = {item.position for item in root.walk()}
    for item in root.walk():
        if item.is_by_reference and item.referenced_position not in positions:
            item.problem = f"refers to item {item.referenced_position}, which is not in the document"
            warnings.append(f"item {item.position}: {item.problem}")
    return SRDocument(
        sop_class_uid=sop_class,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        header=_parse_header(ds),
        root=root,
        warnings=warnings,
    )


def _s(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _code(seq: Any) -> Code | None:
    if not seq:
        return None
    item = seq[0]
    value = _s(item, "CodeValue") or _s(item, "LongCodeValue") or _s(item, "URNCodeValue")
    return Code(
        value=value,
        scheme=_s(item, "CodingSchemeDesignator"),
        meaning=_s(item, "CodeMeaning"),
        scheme_version=_s(item, "CodingSchemeVersion"),
    )


def _ints(value: Any) -> tuple[int, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(int(v) for v in value)
    return (int(value),)


def _floats(value: Any) -> tuple[float, ...]:
    if value is None:
        return ()
    if isinstance(value, (bytes, bytearray)):
        import numpy as np

        return tuple(float(v) for v in np.frombuffer(value, dtype="<f4"))
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(float(v) for v in value)
    return (float(value),)


def _reference(item: Dataset) -> Reference:
    nested = item.get("ReferencedSOPSequence")
    ps = None
    if nested:
        ps = Reference(_s(nested[0], "ReferencedSOPClassUID"), _s(nested[0], "ReferencedSOPInstanceUID"))
    return Reference(
        sop_class_uid=_s(item, "ReferencedSOPClassUID"),
        sop_instance_uid=_s(item, "ReferencedSOPInstanceUID"),
        frames=_ints(item.get("ReferencedFrameNumber")),
        segments=_ints(item.get("ReferencedSegmentNumber")),
        channels=_ints(item.get("ReferencedWaveformChannels")),
        presentation_state=ps,
    )


def _template(ds: Dataset) -> str:
    seq = ds.get("ContentTemplateSequence")
    if not seq:
        return ""
    return f"{_s(seq[0], 'MappingResource')} {_s(seq[0], 'TemplateIdentifier')}".strip()


def _parse_item(ds: Dataset, position: str, relationship: str, warnings: list[str]) -> ContentItem:
    by_ref = ds.get("ReferencedContentItemIdentifier")
    if by_ref is not None and "ValueType" not in ds:
        return ContentItem(
            position=position,
            relationship=relationship,
            value_type="",
            referenced_position=".".join(str(v) for v in _ints(by_ref)),
        )
    vt = _s(ds, "ValueType")
    item = ContentItem(
        position=position,
        relationship=relationship,
        value_type=vt,
        concept=_code(ds.get("ConceptNameCodeSequence")),
        observation_datetime=_s(ds, "ObservationDateTime"),
        observation_uid=_s(ds, "ObservationUID"),
        template=_template(ds),
    )
    try:
        _parse_value(ds, item)
    except Exception as exc:  # one bad value must not hide the rest of the report
        item.problem = f"unreadable {vt} value: {exc}"
        warnings.append(f"item {position}: {item.problem}")
    if vt not in VALUE_TYPES:
        item.problem = f"unknown value type {vt!r}"
        warnings.append(f"item {position}: {item.problem}")
    for index, child in enumerate(ds.get("ContentSequence") or [], start=1):
        rel = _s(child, "RelationshipType")
        item.children.append(_parse_item(child, f"{position}.{index}", rel, warnings))
    return item


def _parse_value(ds: Dataset, item: ContentItem) -> None:
    vt = item.value_type
    if vt in _STRING_VALUE_ATTRIBUTES:
        item.text = _s(ds, _STRING_VALUE_ATTRIBUTES[vt])
    elif vt == "CODE":
        item.code = _code(ds.get("ConceptCodeSequence"))
    elif vt == "CONTAINER":
        item.continuity = _s(ds, "ContinuityOfContent")
    elif vt == "NUM":
        item.measurement = _measurement(ds)
    elif vt in ("COMPOSITE", "IMAGE", "WAVEFORM"):
        item.references = tuple(_reference(r) for r in ds.get("ReferencedSOPSequence") or [])
    elif vt == "SCOORD":
        item.scoord = SpatialCoordinates(
            graphic_type=_s(ds, "GraphicType"),
            data=_floats(ds.get("GraphicData")),
            dimensions=2,
            pixel_origin_interpretation=_s(ds, "PixelOriginInterpretation"),
            fiducial_uid=_s(ds, "FiducialUID"),
        )
    elif vt == "SCOORD3D":
        item.scoord = SpatialCoordinates(
            graphic_type=_s(ds, "GraphicType"),
            data=_floats(ds.get("GraphicData")),
            dimensions=3,
            frame_of_reference_uid=_s(ds, "ReferencedFrameOfReferenceUID"),
            fiducial_uid=_s(ds, "FiducialUID"),
        )
    elif vt == "TCOORD":
        datetimes = ds.get("ReferencedDateTime")
        if isinstance(datetimes, str):
            datetimes = [datetimes]
        item.tcoord = TemporalCoordinates(
            range_type=_s(ds, "TemporalRangeType"),
            sample_positions=_ints(ds.get("ReferencedSamplePositions")),
            time_offsets=_floats(ds.get("ReferencedTimeOffsets")),
            datetimes=tuple(str(v) for v in datetimes or ()),
        )


def _measurement(ds: Dataset) -> Measurement:
    qualifier = _code(ds.get("NumericValueQualifierCodeSequence"))
    seq = ds.get("MeasuredValueSequence")
    if not seq:
        return Measurement(qualifier=qualifier)
    mv = seq[0]
    raw = mv.get("NumericValue")
    # Keep the encoded string (what a reader and DCMTK show), not a re-formatted float.
    value = "" if raw is None else str(getattr(raw, "original_string", None) or raw).strip()
    if qualifier is None:
        qualifier = _code(mv.get("NumericValueQualifierCodeSequence"))
    fp = mv.get("FloatingPointValue")
    numerator = mv.get("RationalNumeratorValue")
    denominator = mv.get("RationalDenominatorValue")
    return Measurement(
        value=value,
        unit=_code(mv.get("MeasurementUnitsCodeSequence")),
        qualifier=qualifier,
        floating_point=float(fp) if fp is not None else None,
        rational=(int(numerator), int(denominator)) if numerator is not None and denominator is not None else None,
    )


def _person(item: Dataset, keyword: str) -> str:
    return _s(item, keyword)


def _parse_header(ds: Dataset) -> DocumentHeader:
    h = DocumentHeader(
        patient_name=_s(ds, "PatientName"),
        patient_id=_s(ds, "PatientID"),
        patient_birth_date=_s(ds, "PatientBirthDate"),
        patient_sex=_s(ds, "PatientSex"),
        study_uid=_s(ds, "StudyInstanceUID"),
        study_description=_s(ds, "StudyDescription"),
        study_date=_s(ds, "StudyDate"),
        study_time=_s(ds, "StudyTime"),
        study_id=_s(ds, "StudyID"),
        accession_number=_s(ds, "AccessionNumber"),
        referring_physician=_s(ds, "ReferringPhysicianName"),
        series_uid=_s(ds, "SeriesInstanceUID"),
        series_description=_s(ds, "SeriesDescription"),
        series_number=_s(ds, "SeriesNumber"),
        modality=_s(ds, "Modality"),
        manufacturer=_s(ds, "Manufacturer"),
        institution=_s(ds, "InstitutionName"),
        content_date=_s(ds, "ContentDate"),
        content_time=_s(ds, "ContentTime"),
        instance_creation_date=_s(ds, "InstanceCreationDate"),
        instance_creation_time=_s(ds, "InstanceCreationTime"),
        instance_number=_s(ds, "InstanceNumber"),
        completion_flag=_s(ds, "CompletionFlag"),
        completion_description=_s(ds, "CompletionFlagDescription"),
        verification_flag=_s(ds, "VerificationFlag"),
        preliminary_flag=_s(ds, "PreliminaryFlag"),
    )
    for vo in ds.get("VerifyingObserverSequence") or []:
        h.verifying_observers.append(
            VerifyingObserver(
                name=_person(vo, "VerifyingObserverName"),
                organization=_s(vo, "VerifyingOrganization"),
                datetime=_s(vo, "VerificationDateTime"),
                code=_code(vo.get("VerifyingObserverIdentificationCodeSequence")),
            )
        )
    for keyword, target, role in (
        ("AuthorObserverSequence", h.authors, "Author"),
        ("ParticipantSequence", h.participants, ""),
    ):
        for obs in ds.get(keyword) or []:
            name = _person(obs, "PersonName") or _s(obs, "ManufacturerModelName") or _s(obs, "DeviceUID")
            institution = _s(obs, "InstitutionName")
            target.append(
                Observer(
                    role=role or _s(obs, "ParticipationType"),
                    observer_type=_s(obs, "ObserverType"),
                    name=name,
                    institution=institution,
                    datetime=_s(obs, "ParticipationDateTime"),
                )
            )
    for keyword, target in (
        ("PredecessorDocumentsSequence", h.predecessors),
        ("CurrentRequestedProcedureEvidenceSequence", h.evidence),
    ):
        for study in ds.get(keyword) or []:
            for series in study.get("ReferencedSeriesSequence") or []:
                for ref in series.get("ReferencedSOPSequence") or []:
                    target.append(_reference(ref))
    return h


# --------------------------------------------------------------------------------------------- formatting
def _fmt_float(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:g}"


def format_date(value: str) -> str:
    value = value.strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def format_time(value: str) -> str:
    value = value.strip()
    main = value.split(".")[0]
    if len(main) >= 4 and main.isdigit():
        parts = [main[0:2], main[2:4]] + ([main[4:6]] if len(main) >= 6 else [])
        return ":".join(parts)
    return value


def _format_string_value(vt: str, value: str) -> str:
    if vt == "DATE":
        return format_date(value)
    if vt == "TIME":
        return format_time(value)
    if vt == "DATETIME":
        value = value.strip()
        core = value.split("+")[0].split("-")[0] if len(value) > 8 else value
        if len(core) >= 8 and core[:8].isdigit():
            date, time = format_date(core[:8]), format_time(core[8:]) if len(core) > 8 else ""
            return f"{date} {time}".strip()
        return value
    if vt == "PNAME":
        return format_person_name(value)
    return value


def format_person_name(value: str) -> str:
    """'Family^Given^Middle^Prefix^Suffix' → 'Prefix Given Middle Family, Suffix' (first component group)."""
    alphabetic = value.split("=")[0]
    parts = (alphabetic.split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (p.strip() for p in parts)
    name = " ".join(p for p in (prefix, given, middle, family) if p)
    return f"{name}, {suffix}" if suffix else name


_SHORT_CLASS_NAMES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR image",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX image",
    "1.2.840.10008.5.1.4.1.1.1.2": "MG image",
    "1.2.840.10008.5.1.4.1.1.2": "CT image",
    "1.2.840.10008.5.1.4.1.1.4": "MR image",
    "1.2.840.10008.5.1.4.1.1.6.1": "US image",
    "1.2.840.10008.5.1.4.1.1.3.1": "US multi-frame image",
    "1.2.840.10008.5.1.4.1.1.7": "SC image",
    "1.2.840.10008.5.1.4.1.1.12.1": "XA image",
    "1.2.840.10008.5.1.4.1.1.20": "NM image",
    "1.2.840.10008.5.1.4.1.1.128": "PET image",
    "1.2.840.10008.5.1.4.1.1.11.1": "GSPS",
    "1.2.840.10008.5.1.4.1.1.104.1": "PDF document",
    "1.2.840.10008.5.1.4.1.1.104.2": "CDA document",
}


def describe_sop_class(uid: str) -> str:
    if uid in _SHORT_CLASS_NAMES:
        return _SHORT_CLASS_NAMES[uid]
    if uid in SR_CLASS_NAMES:
        return SR_CLASS_NAMES[uid]
    try:
        from pydicom.uid import UID

        name = UID(uid).name
        return name if name != uid else uid
    except Exception:
        return uid


def _describe_reference(vt: str, ref: Reference) -> str:
    text = describe_sop_class(ref.sop_class_uid)
    if ref.frames:
        text += " frame " + ", ".join(str(f) for f in ref.frames)
    if ref.segments:
        text += " segment " + ", ".join(str(s) for s in ref.segments)
    if vt == "WAVEFORM" and ref.channels:
        pairs = [f"{ref.channels[i]}/{ref.channels[i + 1]}" for i in range(0, len(ref.channels) - 1, 2)]
        text += " channels " + ", ".join(pairs)
    text += f" [{ref.sop_instance_uid}]"
    if ref.presentation_state is not None:
        text += f" with {describe_sop_class(ref.presentation_state.sop_class_uid)}"
    return text


def header_fields(doc: SRDocument) -> list[tuple[str, str]]:
    """The document header as label/value rows, in reading order."""
    h = doc.header
    rows: list[tuple[str, str]] = [("Document", doc.class_name)]
    if doc.template_name:
        rows.append(("Template", doc.template_name))
    patient = format_person_name(h.patient_name)
    extras = ", ".join(
        x for x in (h.patient_id and f"ID {h.patient_id}", format_date(h.patient_birth_date), h.patient_sex) if x
    )
    rows.append(("Patient", f"{patient} ({extras})" if extras else patient))
    study = h.study_description or h.study_id
    if h.study_date:
        study = f"{study} — {format_date(h.study_date)} {format_time(h.study_time)}".strip(" —")
    rows.append(("Study", study))
    if h.accession_number:
        rows.append(("Accession", h.accession_number))
    if h.referring_physician:
        rows.append(("Referring physician", format_person_name(h.referring_physician)))
    series = h.series_description
    if h.series_number:
        series = f"{series} (#{h.series_number})".strip()
    rows.append(("Series", series))
    if h.manufacturer or h.institution:
        rows.append(("Source", ", ".join(x for x in (h.manufacturer, h.institution) if x)))
    for author in h.authors:
        rows.append(("Author", ", ".join(x for x in (format_person_name(author.name), author.institution) if x)))
    for p in h.participants:
        label = {"ENT": "Data enterer", "ATTEST": "Attestor", "SOURCE": "Source"}.get(p.role, p.role or "Participant")
        rows.append((label, ", ".join(x for x in (format_person_name(p.name), p.institution) if x)))
    if h.completion_flag:
        rows.append(("Completion", " — ".join(x for x in (h.completion_flag, h.completion_description) if x)))
    if h.preliminary_flag:
        rows.append(("Preliminary", h.preliminary_flag))
    if h.verification_flag:
        rows.append(("Verification", h.verification_flag))
    for vo in h.verifying_observers:
        when = _format_string_value("DATETIME", vo.datetime)
        rows.append(("Verified by", ", ".join(x for x in (format_person_name(vo.name), vo.organization, when) if x)))
    if h.content_date:
        rows.append(("Content date", h.content_datetime))
    if h.predecessors:
        rows.append(("Predecessor documents", str(len(h.predecessors))))
    return rows


def item_label(item: ContentItem) -> str:
    """One line for the tree view and the text rendering: 'Concept: value'."""
    if item.is_by_reference:
        return f"item {item.referenced_position}"
    name = item.concept_name
    value = item.display_value()
    if item.problem:
        value = f"{value} [{item.problem}]".strip()
    if name and value:
        return f"{name}: {value}"
    return name or value or item.value_type


def render_text(doc: SRDocument) -> str:
    """The document as plain text: header, then containers as headings and items indented under them."""
    lines = [doc.title, "=" * len(doc.title)]
    for label, value in header_fields(doc):
        lines.append(f"{label + ':':<22} {value}")
    lines.append("")

    def visit(item: ContentItem, level: int) -> None:
        indent = "  " * level
        rel = ""
        if item.relationship and item.relationship != "CONTAINS":
            rel = f"[{RELATIONSHIP_LABELS.get(item.relationship, item.relationship)}] "
        if item.value_type == "CONTAINER" and not item.is_by_reference:
            heading = item.concept_name or "(untitled section)"
            lines.append(f"{indent}{rel}{heading}")
            lines.append(f"{indent}{'-' * len(heading)}")
        else:
            first, *more = item_label(item).splitlines() or [""]
            lines.append(f"{indent}{rel}{first}")
            lines.extend(f"{indent}{' ' * len(rel)}  {part}" for part in more)
        for child in item.children:
            visit(child, level + 1)

    visit(doc.root, 0)
    return "\n".join(lines) + "\n"


def image_href(link: ImageLink) -> str:
    """The anchor the HTML rendering uses for a link into the viewer (parsed back by `parse_image_href`)."""
    href = f"lightbox-image:{link.sop_instance_uid}?frame={link.frame}&class={link.sop_class_uid}"
    if link.region is not None:
        pts = ";".join(f"{x:g},{y:g}" for x, y in link.region.points)
        href += f"&type={link.region.graphic_type}&points={pts}"
        if link.region.pixel_origin_interpretation:
            href += f"&origin={link.region.pixel_origin_interpretation}"
    return href


def parse_image_href(href: str) -> ImageLink | None:
    if not href.startswith("lightbox-image:"):
        return None
    body = href[len("lightbox-image:") :]
    uid, _, query = body.partition("?")
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    region = None
    if params.get("type"):
        points = []
        for pair in params.get("points", "").split(";"):
            if pair:
                x, _, y = pair.partition(",")
                points.append((float(x), float(y)))
        region = ImageRegion(params["type"], tuple(points), params.get("origin", ""))
    try:
        frame = int(params.get("frame", "0") or 0)
    except ValueError:
        frame = 0
    return ImageLink(uid, params.get("class", ""), frame, region)


def render_html(doc: SRDocument) -> str:
    """A readable HTML document: header table, containers as headings, NUM runs as measurement tables,
    IMAGE/SCOORD items as `lightbox-image:` links."""
    e = html.escape
    out = [
        "<html><head><meta charset='utf-8'><style>",
        "body{font-family:sans-serif} table.m{border-collapse:collapse;margin:4px 0}"
        " table.m td,table.m th{border:1px solid #999;padding:2px 6px} .ctx{color:#555;font-size:small}"
        " .rel{color:#777;font-size:small} .problem{color:#a00}",
        "</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
        "<table class='header'>",
    ]
    for label, value in header_fields(doc):
        out.append(f"<tr><td><b>{e(label)}:</b></td><td>{e(value)}</td></tr>")
    out.append("</table><hr>")

    def value_html(item: ContentItem) -> str:
        link = item.image_link()
        text = e(item.display_value()).replace("\n", "<br>")
        if link is not None:
            # Raw '&' on purpose: Qt's rich-text engine keeps entities in href attributes undecoded.
            href = image_href(link).replace("'", "%27").replace("<", "%3C").replace(">", "%3E")
            return f"<a href='{href}'>{text}</a>"
        return text

    def emit_table(rows: list[ContentItem]) -> None:
        out.append("<table class='m'><tr><th>Measurement</th><th>Value</th><th>Unit</th><th>Details</th></tr>")
        for row_item in rows:
            mr = measurement_row(row_item, "")
            value = mr.value or mr.qualifier
            if mr.value and mr.qualifier:
                value += f" ({mr.qualifier})"
            out.append(
                f"<tr><td>{e(mr.name)}</td><td>{e(value)}</td><td>{e(mr.unit)}</td><td>{e(mr.modifiers)}</td></tr>"
            )
        out.append("</table>")
        for row_item in rows:
            extra = [c for c in row_item.children if not is_row_detail(c)]
            if extra:
                out.append(f"<div style='margin-left:16px'><small>{e(row_item.concept_name)}:</small>")
                for child in extra:
                    visit(child, level_of(row_item) + 1)
                out.append("</div>")

    def level_of(item: ContentItem) -> int:
        return item.depth

    def visit(item: ContentItem, level: int) -> None:
        if item.problem:
            out.append(f"<p class='problem'>Item {e(item.position)}: {e(item.problem)}</p>")
        if item.value_type == "CONTAINER" and not item.is_by_reference:
            tag = f"h{min(level + 2, 6)}"
            out.append(f"<{tag}>{e(item.concept_name or '')}</{tag}>" if item.concept else "<div>")
        else:
            rel = ""
            if item.relationship and item.relationship != "CONTAINS":
                rel = f"<span class='rel'>{e(RELATIONSHIP_LABELS.get(item.relationship, item.relationship))}</span> "
            css = " class='ctx'" if item.relationship in ("HAS OBS CONTEXT", "HAS ACQ CONTEXT") else ""
            if item.is_by_reference:
                out.append(f"<p{css}>{rel}see item {e(item.referenced_position)}</p>")
            else:
                name = f"<b>{e(item.concept_name)}:</b> " if item.concept else ""
                out.append(f"<p{css}>{rel}{name}{value_html(item)}</p>")
        pending: list[ContentItem] = []
        # Runs of NUM siblings read best as a table; other children break a run so order is kept.
        for child in item.children:
            if child.value_type == "NUM" and child.relationship == "CONTAINS" and not child.is_by_reference:
                pending.append(child)
                continue
            if pending:
                emit_table(pending)
                pending = []
            out.append("<div style='margin-left:16px'>")
            visit(child, level + 1)
            out.append("</div>")
        if pending:
            emit_table(pending)
        if item.value_type == "CONTAINER" and not item.concept and not item.is_by_reference:
            out.append("</div>")

    visit(doc.root, 0)
    out.append("</body></html>")
    return "\n".join(out)
