"""Export studies to a folder as a DICOM File-set with a DICOMDIR (PS3.11 STD-GEN-CD), optionally de-identified.

The General Purpose CD-R profile asks for Explicit VR Little Endian files named by upper-case File IDs of
at most 8 characters; pydicom's `FileSet` names them PT000000/ST000000/SE000000/IM000000. Every object is
therefore converted: compressed ones are decompressed, Implicit VR and Deflated ones re-encoded, Explicit VR
Big Endian ones byte-swapped (PS3.5 §7.3: OW/OL/OF/OD/OV values follow the transfer syntax's byte order, so
re-labelling them is not enough). Each object is exported on its own: one that cannot be converted, read,
or described by the DICOMDIR is skipped with its reason in the report, never silently, and the others are
still written. Sequences nested deeper than the store's limit (`MAX_SEQUENCE_DEPTH`, which an earlier
version did not enforce) are refused before anything walks them recursively.

Directory records need some Type 1 keys (Study Date, Study ID, ...) that an object may lack or that
de-identification empties; like `dcmmkdir +I`, the exported copy then gets a dummy value for them.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from viewer.core import audit
from viewer.core.deidentify import Deidentifier
from viewer.core.header_scan import MAX_SEQUENCE_DEPTH
from viewer.core.store import StudyStore

log = logging.getLogger(__name__)

FILE_SET_ID = "LIGHTBOX"
_TAG_IN_MESSAGE = re.compile(r"\(([0-9A-Fa-f]{4}),\s*([0-9A-Fa-f]{4})\)")
_RECORD_DUMMIES = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "IS": "1",
    "DS": "0",
    "CS": "UNKNOWN",
    "SH": "UNKNOWN",
    "LO": "UNKNOWN",
    "PN": "UNKNOWN",
}
# Bytes per value of the VRs whose byte order follows the transfer syntax (PS3.5 §6.2, §7.3); OB and the
# text VRs are byte streams. Numeric VRs (US, SL, FD, AT, ...) are decoded by pydicom and re-encoded.
_SWAP_WIDTH = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}
_PIXEL_DATA = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF


class ExportError(Exception):
    """The export as a whole cannot be done (target not usable); single objects are skipped instead."""


@dataclass
class ExportReport:
    folder: Path
    exported: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (SOP Instance UID, reason)
    studies: list[str] = field(default_factory=list)  # original Study Instance UIDs exported
    deidentified: bool = False

    @property
    def dicomdir(self) -> Path:
        return self.folder / "DICOMDIR"


def export_studies(
    store: StudyStore,
    study_uids: Iterable[str],
    folder: Path | str,
    *,
    deidentify: bool = False,
    deidentifier: Deidentifier | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    audit_log: audit.AuditLog | None = None,
) -> ExportReport:
    """Write the studies' instances and a DICOMDIR into `folder` (created; must be empty if it exists)."""
    target = Path(folder)
    if target.exists() and any(target.iterdir()):
        raise ExportError(f"{target} is not empty; export needs an empty folder")
    target.mkdir(parents=True, exist_ok=True)
    uids = list(dict.fromkeys(study_uids))
    instances = [inst for uid in uids for inst in store.instances_for_study(uid)]
    session = deidentifier or (Deidentifier() if deidentify else None)
    report = ExportReport(folder=target, deidentified=session is not None)
    file_set = FileSet()
    file_set.ID = FILE_SET_ID
    exported_per_study: dict[str, int] = {}
    for done, inst in enumerate(instances, 1):
        try:
            ds = _prepared(Path(inst.path), session)
            _add_with_record_keys(file_set, ds)
        except Exception as exc:  # one bad object must not end an export of hundreds
            _drop_failed(file_set, inst.sop_instance_uid)
            reason = str(exc) if isinstance(exc, _Refused) else f"{type(exc).__name__}: {exc}"
            report.skipped.append((inst.sop_instance_uid, reason[:200]))
            log.warning("export skipped an instance: %s", type(exc).__name__)
        else:
            report.exported += 1
            exported_per_study[inst.study_uid] = exported_per_study.get(inst.study_uid, 0) + 1
        if on_progress is not None:
            on_progress(done, len(instances))
    if report.exported:
        try:
            file_set.write(target)
        except OSError as exc:
            raise ExportError(f"writing the file-set into {target} failed: {exc.strerror or exc}") from exc
    report.studies = [uid for uid in uids if exported_per_study.get(uid)]
    for uid in uids:
        study = store.study(uid)
        (audit_log or audit.default_log()).record(
            audit.EXPORTED,
            study_uid=uid,
            patient_id=study.patient_id if study else "",
            instances=exported_per_study.get(uid, 0),
            outcome=audit.SUCCESS if exported_per_study.get(uid) else audit.SERIOUS_FAILURE,
            destination=str(target),
            description="de-identified" if session is not None else "",
        )
    return report


