"""The patient / study / series / instance model, as the study browser sees it.

Records are plain frozen dataclasses so every layer (store, network, UI) can pass them around without
touching pydicom; `index_entry_from_dataset` is the one place that turns a dataset into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset

# SOP classes that are documents rather than images; the browser marks their series and the
# viewer opens them in the matching view.
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
ENCAPSULATED_CDA = "1.2.840.10008.5.1.4.1.1.104.2"
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
PRESENTATION_STATE_PREFIX = "1.2.840.10008.5.1.4.1.1.11."


class DocumentKind(StrEnum):
    """What a SOP class is to the viewer: which view opens it. A StrEnum, so the index and older callers that
    hold the plain text ('image', 'sr', …) compare equal."""

    IMAGE = "image"
    SR = "sr"
    KO = "ko"
    PDF = "pdf"
    CDA = "cda"
    PR = "pr"


def document_kind(sop_class_uid: str) -> DocumentKind:
    """The `DocumentKind` of a SOP Class UID (anything not a document is an image)."""
    if sop_class_uid == KEY_OBJECT_SELECTION:
        return DocumentKind.KO
    if sop_class_uid.startswith(SR_PREFIX):
        return DocumentKind.SR
    if sop_class_uid == ENCAPSULATED_PDF:
        return DocumentKind.PDF
    if sop_class_uid == ENCAPSULATED_CDA:
        return DocumentKind.CDA
    if sop_class_uid.startswith(PRESENTATION_STATE_PREFIX):
        return DocumentKind.PR
    return DocumentKind.IMAGE


@dataclass(frozen=True)
class Patient:
    patient_id: str
    patient_name: str
    birth_date: str = ""
    sex: str = ""
    study_count: int = 0


@dataclass(frozen=True)
class Study:
    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    referring_physician: str = ""
    modalities: tuple[str, ...] = ()
    series_count: int = 0
    instance_count: int = 0


@dataclass(frozen=True)
class Series:
    series_uid: str
    study_uid: str
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""
    series_date: str = ""
    series_time: str = ""
    instance_count: int = 0
    kind: str = "image"


@dataclass(frozen=True)
class Instance:
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    sop_class_uid: str
    instance_number: int | None = None
    transfer_syntax: str = ""
    frames: int = 1
    rows: int = 0
    columns: int = 0
    path: str = ""  # absolute path of the stored file
    size: int = 0
    sha256: str = ""
    # Image Position / Orientation (Patient), (0020,0032) / (0020,0037): what a stack is sorted by before its
    # first image loads; () when absent or unreadable.
    image_position: tuple[float, ...] = ()
    image_orientation: tuple[float, ...] = ()


@dataclass(frozen=True)
class IndexEntry:
    """Everything the index keeps about one instance, flattened over the four levels."""

    study: Study
    series: Series
    instance: Instance
    extra: dict[str, Any] = field(default_factory=dict)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(ds: Dataset, keyword: str) -> tuple[float, ...]:
    try:
        value = ds.get(keyword)
        if value in (None, ""):
            return ()
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            return tuple(float(v) for v in value)
        return (float(value),)
    except (TypeError, ValueError):
        return ()


class NotIndexable(ValueError):
    """The dataset lacks what the index needs (a UID at some level, or the SOP Class)."""


REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")


def index_entry_from_dataset(ds: Dataset, transfer_syntax: str = "") -> IndexEntry:
    """Build the index entry for a dataset; raises `NotIndexable` naming what is missing."""
    missing = [k for k in REQUIRED_UIDS if not _text(ds, k)]
    if missing:
        raise NotIndexable("missing " + ", ".join(missing))
    study_uid = _text(ds, "StudyInstanceUID")
    series_uid = _text(ds, "SeriesInstanceUID")
    sop_class = _text(ds, "SOPClassUID")
    if not transfer_syntax:
        meta = getattr(ds, "file_meta", None)
        transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    study = Study(
        study_uid=study_uid,
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        accession_number=_text(ds, "AccessionNumber"),
        study_id=_text(ds, "StudyID"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        study_description=_text(ds, "StudyDescription"),
        referring_physician=_text(ds, "ReferringPhysicianName"),
    )
    series = Series(
        series_uid=series_uid,
        study_uid=study_uid,
        modality=_text(ds, "Modality"),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        body_part=_text(ds, "BodyPartExamined"),
        series_date=_text(ds, "SeriesDate"),
        series_time=_text(ds, "SeriesTime"),
        kind=document_kind(sop_class),
    )
    instance = Instance(
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        series_uid=series_uid,
        study_uid=study_uid,
        sop_class_uid=sop_class,
        instance_number=_int(ds, "InstanceNumber"),
        transfer_syntax=transfer_syntax,
        frames=_int(ds, "NumberOfFrames") or 1,
        rows=_int(ds, "Rows") or 0,
        columns=_int(ds, "Columns") or 0,
        image_position=_floats(ds, "ImagePositionPatient"),
        image_orientation=_floats(ds, "ImageOrientationPatient"),
    )
    return IndexEntry(study=study, series=series, instance=instance)
