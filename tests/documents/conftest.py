"""Documents made at test time: PDFs drawn with reportlab and wrapped by DCMTK pdf2dcm, CDA wrapped by cda2dcm."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest

from tests.support.net import require_tool

CDA_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <id root="1.2.826.0.1.3680043.8.498.3.1"/>
  <code code="18748-4" codeSystem="2.16.840.1.113883.6.1" displayName="Diagnostic Imaging Report"/>
  <title>CT Chest Report</title>
  <effectiveTime value="20240301113000"/>
  <recordTarget><patientRole><id extension="LB-0042" root="1.2.3"/>
    <patient><name><given>Jane</given><family>Doe</family></name></patient></patientRole></recordTarget>
  <author><time value="20240301"/><assignedAuthor><id root="1.2.3.4"/>
    <assignedPerson><name><prefix>Dr.</prefix><given>Rita</given><family>Radiologist</family></name></assignedPerson>
  </assignedAuthor></author>
  <custodian><assignedCustodian><representedCustodianOrganization><id root="1.2.3.5"/>
    <name>Lightbox General Hospital</name></representedCustodianOrganization></assignedCustodian></custodian>
  <component><structuredBody>
    <component><section><title>Findings</title>
      <text><paragraph>Spiculated <content styleCode="Bold">nodule</content> in the right upper lobe.</paragraph>
        <list><item>No effusion</item><item>No adenopathy</item></list>
        <table><thead><tr><th>Lesion</th><th>Size</th></tr></thead>
          <tbody><tr><td>RUL nodule</td><td>21 mm</td></tr></tbody></table>
        <paragraph>&lt;script&gt;alert(1)&lt;/script&gt;</paragraph></text>
    </section></component>
    <component><section><title>Impression</title><text>Suspicious for malignancy.</text></section></component>
  </structuredBody></component>
</ClinicalDocument>
"""


def make_pdf(path: Path, pages: list[str]) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for number, text in enumerate(pages, start=1):
        c.setFont("Helvetica", 14)
        c.drawString(72, 760, text)
        c.drawString(72, 740, f"Page {number} of {len(pages)}")
        c.setFillGray(0.2)
        c.rect(72, 300, 200, 150, fill=1)
        c.showPage()
    c.save()
    return path


def wrap_pdf(pdf: Path, out: Path, title: str) -> Path:
    tool = require_tool("pdf2dcm")
    subprocess.run(
        [tool, "+t", title, "+pn", "Doe^Jane", "+pi", "LB-0042", str(pdf), str(out)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out


@pytest.fixture(scope="session")
def pdf_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wrapped PDFs (1 and 3 pages) and broken variants built from a real pdf2dcm output."""
    folder = tmp_path_factory.mktemp("pdf")
    one = wrap_pdf(make_pdf(folder / "one.pdf", ["Lightbox single page report"]), folder / "one.dcm", "One page")
    three = wrap_pdf(
        make_pdf(folder / "three.pdf", ["Radiology report", "Findings: spiculated nodule", "Impression: biopsy"]),
        folder / "three.dcm",
        "Three pages",
    )
    objects = {"one": one, "three": three}
    for name, payload in (
        ("not_pdf", b"this is plain text, not a PDF document at all....."),
        ("truncated", (folder / "three.pdf").read_bytes()[:600]),
        ("garbled", b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"),
    ):
        ds = pydicom.dcmread(three)
        if len(payload) % 2:
            payload += b"\x00"
        ds.EncapsulatedDocument = payload
        if "EncapsulatedDocumentLength" in ds:
            del ds.EncapsulatedDocumentLength
        path = folder / f"{name}.dcm"
        ds.save_as(path)
        objects[name] = path
    return objects


@pytest.fixture(scope="session")
def cda_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tool = require_tool("cda2dcm")
    folder = tmp_path_factory.mktemp("cda")
    xml = folder / "report.xml"
    xml.write_text(CDA_XML, encoding="utf-8")
    out = folder / "report.dcm"
    subprocess.run([tool, "+t", "CT Chest Report", str(xml), str(out)], check=True, capture_output=True, timeout=30)
    return out
