"""The Basic Application Level Confidentiality Profile: no listed attribute keeps its original value."""

from __future__ import annotations

import copy

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from viewer.core.deidentify import BASIC_PROFILE, METHOD_DESCRIPTION, Deidentifier, effective_action


def _original_value(tag: int, vr: str, n: int) -> object:
    text = {
        "AE": "ORIGINAL_AE",
        "AS": "045Y",
        "CS": "ORIGINAL",
        "DA": "20230415",
        "DT": "20230415101010",
        "TM": "101010",
        "DS": "12.5",
        "IS": "7",
        "SH": "ORIGINAL SH",
        "PN": "Original^Person",
        "UI": f"1.2.826.0.1.3680043.8.498.{n}",
        "UR": "http://hospital.example/record",
    }
    if vr in text:
        return text[vr]
    if vr in ("LO", "LT", "ST", "UC", "UT"):
        return f"Original {keyword_for_tag(tag)}"[:64]
    if vr in ("FL", "FD"):
        return 1.5
    if vr in ("SL", "SS", "SV", "UL", "US", "UV"):
        return 7
    if vr == "AT":
        return 0x00100010
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "ORIG"
        item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.999"
        return Sequence([item])
    return b"\x01\x02"  # OB, OW, OD, OF, OL, OV, UN


def _dataset_with_every_profile_attribute() -> Dataset:
    ds = Dataset()
    for n, tag in enumerate(sorted(BASIC_PROFILE)):
        if tag >> 16 in (0x0000, 0x0002):
            continue  # command and file meta groups are not data set attributes
        vr = dictionary_VR(tag).split(" or ")[0]
        ds.add_new(tag, vr, _original_value(tag, vr, n))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.add_new(0x00091001, "LO", "private creator")
    ds.add_new(0x00091010, "LO", "private value")
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)
    ds.add_new(0x60000010, "US", 4)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITALPACS"
    return ds


def _kept_original(original: Dataset, cleaned: Dataset) -> list[str]:
    """Attributes (every one in the test data set comes from the profile's table) still holding their value."""
    kept = []
    for elem in original:
        if elem.keyword in ("SOPClassUID", "ReferencedSeriesSequence") or elem.tag not in cleaned:
            continue
        new = cleaned[elem.tag]
        if new.value in (None, b"", "") or (new.VR == "SQ" and len(new.value) == 0):
            continue
        if new.VR == "SQ":
            before = [sorted((str(e.tag), str(e.value)) for e in item) for item in elem.value]
            after = [sorted((str(e.tag), str(e.value)) for e in item) for item in new.value]
            if before == after:
                kept.append(elem.keyword)
        elif str(new.value) == str(elem.value):
            kept.append(elem.keyword)
    return kept


def test_no_profile_attribute_keeps_its_original_value() -> None:
    original = _dataset_with_every_profile_attribute()
    assert len(original) > 550  # the table has about 600 entries; all but the meta/command ones are here
    # The same attributes nested inside a sequence the table does not list must be cleaned there too.
    holder = Dataset()
    for elem in original:
        holder.add(copy.deepcopy(elem))
    original.ReferencedSeriesSequence = Sequence([holder])
    before = copy.deepcopy(original)

    result = Deidentifier().deidentify(original)
    cleaned = result.dataset

    assert _kept_original(before, cleaned) == []
    assert _kept_original(before.ReferencedSeriesSequence[0], cleaned.ReferencedSeriesSequence[0]) == []
    assert original == before, "the source data set must not be modified"
    for tag, action in BASIC_PROFILE.items():
        if effective_action(action) == "X":
            assert tag not in cleaned, keyword_for_tag(tag)
    assert not any(elem.tag.is_private for elem in cleaned.iterall())
    assert not any(elem.tag.group & 0xFF00 == 0x6000 for elem in cleaned)
    assert cleaned.PatientIdentityRemoved == "YES"
    assert cleaned.DeidentificationMethod == METHOD_DESCRIPTION
    assert cleaned.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert cleaned.SOPClassUID == before.SOPClassUID
    assert cleaned.file_meta.MediaStorageSOPInstanceUID == cleaned.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in cleaned.file_meta
    assert str(cleaned.PatientName) and cleaned.PatientName != before.PatientName
    assert cleaned.PatientID and cleaned.PatientID != before.PatientID


def test_uids_and_pseudonyms_are_consistent_across_a_study() -> None:
    first = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    second = copy.deepcopy(first)
    second.SOPInstanceUID = first.SOPInstanceUID + ".2"
    reference = Dataset()
    reference.ReferencedSOPClassUID = first.SOPClassUID
    reference.ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.SourceImageSequence = Sequence([reference])
    other_patient = copy.deepcopy(first)
    other_patient.PatientID = "SOMEONE-ELSE"
    other_patient.StudyInstanceUID = first.StudyInstanceUID + ".9"

    session = Deidentifier()
    a, b, c = (session.deidentify(ds).dataset for ds in (first, second, other_patient))
    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != first.SeriesInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID != first.FrameOfReferenceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert b.SourceImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert b.SourceImageSequence[0].ReferencedSOPClassUID == first.SOPClassUID
    assert (a.PatientName, a.PatientID) == (b.PatientName, b.PatientID)
    assert (c.PatientName, c.PatientID) != (a.PatientName, a.PatientID)
    assert c.StudyInstanceUID != a.StudyInstanceUID
    assert a.file_meta.TransferSyntaxUID == first.file_meta.TransferSyntaxUID
    assert (a.pixel_array == first.pixel_array).all()


def test_keyed_sessions_repeat_their_mapping() -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    one = Deidentifier(key=b"site secret").deidentify(ds).dataset
    two = Deidentifier(key=b"site secret").deidentify(ds).dataset
    other = Deidentifier(key=b"another secret").deidentify(ds).dataset
    assert one.StudyInstanceUID == two.StudyInstanceUID != other.StudyInstanceUID
    assert one.PatientID == two.PatientID != other.PatientID
    assert len(one.SOPInstanceUID) <= 64


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "test-SR.dcm"])
def test_deidentified_objects_encode_and_read_back(tmp_path, name: str) -> None:
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    cleaned = Deidentifier().deidentify(ds).dataset
    out = tmp_path / "out.dcm"
    cleaned.save_as(out, enforce_file_format=True)
    back = pydicom.dcmread(out)
    assert back.PatientIdentityRemoved == "YES"
    assert back.SOPInstanceUID != ds.SOPInstanceUID
    assert str(back.get("PatientName", "")) != str(ds.get("PatientName", "")) or not ds.get("PatientName")
