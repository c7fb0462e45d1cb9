"""DICOM Print SCU: one association per print session, Basic Grayscale / Color Print Management.

Sequence (after the Enterprise Imaging and Xcelera print SCUs, superset of both):
A-ASSOCIATE (Grayscale and/or Color meta, Presentation LUT, Basic Annotation Box, Print Job) →
Printer N-GET (FAILURE refuses to print, WARNING is reported) → Presentation LUT N-CREATE (if used) →
Film Session N-CREATE → per film: Film Box N-CREATE → Image Box N-SET per box → Annotation Box N-SET →
N-ACTION (film box, or once on the session) → N-DELETE → release.  N-EVENT-REPORTs from the printer are
answered and reported.  Every non-success status is explained in plain words (viewer.print.statuses).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    BasicAnnotationBox,
    BasicColorImageBox,
    BasicColorPrintManagementMeta,
    BasicFilmBox,
    BasicFilmSession,
    BasicGrayscaleImageBox,
    BasicGrayscalePrintManagementMeta,
    PresentationLUT,
    Printer,
    PrinterInstance,
    PrintJob,
)

from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, new_uid
from viewer.core.settings import PrinterSettings
from viewer.print.job import FilmPayload, PrintPreset
from viewer.print.render import PrintPixels, to_grayscale, to_rgb
from viewer.print.statuses import (
    FAILURE,
    PRINT_JOB_EVENTS,
    PRINTER_EVENTS,
    PRINTER_STATUS_INFO,
    WARNING,
    explain_printer_status,
    explain_status,
    status_category,
)

log = logging.getLogger(__name__)

TAG_PRINTER_STATUS = Tag(0x2110, 0x0010)
TAG_PRINTER_STATUS_INFO = Tag(0x2110, 0x0020)
PRINTER_NAME = Tag(0x2110, 0x0030)
MANUFACTURER = Tag(0x0008, 0x0070)
MODEL_NAME = Tag(0x0008, 0x1090)
EXECUTION_STATUS = Tag(0x2100, 0x0020)
EXECUTION_STATUS_INFO = Tag(0x2100, 0x0030)

ProgressCallback = Callable[[str, float], None]


class PrintFailed(Exception):
    """The print did not happen (or not completely); `str()` is the message for the user."""

    def __init__(self, message: str, *, status: int | None = None, films_printed: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.films_printed = films_printed


@dataclass
class PrintResult:
    films_printed: int = 0
    warnings: list[str] = field(default_factory=list)
    printer_status: str = ""
    printer_status_info: str = ""
    printer_name: str = ""
    events: list[str] = field(default_factory=list)
    color: bool = False
    presentation_lut: bool = False
    annotation_box: bool = False
    print_job_uids: list[str] = field(default_factory=list)


@dataclass
class _Session:
    assoc: Any
    meta: str
    image_box_class: str
    result: PrintResult
    on_progress: ProgressCallback | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self, message: str, fraction: float) -> None:
        log.info("print: %s", message)
        if self.on_progress is not None:
            self.on_progress(message, fraction)

    def check(self, status: Dataset, what: str, *, films_printed: int = 0) -> int:
        """Record a warning, or raise PrintFailed for a failure or a missing response."""
        if "Status" not in status:
            raise PrintFailed(
                f"{what}: the printer did not answer (connection lost or timed out).", films_printed=films_printed
            )
        code = int(status.Status)
        category = status_category(code)
        if category == FAILURE:
            detail = _status_detail(status)
            raise PrintFailed(f"{what}: {explain_status(code)}{detail}", status=code, films_printed=films_printed)
        if category == WARNING:
            with self.lock:
                self.result.warnings.append(f"{what}: {explain_status(code)}")
        return code


def _status_detail(status: Dataset) -> str:
    """The printer's own Error Comment and Offending Element(s), when it sends them."""
    parts: list[str] = []
    comment = str(status.get("ErrorComment", "") or "").strip()
    if comment:
        parts.append(f"printer says: {comment}")
    offending = status.get("OffendingElement")
    if offending:
        from pydicom.datadict import keyword_for_tag

        tags = (
            offending
            if isinstance(offending, list | tuple) or type(offending).__name__ == "MultiValue"
            else [offending]
        )
        names = [keyword_for_tag(int(tag)) or f"({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X})" for tag in tags]
        parts.append("offending attribute(s): " + ", ".join(names))
    return f" [{'; '.join(parts)}]" if parts else ""