class _Refused(ValueError):
    """An object export will not write; `str()` is the reason for the report."""


def _prepared(path: Path, session: Deidentifier | None) -> Dataset:
    ds = pydicom.dcmread(path)
    problem = _nesting_problem(ds)  # before decompression, conversion or de-identification walk it
    if problem:
        raise _Refused(problem)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        ds.decompress(generate_instance_uid=False)  # a change of transfer syntax keeps the instance
    elif syntax == ExplicitVRBigEndian:
        ds = _little_endian_copy(ds)
    # STD-GEN-CD: Explicit VR Little Endian only (Implicit VR and Deflated data sets are re-encoded on write).
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if session is not None:
        ds = session.deidentify(ds).dataset
    return ds


def _nesting_problem(ds: Dataset) -> str:
    """Why `ds` nests sequences too deeply ('' when it does not), walked level by level, not recursively.

    Only the sequences of one level are converted before the next is looked at, so the walk stops at
    MAX_SEQUENCE_DEPTH levels whatever the object holds (pydicom parses a nested item only when asked).
    """
    level: list[Dataset] = [ds]
    depth = 1
    while level:
        below: list[Dataset] = []
        for item in level:
            for elem in item.elements():
                if not _may_be_sequence(elem):
                    continue
                value = item[elem.tag].value
                if isinstance(value, Sequence):
                    below.extend(value)
        if below and depth > MAX_SEQUENCE_DEPTH:
            return f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels; not exported"
        level = below
        depth += 1
    return ""


def _may_be_sequence(elem: DataElement | RawDataElement) -> bool:
    if elem.VR == "SQ":
        return True
    if elem.VR not in (None, "UN"):
        return False
    try:
        if dictionary_VR(elem.tag) == "SQ":
            return True
    except KeyError:
        pass
    return isinstance(elem, RawDataElement) and elem.length == _UNDEFINED_LENGTH


def _little_endian_copy(ds: Dataset) -> Dataset:
    """The Explicit VR Big Endian `ds` as an Explicit VR Little Endian data set with the same values.

    pydicom re-encodes numeric and text values itself but leaves OW/OL/OF/OD/OV bytes as read (and its
    `save_as` refuses to change byte order), so those are swapped here, then the data set is written in
    little endian and read back, which gives a data set whose every item is little endian throughout.
    """
    _swap_words(ds, ds.get("BitsAllocated"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def _swap_words(ds: Dataset, bits_allocated: object) -> None:
    """Byte-swap, in place, the values whose byte order follows the transfer syntax (depth already bounded)."""
    for elem in ds.elements():
        tag = elem.tag
        vr = ds[tag].VR
        if vr == "SQ":
            for item in ds[tag].value or []:
                _swap_words(item, item.get("BitsAllocated", bits_allocated))
            continue
        if vr == "UN" and ds[tag].value:
            # An element of unknown VR: its byte order cannot be known, so converting it could corrupt it.
            raise _Refused(f"element {tag} has an unknown VR (UN) whose byte order cannot be converted; not exported")
        width = _SWAP_WIDTH.get(vr)
        if width is None or not ds[tag].value:
            continue
        if tag == _PIXEL_DATA and vr == "OW" and bits_allocated in (32, 64):
            # Pixels wider than a word are read back (pydicom's `pixel_array`) as whole big-endian values.
            width = int(bits_allocated) // 8
        value = bytes(ds[tag].value)
        if len(value) % width:
            raise _Refused(f"element {tag} ({vr}) has a length that is not a multiple of {width}; not exported")
        ds[tag].value = np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()


def _drop_failed(file_set: FileSet, sop_instance_uid: str) -> None:
    """Take back what a failed `FileSet.add` left staged (its records, but no staged file): else
    `FileSet.write` fails as a whole when it copies the file that was never written."""
    for instance in [i for i in file_set if i.SOPInstanceUID == sop_instance_uid]:
        if not Path(instance.path).is_file():
            file_set.remove(instance)


def _add_with_record_keys(file_set: FileSet, ds: Dataset) -> None:
    """Add to the file-set, giving the copy dummy values for directory record keys it lacks."""
    for _ in range(12):
        try:
            file_set.add(ds)
            return
        except ValueError as exc:
            match = _TAG_IN_MESSAGE.search(str(exc))
            if match is None:
                raise
            tag = int(match.group(1) + match.group(2), 16)
            vr = dictionary_VR(tag)
            if vr == "SQ" or vr not in _RECORD_DUMMIES or (tag in ds and ds[tag].value not in (None, "")):
                raise
            ds.add_new(tag, vr, _RECORD_DUMMIES[vr])
    raise ValueError("too many directory record keys missing")


def remove_export(folder: Path) -> None:
    """Remove a (failed) export folder this module created."""
    shutil.rmtree(folder, ignore_errors=True)
