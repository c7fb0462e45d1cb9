"""Finding presentation states and Key Object Selections for images in the store (no Qt).

API
---
``PresentationStateInfo`` – one GSPS (any of the four classes) as the menu lists it: label, date, kind and
    the images/frames it references.
``presentation_states_for(store, instance, frame_index=0) -> list[PresentationStateInfo]``
    every state in the image's study that references this image (and frame), newest first.
``default_presentation_state(store, instance, frame_index=0)`` – the newest that applies, or None.
``KeyImageSeries`` / ``KeyImage`` – a "Key images" virtual series built from one KO: its title (the
    document title's code meaning, e.g. "For Teaching", "Of Interest"), its text (TEXT content items),
    the referenced images and frames in document order, resolved to store instances where present.
``key_image_series_for_study(store, study_uid) -> list[KeyImageSeries]`` and ``key_image_series(store, ko)``.
``parse_key_object(ds) -> (title, texts, references)`` works on a bare dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset

from viewer.core.model import KEY_OBJECT_SELECTION, PRESENTATION_STATE_PREFIX, Instance
from viewer.core.store import StudyStore

log = logging.getLogger(__name__)

PS_KIND_BY_CLASS = {
    "1.2.840.10008.5.1.4.1.1.11.1": "grayscale",
    "1.2.840.10008.5.1.4.1.1.11.2": "color",
    "1.2.840.10008.5.1.4.1.1.11.3": "pseudo-color",
    "1.2.840.10008.5.1.4.1.1.11.4": "blending",
}


def _multi(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _frames(ref: Dataset) -> tuple[int, ...]:
    return tuple(int(f) for f in _multi(ref.get("ReferencedFrameNumber")) if str(f).strip())


@dataclass(frozen=True)
class ImageReference:
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str = ""
    frames: tuple[int, ...] = ()  # 1-based; empty means every frame

    def covers(self, sop_instance_uid: str, frame_index: int = 0) -> bool:
        return self.sop_instance_uid == sop_instance_uid and (not self.frames or frame_index + 1 in self.frames)


@dataclass(frozen=True)
class PresentationStateInfo:
    sop_instance_uid: str
    sop_class_uid: str
    path: str
    label: str
    description: str
    creator: str
    creation_date: str  # YYYYMMDD
    creation_time: str  # HHMMSS(.ffffff)
    references: tuple[ImageReference, ...] = ()

    @property
    def kind(self) -> str:
        return PS_KIND_BY_CLASS.get(self.sop_class_uid, "grayscale")

    @property
    def sort_key(self) -> str:
        return f"{self.creation_date:0<8}{self.creation_time.split('.')[0]:0<6}"

    @property
    def title(self) -> str:
        """What a menu shows: Content Label, then Description, then Creator, with the date."""
        name = self.label or self.description or self.creator or self.sop_instance_uid
        extra = [x for x in (self.description if self.label else "", self.creator) if x]
        date = self.creation_date
        when = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else date
        return " — ".join([name, *extra, when]) if when else " — ".join([name, *extra])

    def applies_to(self, sop_instance_uid: str, frame_index: int = 0) -> bool:
        return any(r.covers(sop_instance_uid, frame_index) for r in self.references)


def presentation_state_info(ds: Dataset, path: str = "") -> PresentationStateInfo:
    refs: list[ImageReference] = []
    series_items = list(ds.get("ReferencedSeriesSequence", []) or [])
    for blend in ds.get("BlendingSequence", []) or []:  # blending states reference through their items
        series_items.extend(blend.get("ReferencedSeriesSequence", []) or [])
    for series in series_items:
        series_uid = str(series.get("SeriesInstanceUID", ""))
        for ref in series.get("ReferencedImageSequence", []) or []:
            refs.append(
                ImageReference(
                    series_uid,
                    str(ref.get("ReferencedSOPInstanceUID", "")),
                    str(ref.get("ReferencedSOPClassUID", "")),
                    _frames(ref),
                )
            )
    return PresentationStateInfo(
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        path=path,
        label=str(ds.get("ContentLabel", "") or ""),
        description=str(ds.get("ContentDescription", "") or ""),
        creator=str(ds.get("ContentCreatorName", "") or ""),
        creation_date=str(ds.get("PresentationCreationDate", "") or ds.get("InstanceCreationDate", "") or ""),
        creation_time=str(ds.get("PresentationCreationTime", "") or ds.get("InstanceCreationTime", "") or ""),
        references=tuple(refs),
    )


_info_cache: dict[tuple[str, str], PresentationStateInfo] = {}


def _read_info(instance: Instance) -> PresentationStateInfo | None:
    key = (instance.sop_instance_uid, instance.sha256)
    cached = _info_cache.get(key)
    if cached is not None:
        return cached
    try:
        # only the header: overlay data in a state can be large and is not needed for the menu
        ds = pydicom.dcmread(instance.path, stop_before_pixels=True, specific_tags=None)
    except Exception as exc:
        log.warning("cannot read presentation state %s: %s", instance.sop_instance_uid, exc)
        return None
    info = presentation_state_info(ds, instance.path)
    _info_cache[key] = info
    return info


def presentation_states_in_study(store: StudyStore, study_uid: str) -> list[PresentationStateInfo]:
    out = []
    for inst in store.instances_of_class(PRESENTATION_STATE_PREFIX, study_uid):
        info = _read_info(inst)
        if info is not None:
            out.append(info)
    out.sort(key=lambda i: i.sort_key, reverse=True)
    return out


def presentation_states_for(store: StudyStore, instance: Instance, frame_index: int = 0) -> list[PresentationStateInfo]:
    """States in the image's study that reference this image and frame, newest first."""
    return [
        info
        for info in presentation_states_in_study(store, instance.study_uid)
        if info.applies_to(instance.sop_instance_uid, frame_index)
    ]