def print_films(
    printer: PrinterSettings,
    preset: PrintPreset,
    films: Iterable[FilmPayload],
    *,
    calling_ae: str = "LIGHTBOX",
    color: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    timeout_s: float = 60.0,
    max_pdu: int = 65536,
    on_progress: ProgressCallback | None = None,
    on_event: Callable[[str], None] | None = None,
    film_count: int | None = None,
) -> PrintResult:
    """Print the films in one film session on one association; raises PrintFailed on any failure.

    `films` may be a lazy iterable (rendering happens while the association is open, one film at a time,
    so a long series never has all its pixels in memory at once).
    """
    result = PrintResult()
    ae = AE(ae_title=(calling_ae or "LIGHTBOX")[:16])
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    ae.maximum_pdu_size = max_pdu
    syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    ae.add_requested_context(BasicGrayscalePrintManagementMeta, syntaxes)
    if color:
        ae.add_requested_context(BasicColorPrintManagementMeta, syntaxes)
    if preset.use_presentation_lut:
        ae.add_requested_context(PresentationLUT, syntaxes)
    if preset.annotation_box or preset.identify_patient:
        ae.add_requested_context(BasicAnnotationBox, syntaxes)
    ae.add_requested_context(PrintJob, syntaxes)

    events_lock = threading.Lock()

    def on_event_report(event: Any) -> tuple[int, Dataset | None]:
        message = _describe_event(event)
        with events_lock:
            result.events.append(message)
        log.info("print: %s", message)
        if on_event is not None:
            on_event(message)
        return 0x0000, None

    kwargs: dict[str, Any] = {
        "ae_title": printer.ae_title,
        "max_pdu": max_pdu,
        "evt_handlers": [(evt.EVT_N_EVENT_REPORT, on_event_report)],
    }
    if ssl_context is not None:
        kwargs["tls_args"] = (ssl_context, printer.host)
    if on_progress is not None:
        on_progress(f"Connecting to {printer.name or printer.ae_title} ({printer.host}:{printer.port})", 0.0)
    try:
        assoc = ae.associate(printer.host, int(printer.port), **kwargs)
    except (OSError, ssl.SSLError) as exc:
        raise PrintFailed(f"Could not connect to the printer at {printer.host}:{printer.port}: {exc}") from exc
    if not assoc.is_established:
        if assoc.is_rejected:
            raise PrintFailed(
                f"The printer {printer.ae_title} at {printer.host}:{printer.port} refused the connection "
                "(association rejected: check the printer's AE title and that it accepts our AE title)."
            )
        raise PrintFailed(
            f"Could not connect to the printer {printer.ae_title} at {printer.host}:{printer.port} "
            "(no answer, or the connection was aborted)."
        )
    try:
        return _run_session(assoc, printer, preset, films, color, result, on_progress, film_count)
    except PrintFailed:
        if assoc.is_established:
            assoc.abort()
        raise
    except Exception as exc:
        if assoc.is_established:
            assoc.abort()
        raise PrintFailed(f"Printing stopped by an unexpected error: {exc}") from exc
    finally:
        if assoc.is_established:
            assoc.release()


def _accepted(assoc: Any, uid: str) -> bool:
    return any(cx.abstract_syntax == uid for cx in assoc.accepted_contexts)


