"""Our SR model and text rendering against DCMTK's `dsrdump` for the same files, item by item."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.documents import sr_samples
from tests.documents.dcmtk_sr import our_lines, run_dsrdump
from tests.support.net import require_tool
from viewer.documents.sr import (
    VALUE_TYPES,
    SRDocument,
    format_person_name,
    item_label,
    load_sr,
    render_html,
    render_text,
)

# A Comprehensive SR written as a DCMTK text dump and encoded by dump2dcm: NUM with both value and
# qualifier, TCOORD with time offsets and datetimes, an IMAGE with a presentation state, a by-reference
# SELECTED FROM, and an observation date/time on an item.
DUMP = r"""
(0002,0001) OB 00\01
(0002,0002) UI =ComprehensiveSRStorage
(0002,0003) UI [1.2.826.0.1.3680043.8.498.2.1]
(0002,0010) UI =LittleEndianExplicit
(0008,0005) CS [ISO_IR 100]
(0008,0016) UI =ComprehensiveSRStorage
(0008,0018) UI [1.2.826.0.1.3680043.8.498.2.1]
(0008,0020) DA [20240302]
(0008,0023) DA [20240302]
(0008,0030) TM [0900]
(0008,0033) TM [091500]
(0008,0050) SH [ACC77]
(0008,0060) CS [SR]
(0008,0070) LO [DCMTK dump]
(0008,0090) PN [Ref^Doc]
(0008,1111) SQ (Sequence with explicit length #=0)
(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)
(0010,0010) PN [Möller^Hans]
(0010,0020) LO [P77]
(0010,0030) DA [19600505]
(0010,0040) CS [M]
(0020,000d) UI [1.2.826.0.1.3680043.8.498.2]
(0020,000e) UI [1.2.826.0.1.3680043.8.498.2.9]
(0020,0010) SH [77]
(0020,0011) IS [3]
(0020,0013) IS [1]
(0040,a040) CS [CONTAINER]
(0040,a043) SQ (Sequence with undefined length #=1)
  (fffe,e000) na (Item with undefined length #=3)
    (0008,0100) SH [18748-4]
    (0008,0102) SH [LN]
    (0008,0104) LO [Diagnostic Imaging Report]
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0040,a050) CS [SEPARATE]
(0040,a491) CS [PARTIAL]
(0040,a492) LO [preliminary read]
(0040,a493) CS [UNVERIFIED]
(0040,a375) SQ (Sequence with undefined length #=0)
(fffe,e0dd) na (SequenceDelimitationItem)
(0040,a730) SQ (Sequence with undefined length #=3)
  (fffe,e000) na (Item with undefined length #=5)
    (0040,a010) CS [CONTAINS]
    (0040,a032) DT [20240302091000]
    (0040,a040) CS [NUM]
    (0040,a043) SQ (Sequence with undefined length #=1)
      (fffe,e000) na (Item with undefined length #=3)
        (0008,0100) SH [8480-6]
        (0008,0102) SH [LN]
        (0008,0104) LO [Systolic blood pressure]
      (fffe,e00d) na (ItemDelimitationItem)
    (fffe,e0dd) na (SequenceDelimitationItem)
    (0040,a300) SQ (Sequence with undefined length #=1)
      (fffe,e000) na (Item with undefined length #=2)
        (0040,08ea) SQ (Sequence with undefined length #=1)
          (fffe,e000) na (Item with undefined length #=3)
            (0008,0100) SH [mm[Hg]]
            (0008,0102) SH [UCUM]
            (0008,0104) LO [mmHg]
          (fffe,e00d) na (ItemDelimitationItem)
        (fffe,e0dd) na (SequenceDelimitationItem)
        (0040,a30a) DS [120]
      (fffe,e00d) na (ItemDelimitationItem)
    (fffe,e0dd) na (SequenceDelimitationItem)
  (fffe,e00d) na (ItemDelimitationItem)
  (fffe,e000) na (Item with undefined length #=4)
    (0040,a010) CS [CONTAINS]
    (0040,a040) CS [IMAGE]
    (0008,1199) SQ (Sequence with undefined length #=1)
      (fffe,e000) na (Item with undefined length #=4)
        (0008,1150) UI =CTImageStorage
        (0008,1155) UI [1.2.826.0.1.3680043.8.498.2.5]
        (0008,1160) IS [2\4]
        (0008,1199) SQ (Sequence with undefined length #=1)
          (fffe,e000) na (Item with undefined length #=2)
            (0008,1150) UI =GrayscaleSoftcopyPresentationStateStorage
            (0008,1155) UI [1.2.826.0.1.3680043.8.498.2.6]
          (fffe,e00d) na (ItemDelimitationItem)
        (fffe,e0dd) na (SequenceDelimitationItem)
      (fffe,e00d) na (ItemDelimitationItem)
    (fffe,e0dd) na (SequenceDelimitationItem)
  (fffe,e00d) na (ItemDelimitationItem)
  (fffe,e000) na (Item with undefined length #=5)
    (0040,a010) CS [CONTAINS]
    (0040,a040) CS [TEXT]
    (0040,a043) SQ (Sequence with undefined length #=1)
      (fffe,e000) na (Item with undefined length #=3)
        (0008,0100) SH [121071]
        (0008,0102) SH [DCM]
        (0008,0104) LO [Finding]
      (fffe,e00d) na (ItemDelimitationItem)
    (fffe,e0dd) na (SequenceDelimitationItem)
    (0040,a160) UT [Pressure peak during the recorded interval]
    (0040,a730) SQ (Sequence with undefined length #=2)
      (fffe,e000) na (Item with undefined length #=5)
        (0040,a010) CS [HAS PROPERTIES]
        (0040,a040) CS [TCOORD]
        (0040,a043) SQ (Sequence with undefined length #=1)
          (fffe,e000) na (Item with undefined length #=3)
            (0008,0100) SH [122001]
            (0008,0102) SH [DCM]
            (0008,0104) LO [Time Range]
          (fffe,e00d) na (ItemDelimitationItem)
        (fffe,e0dd) na (SequenceDelimitationItem)
        (0040,a130) CS [POINT]
        (0040,a138) DS [0.5\1.25]
        (0040,a730) SQ (Sequence with undefined length #=1)
          (fffe,e000) na (Item with undefined length #=2)
            (0040,a010) CS [SELECTED FROM]
            (0040,db73) UL 1\2
          (fffe,e00d) na (ItemDelimitationItem)
        (fffe,e0dd) na (SequenceDelimitationItem)
      (fffe,e00d) na (ItemDelimitationItem)
      (fffe,e000) na (Item with undefined length #=4)
        (0040,a010) CS [HAS PROPERTIES]
        (0040,a040) CS [TCOORD]
        (0040,a043) SQ (Sequence with undefined length #=1)
          (fffe,e000) na (Item with undefined length #=3)
            (0008,0100) SH [122001]
            (0008,0102) SH [DCM]
            (0008,0104) LO [Time Range]
          (fffe,e00d) na (ItemDelimitationItem)
        (fffe,e0dd) na (SequenceDelimitationItem)
        (0040,a130) CS [MULTIPOINT]
        (0040,a13a) DT [20240302091000\20240302091030]
        (0040,a730) SQ (Sequence with undefined length #=1)
          (fffe,e000) na (Item with undefined length #=2)
            (0040,a010) CS [SELECTED FROM]
            (0040,db73) UL 1\2
          (fffe,e00d) na (ItemDelimitationItem)
        (fffe,e0dd) na (SequenceDelimitationItem)
      (fffe,e00d) na (ItemDelimitationItem)
    (fffe,e0dd) na (SequenceDelimitationItem)
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
"""


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sr")
    paths = sr_samples.write_all(folder)
    dump2dcm = require_tool("dump2dcm")
    dump = folder / "dcmtk_dump.txt"
    dump.write_text(DUMP.strip() + "\n", encoding="latin-1")
    out = folder / "dcmtk_dump.dcm"
    subprocess.run([dump2dcm, "+E", str(dump), str(out)], check=True, capture_output=True, timeout=30)
    paths["dcmtk_dump"] = out
    paths["offis_test_sr"] = Path(get_testdata_file("test-SR.dcm"))
    return paths


SAMPLE_NAMES = [*sr_samples.ALL_SAMPLES, "dcmtk_dump", "offis_test_sr"]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_content_tree_matches_dsrdump(sample_files: dict[str, Path], name: str) -> None:
    require_tool("dsrdump")
    path = sample_files[name]
    dump = run_dsrdump(path)
    doc = load_sr(path)
    assert doc.warnings == []
    assert our_lines(doc) == dump.items
    _check_rendering_follows_items(doc)


def _check_rendering_follows_items(doc: SRDocument) -> None:
    """The plain-text rendering shows every item's concept name and value, in document order."""
    text = render_text(doc)
    body = text.split("\n\n", 1)[1]
    cursor = 0
    for item in doc.items():
        if item.value_type == "CONTAINER":
            label = item.concept_name or "(untitled section)"
        else:
            label = item_label(item).splitlines()[0]
        found = body.find(label, cursor)
        assert found >= 0, f"item {item.position} ({label!r}) missing or out of order in the text rendering"
        cursor = found + len(label)
        if item.value_type == "NUM" and item.measurement and item.measurement.value:
            assert item.measurement.value in label
            if item.measurement.unit and item.measurement.unit.value != "1":
                assert item.measurement.unit.value in label


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_header_matches_dsrdump(sample_files: dict[str, Path], name: str) -> None:
    require_tool("dsrdump")
    path = sample_files[name]
    header = run_dsrdump(path).header
    doc = load_sr(path)
    h = doc.header
    assert header["Patient"][0].startswith(h.patient_name)
    if h.completion_flag:
        assert header["Completion Flag"][0] == h.completion_flag
        if h.completion_description:
            assert header["Completion Flag"][1] == h.completion_description
    if h.verification_flag:
        assert header["Verification Flag"][0] == h.verification_flag
    observers = header.get("Verifying Observers", [])
    assert len(observers) == len(h.verifying_observers)
    for line, observer in zip(observers, h.verifying_observers):
        assert observer.name in line and observer.organization in line
        dt = observer.datetime
        assert f"{dt[0:4]}-{dt[4:6]}-{dt[6:8]} {dt[8:10]}:{dt[10:12]}" in line
    content = header["Content Date/Time"][0]
    assert content.startswith(f"{h.content_date[0:4]}-{h.content_date[4:6]}-{h.content_date[6:8]}")


def test_samples_cover_every_value_type_and_relationship(sample_files: dict[str, Path]) -> None:
    docs = [load_sr(path) for path in sample_files.values()]
    value_types = {item.value_type for doc in docs for item in doc.items() if not item.is_by_reference}
    assert value_types == set(VALUE_TYPES)
    relationships = {item.relationship for doc in docs for item in doc.items()} - {""}
    assert relationships == {
        "CONTAINS",
        "HAS PROPERTIES",
        "INFERRED FROM",
        "HAS OBS CONTEXT",
        "HAS ACQ CONTEXT",
        "HAS CONCEPT MOD",
        "SELECTED FROM",
    }
    assert any(item.is_by_reference for doc in docs for item in doc.items())
    assert {"1500", "10011", "2010", "5200", "5100", "4000", "4100", "3001"} <= {doc.template_id for doc in docs}


def test_measurement_report_tables_and_links(sample_files: dict[str, Path]) -> None:
    doc = load_sr(sample_files["measurement_report"])
    assert doc.template_name == "Measurement Report (TID 1500)"
    rows = doc.measurements()
    assert [(r.section, r.name, r.value, r.unit) for r in rows] == [
        ("Measurement Group", "Long Axis", "21.3", "mm"),
        ("Measurement Group", "Short Axis", "14.8", "mm"),
        ("Measurement Group", "Attenuation Coefficient", "-12", "[hnsf'U]"),
        ("Measurement Group", "Ratio", "0.75", "1"),
    ]
    assert "Measurement Method: Manual" in rows[0].modifiers
    # The SCOORD links to the image it is selected from, carrying the circle to mark.
    links = doc.image_links()
    region_links = [link for link in links if link.region is not None]
    assert len(region_links) == 1
    link = region_links[0]
    assert link.sop_instance_uid == sr_samples.CT_UID and link.frame == 1
    assert link.region is not None and link.region.graphic_type == "CIRCLE"
    assert link.region.points == ((256.0, 256.0), (266.0, 256.0))
    html = render_html(doc)
    assert "<table class='m'>" in html and "Long Axis" in html and "21.3" in html
    assert "lightbox-image:" + sr_samples.CT_UID in html and "type=CIRCLE" in html


def test_dose_report_summary(sample_files: dict[str, Path]) -> None:
    doc = load_sr(sample_files["dose_report"])
    assert doc.class_name == "X-Ray Radiation Dose SR"
    values = {(r.section, r.name): (r.value, r.unit) for r in doc.measurements()}
    assert values[("CT Accumulated Dose Data", "CT Dose Length Product Total")] == ("512.34", "mGy.cm")
    assert values[("CT Dose", "Mean CTDIvol")] == ("8.91", "mGy")


def test_key_object_document(sample_files: dict[str, Path]) -> None:
    doc = load_sr(sample_files["key_objects"])
    assert doc.title == "Of Interest"
    assert [link.sop_instance_uid for link in doc.image_links()] == [sr_samples.CT_UID, sr_samples.MR_UID]
    assert "Nodule, best seen on these slices" in render_text(doc)


def test_header_flags_and_observers(sample_files: dict[str, Path]) -> None:
    doc = load_sr(sample_files["measurement_report"])
    h = doc.header
    assert (h.completion_flag, h.verification_flag) == ("COMPLETE", "VERIFIED")
    assert h.verifying_observers[0].name == "Radiologist^Rita"
    assert h.verifying_observers[0].code is not None and h.verifying_observers[0].code.value == "RR01"
    assert h.authors[0].name == "Author^Alan"
    text = render_text(doc)
    assert "Rita Radiologist, Lightbox General Hospital, 2024-03-01 11:00:00" in text
    partial = load_sr(sample_files["dcmtk_dump"])
    assert (partial.header.completion_flag, partial.header.completion_description) == ("PARTIAL", "preliminary read")
    assert format_person_name(partial.header.patient_name) == "Hans Möller"