def default_presentation_state(
    store: StudyStore, instance: Instance, frame_index: int = 0
) -> PresentationStateInfo | None:
    states = presentation_states_for(store, instance, frame_index)
    return states[0] if states else None


def states_for_series(store: StudyStore, study_uid: str, series_uid: str) -> list[PresentationStateInfo]:
    """States that reference any image of a series (for a series-level menu), newest first."""
    return [
        info
        for info in presentation_states_in_study(store, study_uid)
        if any(r.series_uid == series_uid for r in info.references)
    ]


def load_presentation_state(info: PresentationStateInfo) -> Dataset:
    return pydicom.dcmread(info.path)


# ----------------------------------------------------------------------------- Key Object Selection
@dataclass(frozen=True)
class KeyImage:
    reference: ImageReference
    instance: Instance | None  # None when the image is not in the store (yet)

    @property
    def frames(self) -> tuple[int, ...]:
        return self.reference.frames


@dataclass(frozen=True)
class KeyImageSeries:
    """A virtual series listing one KO's key images."""

    ko_sop_instance_uid: str
    study_uid: str
    title: str
    texts: tuple[str, ...]
    images: tuple[KeyImage, ...] = field(default_factory=tuple)
    content_date: str = ""
    observer: str = ""

    @property
    def series_description(self) -> str:
        return f"Key images: {self.title}" if self.title else "Key images"

    @property
    def missing(self) -> list[ImageReference]:
        return [k.reference for k in self.images if k.instance is None]

    def frame_list(self) -> list[tuple[Instance, int]]:
        """(instance, 0-based frame index) in KO order, expanding frame lists; only images in the store."""
        out: list[tuple[Instance, int]] = []
        for key in self.images:
            if key.instance is None:
                continue
            frames = key.frames or tuple(range(1, max(key.instance.frames, 1) + 1))
            out.extend((key.instance, f - 1) for f in frames)
        return out


def _walk_content(items: Iterable[Dataset]) -> Iterable[Dataset]:
    for item in items or []:
        yield item
        yield from _walk_content(item.get("ContentSequence", []) or [])


def parse_key_object(ds: Dataset) -> tuple[str, list[str], list[ImageReference]]:
    """(title, texts, image references) of a KO document, references in document order."""
    title = ""
    concept = ds.get("ConceptNameCodeSequence")
    if concept:
        title = str(concept[0].get("CodeMeaning", ""))
    series_of: dict[str, str] = {}
    class_of: dict[str, str] = {}
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []) or []:
        for series in study.get("ReferencedSeriesSequence", []) or []:
            for sop in series.get("ReferencedSOPSequence", []) or []:
                uid = str(sop.get("ReferencedSOPInstanceUID", ""))
                series_of[uid] = str(series.get("SeriesInstanceUID", ""))
                class_of[uid] = str(sop.get("ReferencedSOPClassUID", ""))
    texts: list[str] = []
    refs: list[ImageReference] = []
    for item in _walk_content(ds.get("ContentSequence", []) or []):
        value_type = str(item.get("ValueType", "")).upper()
        if value_type == "TEXT" and item.get("TextValue"):
            texts.append(str(item.TextValue))
        elif value_type in ("IMAGE", "COMPOSITE"):
            for sop in item.get("ReferencedSOPSequence", []) or []:
                uid = str(sop.get("ReferencedSOPInstanceUID", ""))
                refs.append(
                    ImageReference(
                        series_of.get(uid, ""),
                        uid,
                        str(sop.get("ReferencedSOPClassUID", "")) or class_of.get(uid, ""),
                        _frames(sop),
                    )
                )
    return title, texts, refs


def key_image_series(store: StudyStore, ko: Instance | Dataset) -> KeyImageSeries:
    ds = ko if isinstance(ko, Dataset) else pydicom.dcmread(ko.path, stop_before_pixels=True)
    title, texts, refs = parse_key_object(ds)
    images = tuple(KeyImage(ref, store.instance(ref.sop_instance_uid)) for ref in refs)
    observer = ""
    for item in _walk_content(ds.get("ContentSequence", []) or []):
        name = item.get("ConceptNameCodeSequence")
        if name and str(name[0].get("CodeValue", "")) == "121008" and item.get("PersonName"):
            observer = str(item.PersonName)
            break
    return KeyImageSeries(
        ko_sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        title=title,
        texts=tuple(texts),
        images=images,
        content_date=str(ds.get("ContentDate", "") or ""),
        observer=observer,
    )


def key_image_series_for_study(store: StudyStore, study_uid: str) -> list[KeyImageSeries]:
    out = []
    for inst in store.instances_of_class(KEY_OBJECT_SELECTION, study_uid):
        try:
            out.append(key_image_series(store, inst))
        except Exception as exc:
            log.warning("cannot read key object selection %s: %s", inst.sop_instance_uid, exc)
    return out