def _run_session(
    assoc: Any,
    printer: PrinterSettings,
    preset: PrintPreset,
    films: Iterable[FilmPayload],
    color: bool,
    result: PrintResult,
    on_progress: ProgressCallback | None,
    film_count: int | None,
) -> PrintResult:
    use_color = color and _accepted(assoc, BasicColorPrintManagementMeta)
    if not use_color and not _accepted(assoc, BasicGrayscalePrintManagementMeta):
        raise PrintFailed(f"The printer {printer.ae_title} does not accept grayscale (or colour) print management.")
    if color and not use_color:
        result.warnings.append("The printer does not accept colour printing; colour images are printed in grayscale.")
    meta = BasicColorPrintManagementMeta if use_color else BasicGrayscalePrintManagementMeta
    session = _Session(assoc, meta, BasicColorImageBox if use_color else BasicGrayscaleImageBox, result, on_progress)
    result.color = use_color

    _check_printer(session)

    plut_uid = None
    if preset.use_presentation_lut:
        if _accepted(assoc, PresentationLUT) and not use_color:
            plut_uid = new_uid()
            plut = Dataset()
            plut.PresentationLUTShape = "IDENTITY"
            status, _ = assoc.send_n_create(plut, PresentationLUT, plut_uid)
            session.check(status, "Creating the Presentation LUT")
            result.presentation_lut = True
        elif not use_color:
            result.warnings.append(
                "The printer does not support Presentation LUTs; it uses its own calibration "
                "(set a perception LUT in Configuration Information if needed)."
            )
    want_annotations = (preset.annotation_box or preset.identify_patient) and _accepted(assoc, BasicAnnotationBox)
    if preset.annotation_box and not want_annotations:
        result.warnings.append(
            "The printer does not support annotation boxes; "
            + (
                "the patient identification is burned into the images instead."
                if preset.identify_patient
                else "films are printed without them."
            )
        )
    result.annotation_box = want_annotations

    session_uid = new_uid()
    film_session = Dataset()
    film_session.NumberOfCopies = str(preset.copies)
    if preset.priority:
        film_session.PrintPriority = preset.priority
    if preset.medium_type:
        film_session.MediumType = preset.medium_type
    if preset.film_destination:
        film_session.FilmDestination = preset.film_destination
    if preset.session_label:
        film_session.FilmSessionLabel = preset.session_label[:64]
    status, _ = assoc.send_n_create(film_session, BasicFilmSession, session_uid, meta_uid=meta)
    session.check(
        status,
        f"Creating the film session ({preset.copies} copies, priority {preset.priority or 'default'}, "
        f"medium {preset.medium_type or 'default'}, destination {preset.film_destination or 'default'})",
    )

    created_boxes: list[str] = []
    total = film_count or 0
    for index, film in enumerate(films):
        label = f"Film {index + 1}" + (f" of {total}" if total else "")
        fraction = index / total if total else 0.0
        session.progress(f"{label}: sending", 0.1 + 0.85 * fraction)
        box_uid = _send_film(session, preset, film, session_uid, plut_uid, want_annotations, label, index)
        created_boxes.append(box_uid)
        if not preset.print_per_session:
            status, attrs = assoc.send_n_action(None, 1, BasicFilmBox, box_uid, meta_uid=meta)
            session.check(status, f"{label}: printing", films_printed=result.films_printed)
            _record_print_job(session, attrs)
            result.films_printed += 1
            status = assoc.send_n_delete(BasicFilmBox, box_uid, meta_uid=meta)
            session.check(status, f"{label}: clean-up", films_printed=result.films_printed)
    if not created_boxes:
        raise PrintFailed("There was nothing to print.")
    if preset.print_per_session:
        status, attrs = assoc.send_n_action(None, 1, BasicFilmSession, session_uid, meta_uid=meta)
        session.check(status, "Printing the film session")
        _record_print_job(session, attrs)
        result.films_printed = len(created_boxes)
    status = assoc.send_n_delete(BasicFilmSession, session_uid, meta_uid=meta)
    session.check(status, "Deleting the film session", films_printed=result.films_printed)
    if plut_uid is not None:
        status = assoc.send_n_delete(PresentationLUT, plut_uid)
        session.check(status, "Deleting the Presentation LUT", films_printed=result.films_printed)
    _poll_print_jobs(session)
    session.progress(f"Printed {result.films_printed} film(s)", 1.0)
    return result


