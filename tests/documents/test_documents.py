"""Encapsulated PDF/CDA extraction, the tag browser model and SR export to PDF (no Qt)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pypdf import PdfReader

from tests.documents import sr_samples
from viewer.documents.cda import extract_cda
from viewer.documents.pdf import DocumentError, PdfDocument, extract_pdf
from viewer.documents.report_pdf import export_report_pdf
from viewer.documents.sr import render_html, sr_from_dataset
from viewer.documents.tags import filter_tree, load_tags, search_tags, tag_tree, tags_as_text


def test_pdf_payload_round_trips_exactly(pdf_objects: dict[str, Path], tmp_path: Path) -> None:
    original = (pdf_objects["three"].parent / "three.pdf").read_bytes()
    doc = extract_pdf(pdf_objects["three"])
    assert doc.payload == original
    assert doc.title == "Three pages" and doc.patient_name == "Doe^Jane"
    pdf = PdfDocument(doc.payload, doc.title)
    assert pdf.page_count == 3
    saved = pdf.save(tmp_path / "out.pdf")
    assert saved.read_bytes() == original
    pdf.close()


def test_pdf_render_and_search(pdf_objects: dict[str, Path]) -> None:
    pdf = PdfDocument.from_dicom(pdf_objects["three"])
    page = pdf.render_page(0, scale=0.5)
    width, height = pdf.page_sizes[0]
    assert page.shape[:2] == (round(height * 0.5), round(width * 0.5)) and page.shape[2] == 4
    dark = (page[..., :3] < 128).all(axis=2)
    assert dark.sum() > 1000  # the filled rectangle and the text
    assert "Findings: spiculated nodule" in pdf.page_text(1)
    hits = pdf.search("NODULE")
    assert [h.page for h in hits] == [1]
    x0, y0, x1, y1 = hits[0].rects[0]
    # drawString(72, 760) on an A4 page: the word sits near the top, right of the left margin.
    assert 72 < x0 < x1 < 400 and 60 < y0 < y1 < 110
    assert len(pdf.search("page")) == 3
    pdf.close()


@pytest.mark.parametrize(
    ("name", "message"),
    [("not_pdf", "not a PDF"), ("truncated", "truncated"), ("garbled", "cannot be opened")],
)
def test_invalid_pdf_payload_gives_clear_message(pdf_objects: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        PdfDocument.from_dicom(pdf_objects[name])


def test_non_pdf_objects_are_refused(cda_object: Path) -> None:
    with pytest.raises(DocumentError, match="not an Encapsulated PDF"):
        extract_pdf(cda_object)
    with pytest.raises(DocumentError, match="no Encapsulated Document"):
        extract_pdf(get_testdata_file("CT_small.dcm"))


def test_cda_extracted_and_rendered(cda_object: Path) -> None:
    doc = extract_cda(cda_object)
    assert doc.title == "CT Chest Report"
    assert (doc.patient_name, doc.patient_id) == ("Jane Doe", "LB-0042")
    assert doc.author == "Dr. Rita Radiologist" and doc.custodian == "Lightbox General Hospital"
    assert [s.title for s in doc.sections] == ["Findings", "Impression"]
    html = doc.to_html()
    assert "<b>nodule</b>" in html and "<li>No effusion</li>" in html and "<td>21 mm</td>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "2024-03-01 11:30" in html


def test_tag_browser_tree_and_search() -> None:
    nodes = load_tags(get_testdata_file("CT_small.dcm"))
    assert nodes[0].tag == "(0002,0000)"  # file meta first
    hits = search_tags(nodes, "0010,0010")
    assert [h.keyword for h in hits] == ["PatientName"]
    assert hits[0].value == "CompressedSamples^CT1"
    # Other Patient IDs Sequence items carry their own Patient ID: found at depth, with their paths.
    assert [(h.path, h.value) for h in search_tags(nodes, "00100020")] == [
        ("(0010,0020)", "1CT1"),
        ("(0010,1002)[0](0010,0020)", "ABCD1234"),
        ("(0010,1002)[1](0010,0020)", "1234ABCD"),
    ]
    assert "PatientBirthDate" in {h.keyword for h in search_tags(nodes, "birth")}
    private = [h for h in search_tags(nodes, "GEMS_IDEN_01") if h.tag != "(0009,0010)"]
    assert private and all(h.private_creator == "GEMS_IDEN_01" for h in private)
    assert any(h.name == "Full fidelity" for h in private)
    assert "<" in search_tags(nodes, "7FE0,0010")[0].value  # pixel data summarised, not dumped


def test_tag_browser_nested_sequences_and_filter() -> None:
    ds = sr_samples.measurement_report()
    nodes = tag_tree(ds)
    hits = search_tags(nodes, "Long Axis")
    assert len(hits) == 1 and hits[0].keyword == "CodeMeaning"
    # The path names every sequence and item on the way down.
    assert hits[0].path.count("(0040,A730)") == 3 and hits[0].path.endswith("(0008,0104)")
    pruned = filter_tree(nodes, "Long Axis")
    flat = [n for root in pruned for n in root.walk()]
    assert [n.tag for n in flat if not n.is_item][-1] == "(0008,0104)"
    assert len(flat) < 20
    assert "Long Axis" in tags_as_text(pruned)


def test_export_report_pdf(tmp_path: Path) -> None:
    doc = sr_from_dataset(sr_samples.measurement_report())
    target = tmp_path / "report.pdf"
    data = export_report_pdf(doc, target)
    assert target.read_bytes() == data
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(page.extract_text() for page in reader.pages)
    for expected in ("Imaging Measurement Report", "Long Axis", "21.3", "Short Axis", "Rita Radiologist", "Lesion 1"):
        assert expected in text
    assert reader.metadata is not None and reader.metadata.title == "Imaging Measurement Report"
    # Our own PDF view opens it too.
    assert PdfDocument(data).page_count == len(reader.pages) >= 1


def test_measurement_children_stay_reachable_in_renderings() -> None:
    """A NUM's SCOORD (with its image link) is shown after the measurement table, in HTML and PDF."""
    doc = sr_from_dataset(sr_samples.enhanced())
    html = render_html(doc)
    assert "type=POLYLINE" in html and "points=10.5,20.25;30,40.75;50,20.25" in html
    assert "Measurement Method: Caliper" in html  # a simple modifier stays in the row
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(export_report_pdf(doc))).pages)
    assert "Image Region" in text and "Polyline" in text and "Measurement failure" in text
