"""'Export report': an SR document laid out as a PDF with reportlab (header table, section headings,
measurement tables, then the remaining items in document order)."""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from viewer.documents.sr import (
    RELATIONSHIP_LABELS,
    ContentItem,
    SRDocument,
    header_fields,
    is_row_detail,
    item_label,
    measurement_row,
)


def export_report_pdf(doc: SRDocument, target: Path | str | None = None) -> bytes:
    """Lay out `doc`; write it to `target` when given (atomically) and return the PDF bytes."""
    styles = getSampleStyleSheet()
    body = ParagraphStyle("srbody", parent=styles["BodyText"], fontSize=9.5, leading=12)
    small = ParagraphStyle("srsmall", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#444444"))
    headings = [styles["Heading2"], styles["Heading3"], styles["Heading4"], styles["Heading5"], styles["Heading6"]]
    story: list[Flowable] = [Paragraph(escape(doc.title), styles["Title"])]

    header = Table(
        [[Paragraph(f"<b>{escape(k)}</b>", small), Paragraph(escape(v), small)] for k, v in header_fields(doc)],
        colWidths=[40 * mm, 130 * mm],
        hAlign="LEFT",
    )
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    story += [header, Spacer(1, 6 * mm)]

    def table_for(items: list[ContentItem]) -> Table:
        rows = [["Measurement", "Value", "Unit", "Details"]]
        for num_item in items:
            mr = measurement_row(num_item, "")
            value = mr.value or mr.qualifier
            if mr.value and mr.qualifier:
                value += f" ({mr.qualifier})"
            rows.append([Paragraph(escape(mr.name), body), value, mr.unit, Paragraph(escape(mr.modifiers), small)])
        table = Table(rows, colWidths=[62 * mm, 24 * mm, 20 * mm, 64 * mm], hAlign="LEFT", repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6e6")),
                    ("FONTSIZE", (0, 0), (-1, -1), 9),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return table

    def add_table(items: list[ContentItem], level: int) -> None:
        story.append(table_for(items))
        for num_item in items:
            for child in num_item.children:
                if not is_row_detail(child):
                    visit(child, level + 2)

    def visit(item: ContentItem, level: int) -> None:
        if item.value_type == "CONTAINER" and not item.is_by_reference:
            if item.concept is not None and level > 0:
                story.append(Paragraph(escape(item.concept_name), headings[min(level - 1, len(headings) - 1)]))
        else:
            rel = ""
            if item.relationship and item.relationship != "CONTAINS":
                rel = f"<i>{escape(RELATIONSHIP_LABELS.get(item.relationship, item.relationship))}</i> "
            label = escape(item_label(item)).replace("\n", "<br/>")
            style = small if item.relationship in ("HAS OBS CONTEXT", "HAS ACQ CONTEXT", "HAS CONCEPT MOD") else body
            indent = ParagraphStyle(f"lvl{level}", parent=style, leftIndent=4 * mm * max(level - 1, 0))
            story.append(Paragraph(rel + label, indent))
        pending: list[ContentItem] = []
        for child in item.children:
            if child.value_type == "NUM" and child.relationship == "CONTAINS" and not child.is_by_reference:
                pending.append(child)
                continue
            if pending:
                add_table(pending, level)
                pending = []
            visit(child, level + 1)
        if pending:
            add_table(pending, level)
            story.append(Spacer(1, 2 * mm))

    visit(doc.root, 0)

    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=doc.title,
        author=doc.header.verifying_observers[0].name if doc.header.verifying_observers else "",
        subject=doc.class_name,
        creator="Lightbox",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
    ).build(story)
    data = buffer.getvalue()
    if target is not None:
        path = Path(target)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return data