def _check_printer(session: _Session) -> None:
    assoc, result = session.assoc, session.result
    session.progress("Asking the printer for its status", 0.05)
    attrs: Dataset | None = None
    status = Dataset()
    # Printers differ in which optional Printer attributes they know; a refusal of the long list
    # (0x0105 no such attribute) is retried with the two every printer must support.
    for wanted in (
        [TAG_PRINTER_STATUS, TAG_PRINTER_STATUS_INFO, PRINTER_NAME, MANUFACTURER, MODEL_NAME],
        [TAG_PRINTER_STATUS, TAG_PRINTER_STATUS_INFO],
    ):
        status, attrs = assoc.send_n_get(wanted, Printer, PrinterInstance, meta_uid=session.meta)
        if "Status" not in status or int(status.Status) != 0x0105:
            break
    session.check(status, "Checking the printer status")
    attrs = attrs or Dataset()
    result.printer_status = str(attrs.get("PrinterStatus", "") or "").upper()
    result.printer_status_info = str(attrs.get("PrinterStatusInfo", "") or "")
    result.printer_name = str(attrs.get("PrinterName", "") or "")
    explained = explain_printer_status(result.printer_status, result.printer_status_info)
    if result.printer_status == "FAILURE":
        raise PrintFailed(f"Not printing: {explained}")
    if result.printer_status == "WARNING":
        result.warnings.append(explained)


def _send_film(
    session: _Session,
    preset: PrintPreset,
    film: FilmPayload,
    session_uid: str,
    plut_uid: str | None,
    want_annotations: bool,
    label: str,
    index: int,
) -> str:
    assoc, meta = session.assoc, session.meta
    film_box = Dataset()
    film_box.ImageDisplayFormat = film.display_format
    film_box.FilmOrientation = preset.orientation
    film_box.FilmSizeID = preset.film_size
    if preset.magnification:
        film_box.MagnificationType = preset.magnification
        if preset.smoothing and preset.magnification == "CUBIC":
            film_box.SmoothingType = preset.smoothing
    if preset.border_density:
        film_box.BorderDensity = preset.border_density
    if preset.empty_image_density:
        film_box.EmptyImageDensity = preset.empty_image_density
    if preset.min_density is not None:
        film_box.MinDensity = int(preset.min_density)
    if preset.max_density is not None:
        film_box.MaxDensity = int(preset.max_density)
    if preset.trim:
        film_box.Trim = preset.trim
    if preset.configuration_information:
        film_box.ConfigurationInformation = preset.configuration_information
    if preset.requested_resolution:
        film_box.RequestedResolutionID = preset.requested_resolution
    if want_annotations and preset.annotation_format_id:
        film_box.AnnotationDisplayFormatID = preset.annotation_format_id
    ref = Dataset()
    ref.ReferencedSOPClassUID = BasicFilmSession
    ref.ReferencedSOPInstanceUID = session_uid
    film_box.ReferencedFilmSessionSequence = [ref]
    if plut_uid is not None:
        film_box.Illumination = int(preset.illumination)
        film_box.ReflectedAmbientLight = int(preset.reflected_ambient_light)
        plut_ref = Dataset()
        plut_ref.ReferencedSOPClassUID = PresentationLUT
        plut_ref.ReferencedSOPInstanceUID = plut_uid
        film_box.ReferencedPresentationLUTSequence = [plut_ref]
    box_uid = new_uid()
    status, attrs = assoc.send_n_create(film_box, BasicFilmBox, box_uid, meta_uid=meta)
    session.check(status, f"{label}: creating the film box ({preset.film_size} {film.display_format})")
    attrs = attrs or Dataset()
    image_boxes = list(attrs.get("ReferencedImageBoxSequence", []))
    if len(image_boxes) < len(film.images):
        raise PrintFailed(
            f"{label}: the printer created {len(image_boxes)} image boxes for {film.display_format}, "
            f"but the film has {len(film.images)} positions."
        )
    texts = _annotation_texts(film.annotations, len(attrs.get("ReferencedBasicAnnotationBoxSequence", [])))
    # The identification goes into the printer's annotation boxes when it made enough of them for the
    # whole text; otherwise it is burned into the image boxes (the images left room for it).
    annotated = want_annotations and texts is not None
    images = film.images if annotated or not preset.identify_patient else film.burned()
    for position, (box_ref, image) in enumerate(zip(image_boxes, images), start=1):
        if image is None:
            continue  # left empty: the printer fills it with the Empty Image Density
        request = _image_box_dataset(
            session.image_box_class, position, image, preset, film.requested_sizes_mm[position - 1]
        )
        status, _ = assoc.send_n_set(request, session.image_box_class, box_ref.ReferencedSOPInstanceUID, meta_uid=meta)
        session.check(status, f"{label}, image {position}")
    if annotated:
        for position, (ann_ref, text) in enumerate(
            zip(attrs.get("ReferencedBasicAnnotationBoxSequence", []), texts or []), start=1
        ):
            annotation = Dataset()
            annotation.AnnotationPosition = position
            annotation.TextString = text
            status, _ = assoc.send_n_set(
                annotation, BasicAnnotationBox, ann_ref.ReferencedSOPInstanceUID, meta_uid=meta
            )
            session.check(status, f"{label}, annotation {position}")
    return box_uid


