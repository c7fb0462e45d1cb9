"""Encapsulated PDF (1.2.840.10008.5.1.4.1.1.104.1): extract, validate, render pages, search text.

Rendering uses pypdfium2 (PDFium, the engine in Chromium): an 8 MB wheel with a permissive licence, lighter
than PySide6-Addons' QtPdf and without PyMuPDF's AGPL. Pages come back as RGBA numpy arrays so the Qt layer
only wraps them in a QImage.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
ENCAPSULATED_CDA = "1.2.840.10008.5.1.4.1.1.104.2"

# PDF readers accept a header anywhere in the first 1 KiB (ISO 32000-1, annex H.3 note 3).
_HEADER_WINDOW = 1024


class DocumentError(ValueError):
    """The object does not hold a usable document; the message is meant for the user."""


@dataclass(frozen=True)
class EncapsulatedDocument:
    sop_class_uid: str
    sop_instance_uid: str
    mime_type: str
    payload: bytes
    title: str
    patient_name: str = ""
    patient_id: str = ""
    content_date: str = ""
    source_uid: str = ""  # Source Instance Sequence, e.g. the SR this PDF was rendered from


def read_dataset(source: Path | str | Dataset) -> Dataset:
    if isinstance(source, Dataset):
        return source
    try:
        return pydicom.dcmread(source)
    except Exception as exc:
        raise DocumentError(f"cannot read {Path(source).name}: {exc}") from exc


def extract_encapsulated(source: Path | str | Dataset) -> EncapsulatedDocument:
    """The Encapsulated Document payload with its padding removed (no validation of the content)."""
    ds = read_dataset(source)
    if "EncapsulatedDocument" not in ds:
        raise DocumentError("the object has no Encapsulated Document (0042,0011) payload")
    payload = bytes(ds.EncapsulatedDocument or b"")
    length = ds.get("EncapsulatedDocumentLength")
    if length is not None and 0 < int(length) <= len(payload):
        payload = payload[: int(length)]
    elif payload.endswith(b"\x00"):
        # Without a declared length, the even-length padding byte is the only trailing NUL we may drop.
        payload = payload[:-1]
    source_uid = ""
    for src in ds.get("SourceInstanceSequence") or []:
        source_uid = str(src.get("ReferencedSOPInstanceUID", ""))
        break
    return EncapsulatedDocument(
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        mime_type=str(ds.get("MIMETypeOfEncapsulatedDocument", "")),
        payload=payload,
        title=str(ds.get("DocumentTitle", "") or ds.get("SeriesDescription", "") or "Document"),
        patient_name=str(ds.get("PatientName", "")),
        patient_id=str(ds.get("PatientID", "")),
        content_date=str(ds.get("ContentDate", "")),
        source_uid=source_uid,
    )


def extract_pdf(source: Path | str | Dataset) -> EncapsulatedDocument:
    """The PDF inside an Encapsulated PDF object; raises `DocumentError` when it is not a readable PDF."""
    doc = extract_encapsulated(source)
    if doc.sop_class_uid and doc.sop_class_uid != ENCAPSULATED_PDF:
        raise DocumentError(f"not an Encapsulated PDF object (SOP class {doc.sop_class_uid})")
    if doc.mime_type and doc.mime_type.strip().lower() != "application/pdf":
        raise DocumentError(f"the encapsulated document is {doc.mime_type!r}, not a PDF")
    check_pdf_bytes(doc.payload)
    return doc


def check_pdf_bytes(data: bytes) -> None:
    if not data:
        raise DocumentError("the encapsulated PDF is empty")
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise DocumentError("the encapsulated document is not a PDF (no %PDF- header)")
    if b"%%EOF" not in data[-_HEADER_WINDOW:]:
        raise DocumentError("the encapsulated PDF is truncated (no %%EOF marker at the end)")


@dataclass(frozen=True)
class TextMatch:
    page: int  # 0-based
    rects: tuple[tuple[float, float, float, float], ...]  # page points, origin top-left: (x0, y0, x1, y1)
    text: str


def _close_pdfium(handle: Any, lock: threading.RLock) -> None:
    with lock:
        handle.close()


_open_documents: weakref.WeakSet[PdfDocument] = weakref.WeakSet()
_exit_hook: list[bool] = []


def _close_at_exit(document: PdfDocument) -> None:
    # Registered after pypdfium2 is imported, so (exit hooks run last-in, first-out) before its own.
    if not _exit_hook:
        atexit.register(lambda: [d.close() for d in list(_open_documents)])
        _exit_hook.append(True)
    _open_documents.add(document)


class PdfDocument:
    """An opened PDF. PDFium is not thread-safe, so every call holds one process-wide lock."""

    _lock = threading.RLock()

    def __init__(self, data: bytes, title: str = "") -> None:
        import pypdfium2 as pdfium

        check_pdf_bytes(data)
        self.data = data
        self.title = title
        with self._lock:
            try:
                self._pdf = pdfium.PdfDocument(data)
                self.page_count = len(self._pdf)
                self.page_sizes = [self._pdf.get_page_size(i) for i in range(self.page_count)]
            except pdfium.PdfiumError as exc:
                raise DocumentError(f"the encapsulated PDF cannot be opened: {exc}") from exc
        # Closed when this object goes, or at exit before pypdfium2's own exit hook (which reports what it
        # finds open as leaked), if nobody called close().
        self._closer = weakref.finalize(self, _close_pdfium, self._pdf, self._lock)
        _close_at_exit(self)
        if self.page_count == 0:
            raise DocumentError("the encapsulated PDF has no pages")

    @classmethod
    def from_dicom(cls, source: Path | str | Dataset) -> PdfDocument:
        doc = extract_pdf(source)
        return cls(doc.payload, doc.title)

    def close(self) -> None:
        self._closer()

    def render_page(self, index: int, scale: float = 1.0) -> np.ndarray:
        """Page `index` as an (H, W, 4) uint8 RGBA array; scale 1.0 = 72 dpi."""
        with self._lock:
            page = self._pdf[index]
            try:
                bitmap = page.render(
                    scale=scale, rev_byteorder=True, fill_color=(255, 255, 255, 255), may_draw_forms=True
                )
                array = bitmap.to_numpy()
                if array.ndim == 3 and array.shape[2] == 3:
                    array = np.dstack([array, np.full(array.shape[:2], 255, np.uint8)])
                return np.ascontiguousarray(array)
            finally:
                page.close()

    def page_text(self, index: int) -> str:
        with self._lock:
            page = self._pdf[index]
            try:
                textpage = page.get_textpage()
                try:
                    return textpage.get_text_range()
                finally:
                    textpage.close()
            finally:
                page.close()

    def search(self, query: str, *, match_case: bool = False) -> list[TextMatch]:
        """Every occurrence of `query`, page by page, with its boxes in top-left page coordinates."""
        if not query:
            return []
        results: list[TextMatch] = []
        with self._lock:
            for index in range(self.page_count):
                page = self._pdf[index]
                height = self.page_sizes[index][1]
                try:
                    textpage = page.get_textpage()
                    try:
                        searcher = textpage.search(query, match_case=match_case)
                        while (hit := searcher.get_next()) is not None:
                            start, count = hit
                            boxes = []
                            for r in range(textpage.count_rects(start, count)):
                                left, bottom, right, top = textpage.get_rect(r)
                                boxes.append((left, height - top, right, height - bottom))
                            results.append(TextMatch(index, tuple(boxes), textpage.get_text_range(start, count)))
                        searcher.close()
                    finally:
                        textpage.close()
                finally:
                    page.close()
        return results

    def save(self, path: Path | str) -> Path:
        """Write the original PDF bytes (not a re-encoding) atomically."""
        target = Path(path)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(self.data)
        tmp.replace(target)
        return target
