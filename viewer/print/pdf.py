"""The film sheet as PDF: one page per film at the film's true physical size, with a patient header.

Each page carries the same composed sheet the printer would get (layout, border and empty-box densities)
as one raster image filling the page, and the header text drawn as vector text above the images in a
band reserved at the top, so nothing is hidden under it.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from viewer import __version__
from viewer.print.film import film_size_mm
from viewer.print.job import PrintJob, Renderer, default_renderer
from viewer.print.render import PrintPixels

HEADER_MM = 12.0


def write_pdf(job: PrintJob, path: Path | str, *, renderer: Renderer = default_renderer, dpi: int | None = None) -> int:
    """Write every film of `job` to `path`; returns the number of pages (films)."""
    width_mm, height_mm = film_size_mm(job.preset.film_size, job.preset.orientation)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    pdf = canvas.Canvas(str(tmp), pagesize=(width_mm * mm, height_mm * mm), pageCompression=1)
    pdf.setTitle(job.title or "Lightbox film sheet")
    pdf.setCreator(f"Lightbox {__version__}")
    pdf.setAuthor("")
    sheets = job.sheets()
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    for sheet in sheets:
        # The page header carries the identification as text, so it is not burned into the boxes as well.
        composed = job.compose(
            sheet, renderer, dpi=dpi or min(job.preset.effective_dpi, 200), burn_identification=False
        )
        # The sheet image fills the page below the header band (aspect preserved, centred).
        area_w, area_h = width_mm, height_mm - HEADER_MM
        img_h, img_w = composed.array.shape[:2]
        scale = min(area_w / img_w, area_h / img_h)
        draw_w, draw_h = img_w * scale, img_h * scale
        pdf.setFillColorRGB(0, 0, 0)
        pdf.rect(0, 0, width_mm * mm, height_mm * mm, stroke=0, fill=1)
        pdf.drawImage(
            ImageReader(_png(composed)),
            (width_mm - draw_w) / 2 * mm,
            (area_h - draw_h) / 2 * mm,
            width=draw_w * mm,
            height=draw_h * mm,
        )
        _header(pdf, job, width_mm, height_mm, f"Film {sheet.index + 1} of {len(sheets)}  ·  {stamp}")
        pdf.showPage()
    pdf.save()
    tmp.replace(target)
    return len(sheets)


def _header(pdf: canvas.Canvas, job: PrintJob, width_mm: float, height_mm: float, right: str) -> None:
    pdf.setFillColorRGB(1, 1, 1)
    lines = job.header.lines() or ["(no patient information)"]
    y = (height_mm - 5.0) * mm
    pdf.setFont("Helvetica-Bold", 9)
    pdf.drawString(4 * mm, y, lines[0])
    pdf.setFont("Helvetica", 7)
    pdf.drawRightString((width_mm - 4) * mm, y, right)
    for line in lines[1:3]:
        y -= 3.5 * mm
        pdf.drawString(4 * mm, y, line)


def _png(pixels: PrintPixels) -> io.BytesIO:
    """8-bit PNG bytes of the composed sheet (PDF viewers and paper printers are 8-bit devices)."""
    from viewer.render.png import encode_png

    array = pixels.array
    if not pixels.is_color and pixels.bits != 8:
        array = np.rint(array.astype(np.float64) * 255.0 / ((1 << pixels.bits) - 1))
    return io.BytesIO(encode_png(array.astype(np.uint8)))