def _annotation_texts(lines: list[str], boxes: int) -> list[str] | None:
    """The lines packed into `boxes` Text Strings of at most 64 characters (LO, PS3.3 C.13.7), or None when
    they do not fit (then the text is burned into the images rather than cut)."""
    lines = [line for line in lines if line]
    if not lines or boxes < 1:
        return None
    if len(lines) > boxes:
        lines = [*lines[: boxes - 1], "  ".join(lines[boxes - 1 :])]
    return lines if all(len(line) <= 64 for line in lines) else None


def _image_box_dataset(
    image_box_class: str, position: int, image: PrintPixels, preset: PrintPreset, requested_mm: float | None
) -> Dataset:
    ds = Dataset()
    ds.ImageBoxPosition = position
    if requested_mm:
        ds.RequestedImageSize = f"{requested_mm:.2f}"
    if preset.decimate_crop:
        ds.RequestedDecimateCropBehavior = preset.decimate_crop
    pixel_item = Dataset()
    if image_box_class == BasicColorImageBox:
        rgb = to_rgb(image).array
        pixel_item.SamplesPerPixel = 3
        pixel_item.PhotometricInterpretation = "RGB"
        pixel_item.PlanarConfiguration = 1  # colour-by-plane, required for the Color Image Box
        pixel_item.Rows, pixel_item.Columns = int(rgb.shape[0]), int(rgb.shape[1])
        pixel_item.PixelAspectRatio = [1, 1]
        pixel_item.BitsAllocated, pixel_item.BitsStored, pixel_item.HighBit = 8, 8, 7
        pixel_item.PixelRepresentation = 0
        data = np.ascontiguousarray(np.moveaxis(rgb, 2, 0)).tobytes()
        pixel_item.add_new(0x7FE00010, "OB", data + (b"\0" if len(data) % 2 else b""))
        ds.BasicColorImageSequence = [pixel_item]
        return ds
    if preset.polarity:
        ds.Polarity = preset.polarity
    bits = 12 if preset.bits == 12 else 8
    gray = to_grayscale(image, bits).array
    pixel_item.SamplesPerPixel = 1
    pixel_item.PhotometricInterpretation = "MONOCHROME2"
    pixel_item.Rows, pixel_item.Columns = int(gray.shape[0]), int(gray.shape[1])
    pixel_item.PixelAspectRatio = [1, 1]
    pixel_item.PixelRepresentation = 0
    if bits == 12:
        pixel_item.BitsAllocated, pixel_item.BitsStored, pixel_item.HighBit = 16, 12, 11
        pixel_item.add_new(0x7FE00010, "OW", np.ascontiguousarray(gray.astype("<u2")).tobytes())
    else:
        pixel_item.BitsAllocated, pixel_item.BitsStored, pixel_item.HighBit = 8, 8, 7
        data = np.ascontiguousarray(gray.astype(np.uint8)).tobytes()
        pixel_item.add_new(0x7FE00010, "OB", data + (b"\0" if len(data) % 2 else b""))
    ds.BasicGrayscaleImageSequence = [pixel_item]
    return ds


