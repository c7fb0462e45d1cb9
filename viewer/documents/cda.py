"""Encapsulated CDA (1.2.840.10008.5.1.4.1.1.104.2): extract the HL7 CDA R2 XML and render it as HTML.

The rendering follows the CDA narrative block (paragraph, list, table, content, br, caption), which is what
a stylesheet would show; structured entries are not interpreted. External entities and DTDs are never
resolved: ElementTree does not fetch them, and documents declaring a DTD are refused outright.
"""

from __future__ import annotations

import base64
import html
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from viewer.documents.pdf import ENCAPSULATED_CDA, DocumentError, extract_encapsulated

NS = {"hl7": "urn:hl7-org:v3"}
_H = "{urn:hl7-org:v3}"


@dataclass
class CdaSection:
    title: str
    html: str  # the narrative block as HTML
    subsections: list[CdaSection] = field(default_factory=list)


@dataclass
class CdaDocument:
    title: str
    xml: str
    patient_name: str = ""
    patient_id: str = ""
    author: str = ""
    effective_time: str = ""
    custodian: str = ""
    sections: list[CdaSection] = field(default_factory=list)
    non_xml_body: tuple[str, bytes] | None = None  # (media type, decoded bytes) of a nonXMLBody

    def to_html(self) -> str:
        return render_cda_html(self)


def extract_cda(source: Path | str | Dataset) -> CdaDocument:
    doc = extract_encapsulated(source)
    if doc.sop_class_uid and doc.sop_class_uid != ENCAPSULATED_CDA:
        raise DocumentError(f"not an Encapsulated CDA object (SOP class {doc.sop_class_uid})")
    if doc.mime_type and doc.mime_type.strip().lower() not in ("text/xml", "application/xml"):
        raise DocumentError(f"the encapsulated document is {doc.mime_type!r}, not CDA XML")
    return parse_cda(doc.payload.rstrip(b"\x00 "))


def parse_cda(data: bytes) -> CdaDocument:
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data:
        raise DocumentError("the CDA document declares a DTD or entities, which are not accepted")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DocumentError(f"the encapsulated CDA is not well-formed XML: {exc}") from exc
    if root.tag != f"{_H}ClinicalDocument":
        raise DocumentError(f"the encapsulated XML is not an HL7 CDA ClinicalDocument (root <{root.tag}>)")
    xml_text = data.decode("utf-8", errors="replace")
    doc = CdaDocument(title=_text(root.find("hl7:title", NS)) or "Clinical Document", xml=xml_text)
    patient = root.find("hl7:recordTarget/hl7:patientRole", NS)
    if patient is not None:
        doc.patient_name = _name(patient.find("hl7:patient/hl7:name", NS))
        ident = patient.find("hl7:id", NS)
        doc.patient_id = ident.get("extension", "") if ident is not None else ""
    author = root.find("hl7:author/hl7:assignedAuthor", NS)
    if author is not None:
        doc.author = _name(author.find("hl7:assignedPerson/hl7:name", NS)) or _text(
            author.find("hl7:representedOrganization/hl7:name", NS)
        )
    time = root.find("hl7:effectiveTime", NS)
    doc.effective_time = time.get("value", "") if time is not None else ""
    doc.custodian = _text(
        root.find("hl7:custodian/hl7:assignedCustodian/hl7:representedCustodianOrganization/hl7:name", NS)
    )
    body = root.find("hl7:component/hl7:structuredBody", NS)
    if body is not None:
        doc.sections = [_section(s) for s in body.findall("hl7:component/hl7:section", NS)]
    non_xml = root.find("hl7:component/hl7:nonXMLBody/hl7:text", NS)
    if non_xml is not None:
        media = non_xml.get("mediaType", "text/plain")
        raw = (non_xml.text or "").strip()
        payload = base64.b64decode(raw) if non_xml.get("representation") == "B64" else raw.encode()
        doc.non_xml_body = (media, payload)
    return doc


