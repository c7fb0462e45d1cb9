"""Finding presentation states for an image/frame, and Key Object Selections as key-image series."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from viewer.core.model import KEY_OBJECT_SELECTION
from viewer.core.presentation import (
    default_presentation_state,
    key_image_series_for_study,
    presentation_states_for,
    states_for_series,
)
from viewer.render.gsps_writer import GspsContent, build_gsps


def multiframe_image(frames: int = 4) -> Dataset:
    """A multi-frame MR made from MR_small's pixels, in MR_small's study."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    pixels = ds.pixel_array
    ds.NumberOfFrames = frames
    ds.PixelData = np.stack([pixels + i for i in range(frames)]).astype(pixels.dtype).tobytes()
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def ps_for(image: Dataset, label: str, date: str, time: str, frames: list[int] | None = None) -> Dataset:
    ds = build_gsps([image], GspsContent(label=label))
    ds.PresentationCreationDate, ds.PresentationCreationTime = date, time
    if frames is not None:
        ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedFrameNumber = frames
    return ds


@pytest.fixture
def mr_study(store):
    single = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    multi = multiframe_image()
    store.add_dataset(single)
    store.add_dataset(multi)
    return store, store.instance(single.SOPInstanceUID), store.instance(multi.SOPInstanceUID), single, multi


def test_states_for_an_image_newest_first_and_default(mr_study):
    store, single, _multi, single_ds, multi_ds = mr_study
    old = ps_for(single_ds, "Old", "20200101", "080000")
    new = ps_for(single_ds, "New", "20230505", "120000")
    middle = ps_for(single_ds, "Middle", "20230505", "090000")
    other = ps_for(multi_ds, "Other image", "20250101", "000000")
    for ds in (old, new, middle, other):
        store.add_dataset(ds)
    states = presentation_states_for(store, single)
    assert [s.label for s in states] == ["NEW", "MIDDLE", "OLD"]
    assert states[0].title.startswith("NEW") and "2023-05-05" in states[0].title
    default = default_presentation_state(store, single)
    assert default is not None and default.label == "NEW"
    assert [s.label for s in states_for_series(store, single.study_uid, single.series_uid)] == ["NEW", "MIDDLE", "OLD"]


def test_frame_references_decide_what_applies(mr_study):
    store, _single, multi, _single_ds, multi_ds = mr_study
    store.add_dataset(ps_for(multi_ds, "Frames 2 and 3", "20240101", "000000", frames=[2, 3]))
    store.add_dataset(ps_for(multi_ds, "All frames", "20230101", "000000"))
    assert [s.label for s in presentation_states_for(store, multi, 0)] == ["ALL FRAMES"]
    assert [s.label for s in presentation_states_for(store, multi, 1)] == ["FRAMES 2 AND 3", "ALL FRAMES"]
    assert default_presentation_state(store, multi, 2).label == "FRAMES 2 AND 3"
    assert default_presentation_state(store, multi, 3).label == "ALL FRAMES"


def test_label_falls_back_to_description_then_creator(mr_study):
    store, single, _multi, single_ds, _ = mr_study
    ds = ps_for(single_ds, "x", "20220101", "000000")
    ds.ContentLabel = ""
    ds.ContentDescription = ""
    ds.ContentCreatorName = "Smith^Ann"
    store.add_dataset(ds)
    (state,) = presentation_states_for(store, single)
    assert state.title.startswith("Smith^Ann")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def key_object(images: list[tuple[Dataset, list[int] | None]], title: Dataset, text: str) -> Dataset:
    first = images[0][0]
    ko = Dataset()
    ko.SpecificCharacterSet = "ISO_IR 192"
    ko.SOPClassUID = KEY_OBJECT_SELECTION
    ko.SOPInstanceUID = generate_uid()
    ko.StudyInstanceUID = first.StudyInstanceUID
    ko.SeriesInstanceUID = generate_uid()
    ko.Modality = "KO"
    ko.PatientName, ko.PatientID = first.PatientName, first.PatientID
    ko.ContentDate, ko.ContentTime = "20240102", "101010"
    ko.ValueType = "CONTAINER"
    ko.ConceptNameCodeSequence = [title]
    ko.ContinuityOfContent = "SEPARATE"
    evidence_series = {}
    content = []
    observer = Dataset()
    observer.RelationshipType, observer.ValueType = "HAS OBS CONTEXT", "PNAME"
    observer.ConceptNameCodeSequence = [_code("121008", "DCM", "Person Observer Name")]
    observer.PersonName = "Reader^One"
    content.append(observer)
    description = Dataset()
    description.RelationshipType, description.ValueType = "CONTAINS", "TEXT"
    description.ConceptNameCodeSequence = [_code("113012", "DCM", "Key Object Description")]
    description.TextValue = text
    content.append(description)
    for image, frames in images:
        sop = Dataset()
        sop.ReferencedSOPClassUID = image.SOPClassUID
        sop.ReferencedSOPInstanceUID = image.SOPInstanceUID
        if frames:
            sop.ReferencedFrameNumber = frames
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
        item.ReferencedSOPSequence = [sop]
        content.append(item)
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
        evidence_series.setdefault(str(image.SeriesInstanceUID), []).append(ref)
    ko.ContentSequence = content
    study = Dataset()
    study.StudyInstanceUID = first.StudyInstanceUID
    study.ReferencedSeriesSequence = []
    for series_uid, refs in evidence_series.items():
        s = Dataset()
        s.SeriesInstanceUID = series_uid
        s.ReferencedSOPSequence = refs
        study.ReferencedSeriesSequence.append(s)
    ko.CurrentRequestedProcedureEvidenceSequence = [study]
    ko.file_meta = FileMetaDataset()
    ko.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ko


def test_key_object_selection_becomes_a_key_images_series(mr_study):
    store, single, multi, single_ds, multi_ds = mr_study
    missing = copy.deepcopy(single_ds)
    missing.SOPInstanceUID = generate_uid()  # referenced but never received
    ko = key_object(
        [(multi_ds, [3, 1]), (single_ds, None), (missing, None)],
        _code("113004", "DCM", "For Teaching"),
        "Classic ring enhancement — see frames 3 and 1",
    )
    store.add_dataset(ko)
    (series,) = key_image_series_for_study(store, single.study_uid)
    assert series.title == "For Teaching"
    assert series.series_description == "Key images: For Teaching"
    assert series.texts == ("Classic ring enhancement — see frames 3 and 1",)
    assert series.observer == "Reader^One"
    assert [k.reference.sop_instance_uid for k in series.images] == [
        multi.sop_instance_uid,
        single.sop_instance_uid,
        missing.SOPInstanceUID,
    ]
    assert series.images[0].reference.series_uid == multi.series_uid
    # frames in KO order; the missing image is reported, not shown
    assert [(inst.sop_instance_uid, frame) for inst, frame in series.frame_list()] == [
        (multi.sop_instance_uid, 2),
        (multi.sop_instance_uid, 0),
        (single.sop_instance_uid, 0),
    ]
    assert [r.sop_instance_uid for r in series.missing] == [missing.SOPInstanceUID]


def test_several_key_objects_each_make_their_series(mr_study):
    store, single, _multi, single_ds, _ = mr_study
    store.add_dataset(key_object([(single_ds, None)], _code("113000", "DCM", "Of Interest"), "a"))
    store.add_dataset(key_object([(single_ds, None)], _code("113001", "DCM", "Rejected for Quality Reasons"), "b"))
    titles = sorted(s.title for s in key_image_series_for_study(store, single.study_uid))
    assert titles == ["Of Interest", "Rejected for Quality Reasons"]