def _record_print_job(session: _Session, attrs: Dataset | None) -> None:
    for item in (attrs or Dataset()).get("ReferencedPrintJobSequence", []):
        uid = str(item.get("ReferencedSOPInstanceUID", ""))
        if uid:
            session.result.print_job_uids.append(uid)


def _poll_print_jobs(session: _Session) -> None:
    """One Print Job N-GET per job the printer created, when it supports the Print Job class."""
    if not session.result.print_job_uids or not _accepted(session.assoc, PrintJob):
        return
    for uid in session.result.print_job_uids:
        status, attrs = session.assoc.send_n_get([EXECUTION_STATUS, EXECUTION_STATUS_INFO], PrintJob, uid)
        if "Status" not in status or status_category(int(status.Status)) == FAILURE or attrs is None:
            continue
        state = str(attrs.get("ExecutionStatus", "") or "")
        info = str(attrs.get("ExecutionStatusInfo", "") or "")
        if state == "FAILURE":
            session.result.warnings.append(f"The printer reports the print job failed: {info or 'no reason given'}.")
        elif state:
            session.result.events.append(f"Print job {state.lower()}" + (f" ({info})" if info else ""))


def _describe_event(event: Any) -> str:
    request = event.request
    sop_class = str(getattr(request, "AffectedSOPClassUID", "") or "")
    event_type = int(getattr(request, "EventTypeID", 0) or 0)
    info = Dataset()
    try:
        info = event.event_information or Dataset()
    except Exception:
        pass
    if sop_class == Printer:
        state = PRINTER_EVENTS.get(event_type, f"event {event_type}")
        return explain_printer_status(state, str(info.get("PrinterStatusInfo", "") or ""))
    if sop_class == PrintJob:
        state = PRINT_JOB_EVENTS.get(event_type, f"event {event_type}")
        detail = str(info.get("ExecutionStatusInfo", "") or "")
        meaning = PRINTER_STATUS_INFO.get(detail.upper(), detail)
        return f"Print job {state.lower()}" + (f": {meaning}" if detail else "")
    return f"Printer event {event_type} for {sop_class or 'an unknown object'}"


def query_printer_status(
    printer: PrinterSettings,
    *,
    calling_ae: str = "LIGHTBOX",
    ssl_context: ssl.SSLContext | None = None,
    timeout_s: float = 15.0,
) -> PrintResult:
    """Only the Printer N-GET (for a "Check printer" button); raises PrintFailed when unreachable or FAILURE."""
    ae = AE(ae_title=(calling_ae or "LIGHTBOX")[:16])
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.add_requested_context(BasicGrayscalePrintManagementMeta, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    if printer.color:
        ae.add_requested_context(BasicColorPrintManagementMeta, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    kwargs: dict[str, Any] = {"ae_title": printer.ae_title}
    if ssl_context is not None:
        kwargs["tls_args"] = (ssl_context, printer.host)
    try:
        assoc = ae.associate(printer.host, int(printer.port), **kwargs)
    except (OSError, ssl.SSLError) as exc:
        raise PrintFailed(f"Could not connect to the printer at {printer.host}:{printer.port}: {exc}") from exc
    if not assoc.is_established:
        raise PrintFailed(f"The printer {printer.ae_title} at {printer.host}:{printer.port} did not accept us.")
    result = PrintResult()
    try:
        meta = (
            BasicGrayscalePrintManagementMeta
            if _accepted(assoc, BasicGrayscalePrintManagementMeta)
            else BasicColorPrintManagementMeta
        )
        result.color = _accepted(assoc, BasicColorPrintManagementMeta)
        _check_printer(_Session(assoc, meta, BasicGrayscaleImageBox, result, None))
    finally:
        if assoc.is_established:
            assoc.release()
    return result
