"""Export studies to a folder as a DICOM File-set with a DICOMDIR (PS3.11 STD-GEN-CD), optionally de-identified.

The General Purpose CD-R profile asks for Explicit VR Little Endian files named by upper-case File IDs of
at most 8 characters; pydicom's `FileSet` names them PT000000/ST000000/SE000000/IM000000. Compressed
objects are decompressed for that reason; an object that cannot be (or that the DICOMDIR cannot describe)
is skipped with its reason in the report, never silently.

Directory records need some Type 1 keys (Study Date, Study ID, ...) that an object may lack or that
de-identification empties; like `dcmmkdir +I`, the exported copy then gets a dummy value for them.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from viewer.core import audit
from viewer.core.deidentify import Deidentifier
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
            report.skipped.append((inst.sop_instance_uid, f"{type(exc).__name__}: {exc}"[:200]))
            log.warning("export skipped an instance: %s", type(exc).__name__)
        else:
            report.exported += 1
            exported_per_study[inst.study_uid] = exported_per_study.get(inst.study_uid, 0) + 1
        if on_progress is not None:
            on_progress(done, len(instances))
    if report.exported:
        file_set.write(target)
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


def _prepared(path: Path, session: Deidentifier | None) -> Dataset:
    ds = pydicom.dcmread(path)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        ds.decompress(generate_instance_uid=False)  # a change of transfer syntax keeps the instance
    if ds.file_meta.TransferSyntaxUID in (ImplicitVRLittleEndian, "1.2.840.10008.1.2.2"):
        # STD-GEN-CD: Explicit VR Little Endian only.
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if session is not None:
        ds = session.deidentify(ds).dataset
    return ds


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
