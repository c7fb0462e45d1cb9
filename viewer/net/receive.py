"""One received data set into the store, answered with the C-STORE status PS3.4 B.2.3 gives for it.

Shared by the Storage SCP and the C-GET SCU (which receives instances the same way). What to take is
decided by `viewer.core.ingest` and the store, which know nothing of DIMSE; this module only says how each
of their answers reads to the sender.

Statuses (PS3.4 Table B.2-1):

* 0000 Success: stored, or already stored with the same bytes, or (see below) already stored differently.
* B007 Warning "data set does not match SOP class": an image storage object without pixel data, kept as
  sent (level 2 storage) so that the sender knows it is not a usable image.
* A700 Refused, out of resources: larger than accepted, inflates beyond the limit, disk full.
* A900 Error, data set does not match SOP class: its SOP Class UID is not the request's.
* C000 Error, cannot understand: not DICOM, unreadable, incomplete, a UID PS3.5 §9.1 forbids, nesting too
  deep, the SOP Instance UID is not the request's, the instance names another patient than its study.
* 0110 Processing failure: an I/O error of ours.

Duplicates: an instance whose SOP Instance UID is stored already with other bytes is answered 0000 while
the stored copy is kept (unless the calling AE is one `LocalNode.accept_corrections_from` names, whose
copy replaces it, the old one kept under the store's replaced/ folder). C-STORE has no "duplicate" status:
0111 "Duplicate SOP Instance" is a failure defined for N-CREATE, and a modality answered with a failure
keeps the study in its queue and retries it forever, for an instance we do hold. The warnings do not fit
either (B000 coercion, B006 elements discarded, B007 SOP class mismatch: they would tell the sender we
changed its object, which we did not). Orthanc, dcm4chee and most archives answer Success by default for
the same reason; the differing copy is logged for the administrator. A copy that is the stored one cut
short is a failure (C000), never a replacement, whoever sends it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from viewer.core import ingest
from viewer.core.store import AddStatus, IncomingFile, StoreFullError, StudyStore
from viewer.net.contexts import is_image_storage

log = logging.getLogger(__name__)

SUCCESS = 0x0000
WARNING_MISMATCH = 0xB007
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110

_COMMENT_LENGTH = 64  # Error Comment (0000,0902) is LO


@dataclass(frozen=True)
class StoreOutcome:
    status: int
    comment: str = ""
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    series_uid: str = ""
    study_uid: str = ""
    duplicate: bool = False
    kept: bool = False  # a different copy was stored already; it was kept and this one dropped
    replaced: bool = False  # this copy replaced the stored one (a correction)


def refusal_status(exc: BaseException) -> int:
    """The C-STORE status for what ingest or the store refused."""
    if isinstance(exc, (ingest.TooLarge, StoreFullError)):
        return OUT_OF_RESOURCES
    if isinstance(exc, ingest.UidMismatch):
        return DATASET_MISMATCH if exc.sop_class else CANNOT_UNDERSTAND
    return CANNOT_UNDERSTAND


def _comment(text: str) -> str:
    return text[:_COMMENT_LENGTH]


def receive(
    store: StudyStore,
    *,
    dataset_bytes: bytes | IncomingFile,
    transfer_syntax: str,
    affected_sop_class: str,
    affected_sop_instance: str,
    source: str,
    source_ae: str = "",
    max_bytes: int | None = None,
    sync: bool = True,
    replace: bool = False,
) -> StoreOutcome:
    """Check and store one received data set (bytes, or a large one written whole through an
    `IncomingFile`); returns the status to answer with. `replace`: the sender may send corrections."""
    incoming = dataset_bytes if isinstance(dataset_bytes, IncomingFile) else None
    try:
        try:
            if incoming is not None:
                incoming.close()
                checked = ingest.check_received_file(
                    incoming.path,
                    sha256=incoming.digest.hexdigest(),
                    size=incoming.size,
                    affected_sop_class=affected_sop_class,
                    affected_sop_instance=affected_sop_instance,
                    max_bytes=max_bytes,
                )
                result = store.add_incoming(incoming, checked, source=source, sync=sync, replace=replace)
            else:
                assert isinstance(dataset_bytes, bytes)
                checked = ingest.check_received(
                    dataset_bytes,
                    transfer_syntax=transfer_syntax,
                    affected_sop_class=affected_sop_class,
                    affected_sop_instance=affected_sop_instance,
                    source_ae=source_ae,
                    max_bytes=max_bytes,
                )
                result = store.add_checked(checked, source=source, sync=sync, replace=replace)
        except (ingest.Refused, StoreFullError) as exc:
            return StoreOutcome(refusal_status(exc), _comment(str(exc)))
        except OSError as exc:
            log.error("could not store a received instance: %s", exc)
            return StoreOutcome(PROCESSING_FAILURE, _comment(f"storage error: {exc.strerror or exc}"))
    finally:
        if incoming is not None:
            incoming.discard()
    status, comment = SUCCESS, ""
    if not checked.has_pixel_data and is_image_storage(result.sop_class_uid):
        # Level 2 storage keeps the object as sent, but the sender should know it is not a usable image.
        status, comment = WARNING_MISMATCH, "image object without pixel data"
    return StoreOutcome(
        status,
        comment,
        result.sop_instance_uid,
        result.sop_class_uid,
        result.series_uid,
        result.study_uid,
        duplicate=result.status in (AddStatus.DUPLICATE, AddStatus.KEPT),
        kept=result.status is AddStatus.KEPT,
        replaced=result.status is AddStatus.REPLACED,
    )