def _text(element: ET.Element | None) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def _name(element: ET.Element | None) -> str:
    if element is None:
        return ""
    parts = [_text(element.find(f"hl7:{p}", NS)) for p in ("prefix", "given", "family", "suffix")]
    joined = " ".join(p for p in parts if p)
    return joined or _text(element)


def _section(element: ET.Element) -> CdaSection:
    text = element.find("hl7:text", NS)
    return CdaSection(
        title=_text(element.find("hl7:title", NS)),
        html=_narrative(text) if text is not None else "",
        subsections=[_section(s) for s in element.findall("hl7:component/hl7:section", NS)],
    )


_TAGS = {
    "paragraph": "p",
    "list": "ul",
    "item": "li",
    "table": "table",
    "thead": "thead",
    "tbody": "tbody",
    "tfoot": "tfoot",
    "tr": "tr",
    "td": "td",
    "th": "th",
    "caption": "b",
    "sub": "sub",
    "sup": "sup",
    "br": "br",
    "content": "span",
    "linkHtml": "span",
    "footnote": "small",
}


def _narrative(element: ET.Element) -> str:
    """CDA narrative block → HTML, keeping only known, harmless tags (never attributes or scripts)."""
    out: list[str] = []

    def walk(node: ET.Element) -> None:
        local = node.tag.replace(_H, "")
        tag = _TAGS.get(local)
        if local == "list" and node.get("listType") == "ordered":
            tag = "ol"
        if tag == "br":
            out.append("<br>")
        elif tag:
            extra = " border='1' cellspacing='0' cellpadding='3'" if tag == "table" else ""
            style = node.get("styleCode", "")
            if tag == "span" and "Bold" in style:
                tag = "b"
            elif tag == "span" and "Italics" in style:
                tag = "i"
            out.append(f"<{tag}{extra}>")
        if node.text:
            out.append(html.escape(node.text))
        for child in node:
            walk(child)
            if child.tail:
                out.append(html.escape(child.tail))
        if tag and tag != "br":
            out.append(f"</{tag}>")

    if element.text:
        out.append(html.escape(element.text))
    for child in element:
        walk(child)
        if child.tail:
            out.append(html.escape(child.tail))
    return "".join(out).strip()


def _format_ts(value: str) -> str:
    if len(value) >= 8 and value[:8].isdigit():
        date = f"{value[:4]}-{value[4:6]}-{value[6:8]}"
        if len(value) >= 12 and value[8:12].isdigit():
            return f"{date} {value[8:10]}:{value[10:12]}"
        return date
    return value


def render_cda_html(doc: CdaDocument) -> str:
    e = html.escape
    out = [f"<html><head><meta charset='utf-8'></head><body><h1>{e(doc.title)}</h1><table>"]
    for label, value in (
        ("Patient", f"{doc.patient_name} ({doc.patient_id})" if doc.patient_id else doc.patient_name),
        ("Author", doc.author),
        ("Date", _format_ts(doc.effective_time)),
        ("Custodian", doc.custodian),
    ):
        if value:
            out.append(f"<tr><td><b>{e(label)}:</b></td><td>{e(value)}</td></tr>")
    out.append("</table><hr>")

    def section(s: CdaSection, level: int) -> None:
        if s.title:
            out.append(f"<h{min(level, 6)}>{e(s.title)}</h{min(level, 6)}>")
        if s.html:
            out.append(f"<div>{s.html}</div>")
        for sub in s.subsections:
            section(sub, level + 1)

    for s in doc.sections:
        section(s, 2)
    if doc.non_xml_body is not None:
        media, payload = doc.non_xml_body
        if media.startswith("text/"):
            out.append(f"<pre>{e(payload.decode('utf-8', errors='replace'))}</pre>")
        else:
            out.append(f"<p><i>The document body is {e(media)} ({len(payload)} bytes); save it to view it.</i></p>")
    out.append("</body></html>")
    return "\n".join(out)
