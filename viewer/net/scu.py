"""Verification and Query/Retrieve SCU: C-ECHO, C-FIND, C-MOVE (to our SCP) and C-GET.

Every call opens its own association with the settings of our `LocalNode` (AE title, max PDU, timeouts,
implementation UID) and closes it before returning, so the calls can run in any background thread.
Failures raise `NetworkError` whose message is written for the user.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation

from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from viewer.core.settings import LocalNode, RemoteNode
from viewer.core.store import StudyStore
from viewer.net.contexts import (
    COMPRESSED,
    QR_MODELS,
    UNCOMPRESSED,
    VERIFICATION,
    storage_sop_classes,
)
from viewer.net.scp import ScpEvent, status_dataset, store_received
from viewer.net.statuses import (
    Category,
    FailureKind,
    NetworkError,
    aborted,
    category,
    connection_refused,
    explain_rejection,
    explain_status,
    timed_out,
)

log = logging.getLogger(__name__)

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "IssuerOfPatientID")

RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "NumberOfPatientRelatedStudies"),
    "STUDY": (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "StudyDescription",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    "SERIES": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "BodyPartExamined",
        "NumberOfSeriesRelatedInstances",
    ),
    "IMAGE": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "Rows",
        "Columns",
        "NumberOfFrames",
    ),
}

UNIQUE_KEY = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


class CancelToken(Protocol):
    """`threading.Event` or `viewer.core.tasks.CancelToken` (its `cancelled` property) both fit."""


def is_cancelled(token: object | None) -> bool:
    if token is None:
        return False
    flag = getattr(token, "cancelled", None)
    if isinstance(flag, bool):
        return flag
    is_set = getattr(token, "is_set", None)
    return bool(is_set()) if callable(is_set) else False


KeyValue = str | Sequence[str] | None


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class QueryMatch:
    """One C-FIND match as plain text values keyed by DICOM keyword (character set already decoded)."""

    level: str
    values: dict[str, str]

    def get(self, keyword: str, default: str = "") -> str:
        return self.values.get(keyword, default) or default

    def count(self, keyword: str) -> int | None:
        try:
            return int(self.values.get(keyword, ""))
        except ValueError:
            return None


@dataclass
class RetrieveProgress:
    """Where a retrieve stands. `remaining`/`completed`/`failed`/`warning` come from the archive's pending
    responses; `received` counts instances that reached our store (SCP arrivals or C-GET sub-operations)."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int | None = None
    received: int = 0
    expected: int | None = None

    @property
    def total(self) -> int | None:
        if self.remaining is not None:
            return self.remaining + self.completed + self.failed + self.warning
        return self.expected

    @property
    def done(self) -> int:
        return max(self.completed + self.failed + self.warning, self.received)

    def fraction(self) -> float | None:
        total = self.total
        if not total:
            return None
        return min(1.0, self.done / total)


@dataclass
class RetrieveResult:
    status: int
    message: str
    progress: RetrieveProgress = field(default_factory=RetrieveProgress)
    failed_uids: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return category(self.status) in (Category.SUCCESS, Category.WARNING)


# ---------------------------------------------------------------------------- association helpers
def _make_ae(local: LocalNode) -> AE:
    ae = AE(ae_title=local.ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.acse_timeout = local.acse_timeout_s
    ae.dimse_timeout = local.dimse_timeout_s
    ae.network_timeout = local.network_timeout_s
    ae.connection_timeout = min(local.acse_timeout_s, 15.0)
    ae.maximum_pdu_size = int(local.max_pdu)
    return ae


def _probe(host: str, port: int, timeout: float) -> NetworkError:
    """After a failed association: tell a refused connection from a silent host from a peer that hung up."""
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            pass
    except ConnectionRefusedError:
        return connection_refused(host, port)
    except TimeoutError:
        return timed_out(host, port, "connection")
    except OSError as exc:
        return NetworkError(f"Cannot reach {host}:{port}: {exc.strerror or exc}.", FailureKind.CONNECTION_REFUSED)
    return aborted(host, port)


def _associate(
    node: RemoteNode,
    local: LocalNode,
    *,
    contexts: Iterable[tuple[str, Sequence[str]]],
    ssl_context: ssl.SSLContext | None,
    ext_neg: list[Any] | None = None,
    evt_handlers: list[Any] | None = None,
) -> Association:
    ae = _make_ae(local)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, list(syntaxes))
    started = time.monotonic()
    try:
        assoc = ae.associate(
            node.host,
            int(node.port),
            ae_title=node.ae_title,
            max_pdu=int(local.max_pdu),
            ext_neg=ext_neg,
            tls_args=(ssl_context, node.host) if ssl_context is not None else None,
            evt_handlers=evt_handlers,
        )
    except ssl.SSLError as exc:
        raise NetworkError(f"TLS handshake with {node.host}:{node.port} failed: {exc}.", FailureKind.ABORTED) from exc
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        raise NetworkError(
            explain_rejection(int(rsp.result or 1), int(rsp.result_source or 1), int(rsp.diagnostic or 1)),
            FailureKind.REJECTED,
        )
    if assoc.accepted_contexts == [] and assoc.acceptor.primitive is not None and assoc.acceptor.primitive.result == 0:
        raise NetworkError(
            f"{node.ae_title} accepted the connection but none of the services we asked for "
            "(it may not support this query model or retrieve method).",
            FailureKind.NO_CONTEXT,
        )
    elapsed = time.monotonic() - started
    if elapsed >= local.acse_timeout_s - 0.5:
        raise timed_out(node.host, node.port, "association answer")
    raise _probe(node.host, int(node.port), local.acse_timeout_s)


def _release(assoc: Association) -> None:
    with contextlib.suppress(Exception):
        if assoc.is_established:
            assoc.release()


def _status_of(rsp: Dataset | None, node: RemoteNode, local: LocalNode, what: str) -> int:
    if rsp is None or "Status" not in rsp:
        raise NetworkError(
            f"{node.ae_title} stopped answering during {what} (timeout or aborted association). "
            f"DIMSE timeout is {local.dimse_timeout_s:g} s.",
            FailureKind.TIMEOUT,
        )
    return int(rsp.Status)


# ---------------------------------------------------------------------------- C-ECHO
def echo(node: RemoteNode, *, local: LocalNode | None = None, ssl_context: ssl.SSLContext | None = None) -> float:
    """C-ECHO the node; returns the round-trip time in seconds or raises `NetworkError`."""
    local = local or LocalNode()
    started = time.monotonic()
    assoc = _associate(node, local, contexts=[(VERIFICATION, UNCOMPRESSED[:2])], ssl_context=ssl_context)
    try:
        status = _status_of(assoc.send_c_echo(), node, local, "C-ECHO")
    finally:
        _release(assoc)
    if status != 0:
        raise NetworkError(explain_status(status, operation="C-ECHO"), FailureKind.STATUS, status)
    return time.monotonic() - started


# ---------------------------------------------------------------------------- identifiers
def date_range(date_from: str = "", date_to: str = "") -> str:
    """DICOM range matching value: '20240101-20240131', '20240101-', '-20240131', or one date."""
    date_from, date_to = date_from.replace("-", "").strip(), date_to.replace("-", "").strip()
    if date_from and date_to and date_from == date_to:
        return date_from
    if date_from or date_to:
        return f"{date_from}-{date_to}"
    return ""


def _key_text(value: KeyValue) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return "\\".join(str(v) for v in value)


def build_identifier(level: str, keys: Mapping[str, KeyValue], *, return_keys: Iterable[str] = ()) -> Dataset:
    """A C-FIND/C-MOVE/C-GET identifier; sets Specific Character Set to UTF-8 when a value needs it."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"unknown query level {level!r}")
    ds = Dataset()
    values = {k: _key_text(v) for k, v in keys.items()}
    if any(not v.isascii() for v in values.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level
    for keyword in [*return_keys, *values]:
        # None is an empty value of any VR (a '' would not do for US/IS keys such as Rows).
        setattr(ds, keyword, values.get(keyword) or None)
    return ds


def _match_values(ds: Dataset) -> dict[str, str]:
    out: dict[str, str] = {}
    for elem in ds:
        if elem.keyword in ("", "QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle") or elem.VR == "SQ":
            continue
        value = elem.value
        if value is None:
            text = ""
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
        out[elem.keyword] = text.strip()
    return out


# ---------------------------------------------------------------------------- C-FIND
def find(
    node: RemoteNode,
    level: str,
    keys: Mapping[str, KeyValue],
    *,
    model: str | None = None,
    local: LocalNode | None = None,
    ssl_context: ssl.SSLContext | None = None,
    cancel_token: CancelToken | None = None,
    limit: int | None = None,
) -> list[QueryMatch]:
    """C-FIND at PATIENT/STUDY/SERIES/IMAGE level in the Study Root or Patient Root model.

    `keys` maps keywords to matching values: '' for universal matching (return key), `*`/`?` wildcards,
    'YYYYMMDD-YYYYMMDD' ranges, a list for UID list matching. The level's usual return keys are added.
    In the Patient Root model a study search without a single Patient ID is done hierarchically
    (patients first, then each patient's studies), because the model requires the Patient ID there.
    """
    local = local or LocalNode()
    level = level.upper()
    model = (model or node.query_model or "study").lower()
    if model not in QR_MODELS:
        raise ValueError(f"unknown query model {model!r}")
    assoc = _associate(
        node,
        local,
        contexts=[(QR_MODELS[model]["find"], UNCOMPRESSED[:2])],
        ssl_context=ssl_context,
    )
    try:
        if model == "patient" and level != "PATIENT":
            return _find_patient_root(assoc, node, local, level, keys, cancel_token, limit)
        return _find_on(assoc, node, local, model, level, keys, cancel_token, limit)
    finally:
        _release(assoc)


def _find_patient_root(
    assoc: Association,
    node: RemoteNode,
    local: LocalNode,
    level: str,
    keys: Mapping[str, KeyValue],
    cancel_token: CancelToken | None,
    limit: int | None,
) -> list[QueryMatch]:
    patient_id = _key_text(keys.get("PatientID"))
    lower_keys = {k: v for k, v in keys.items() if k not in PATIENT_KEYS}
    if level != "STUDY" and (not patient_id or any(ch in patient_id for ch in "*?\\")):
        raise NetworkError("The Patient Root model needs the Patient ID to search series or images.")
    # Patient-level attributes are only returned at PATIENT level in this model: ask there first.
    patients = _find_on(assoc, node, local, "patient", "PATIENT", _patient_part(keys), cancel_token, None)
    matches: list[QueryMatch] = []
    for patient in patients:
        if is_cancelled(cancel_token):
            break
        pid = patient.get("PatientID")
        sub_keys = {**lower_keys, "PatientID": pid}
        for match in _find_on(assoc, node, local, "patient", level, sub_keys, cancel_token, None):
            merged = {**{k: v for k, v in patient.values.items() if k in PATIENT_KEYS}, **match.values}
            for k in PATIENT_KEYS:
                if not merged.get(k) and patient.values.get(k):
                    merged[k] = patient.values[k]
            matches.append(QueryMatch(level, merged))
            if limit and len(matches) >= limit:
                return matches
    return matches


def _patient_part(keys: Mapping[str, KeyValue]) -> dict[str, KeyValue]:
    return {k: v for k, v in keys.items() if k in PATIENT_KEYS}


def _find_on(
    assoc: Association,
    node: RemoteNode,
    local: LocalNode,
    model: str,
    level: str,
    keys: Mapping[str, KeyValue],
    cancel_token: CancelToken | None,
    limit: int | None,
) -> list[QueryMatch]:
    return_keys = RETURN_KEYS[level]
    if model == "patient" and level != "PATIENT":
        # Patient-level attributes live one level up in this model; sending them would be refused.
        return_keys = (*tuple(k for k in return_keys if k not in PATIENT_KEYS), "PatientID")
        keys = {k: v for k, v in keys.items() if k not in PATIENT_KEYS or k == "PatientID"}
    identifier = build_identifier(level, keys, return_keys=return_keys)
    model_uid = QR_MODELS[model]["find"]
    msg_id = 1
    matches: list[QueryMatch] = []
    cancelled = False
    for status_ds, found in assoc.send_c_find(identifier, model_uid, msg_id=msg_id):
        status = _status_of(status_ds, node, local, "C-FIND")
        kind = category(status)
        if kind is Category.PENDING:
            if found is not None:
                try:
                    matches.append(QueryMatch(level, _match_values(found)))
                except Exception as exc:  # a match we cannot decode is skipped, not fatal
                    log.warning("skipping an undecodable C-FIND match: %s", exc)
            stop = (limit and len(matches) >= limit) or is_cancelled(cancel_token)
            if stop and not cancelled:
                cancelled = True
                assoc.send_c_cancel(msg_id, query_model=model_uid)
            continue
        if kind in (Category.SUCCESS, Category.CANCEL):
            break
        raise NetworkError(explain_status(status, operation="C-FIND"), FailureKind.STATUS, status)
    return matches[:limit] if limit else matches


# ---------------------------------------------------------------------------- C-MOVE / C-GET
def _retrieve_identifier(level: str, keys: Mapping[str, KeyValue], model: str) -> Dataset:
    level = level.upper()
    wanted = {"STUDY": ["StudyInstanceUID"], "SERIES": ["StudyInstanceUID", "SeriesInstanceUID"]}.get(
        level, ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    )
    if model == "patient":
        wanted = ["PatientID", *wanted]
    ids = {k: keys.get(k) for k in wanted if keys.get(k)}
    if UNIQUE_KEY[level] not in ids:
        raise ValueError(f"a {level} retrieve needs {UNIQUE_KEY[level]}")
    return build_identifier(level, ids)


def _apply_counts(progress: RetrieveProgress, rsp: Dataset) -> None:
    for attr, keyword in (
        ("remaining", "NumberOfRemainingSuboperations"),
        ("completed", "NumberOfCompletedSuboperations"),
        ("failed", "NumberOfFailedSuboperations"),
        ("warning", "NumberOfWarningSuboperations"),
    ):
        value = rsp.get(keyword)
        if value is not None:
            setattr(progress, attr, int(value))


def _count(rsp: Dataset, keyword: str) -> int | None:
    value = rsp.get(keyword)
    return int(value) if value is not None else None


def _has_final_counts(rsp: Dataset) -> bool:
    keywords = ("NumberOfCompletedSuboperations", "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")
    return any(rsp.get(keyword) is not None for keyword in keywords)


class _CancelWatcher:
    """Sends C-CANCEL from a side thread as soon as the token is set, even if the archive sends no pendings."""

    def __init__(self, assoc: Association, msg_id: int, model_uid: str, token: CancelToken | None) -> None:
        self.sent = False
        self._done = threading.Event()
        self._assoc, self._msg_id, self._model_uid, self._token = assoc, msg_id, model_uid, token
        self._thread: threading.Thread | None = None
        if token is not None:
            self._thread = threading.Thread(target=self._run, name="c-cancel-watcher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.05):
            if is_cancelled(self._token):
                with contextlib.suppress(Exception):
                    self._assoc.send_c_cancel(self._msg_id, query_model=self._model_uid)
                    self.sent = True
                return

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(2.0)


def _run_retrieve(
    assoc: Association,
    responses: Iterable[tuple[Dataset, Dataset | None]],
    *,
    node: RemoteNode,
    local: LocalNode,
    operation: str,
    progress: RetrieveProgress,
    progress_cb: Callable[[RetrieveProgress], None] | None,
    watcher: _CancelWatcher,
    cancel_token: CancelToken | None,
    lock: threading.Lock,
) -> RetrieveResult:
    failed_uids: list[str] = []
    final_status: int | None = None
    final_ds: Dataset | None = None
    for status_ds, identifier in responses:
        status = _status_of(status_ds, node, local, operation)
        kind = category(status)
        with lock:
            _apply_counts(progress, status_ds)
            if kind is not Category.PENDING and _has_final_counts(status_ds):
                # The final response's counts win (PS3.4 C.4.2.1.6, C.4.3.1.6): it carries no Remaining
                # (nothing is left unless cancelled), so the last pending's "1 remaining" must not linger.
                progress.remaining = _count(status_ds, "NumberOfRemainingSuboperations") or 0
        if kind is Category.PENDING:
            if progress_cb:
                progress_cb(progress)
            continue
        final_status, final_ds = status, status_ds
        if identifier is not None and "FailedSOPInstanceUIDList" in identifier:
            value = identifier.FailedSOPInstanceUIDList
            failed_uids = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if v]
        break
    if final_status is None:
        raise NetworkError(f"{node.ae_title} ended the {operation} without a final status.", FailureKind.ABORTED)
    cancelled = final_status == 0xFE00 or (watcher.sent and is_cancelled(cancel_token))
    if progress_cb:
        progress_cb(progress)
    host = local.bind_address if local.bind_address not in ("", "0.0.0.0") else "<this computer's address>"
    register = f"register {local.ae_title} at {host}:{local.port} in the archive"
    comment = str(final_ds.get("ErrorComment", "") or "").strip() if final_ds is not None else ""
    if final_status == 0xA801:
        message = f"{node.ae_title} does not know where to send the images (A801 move destination unknown): {register}."
        raise NetworkError(message, FailureKind.STATUS, final_status)
    kind = category(final_status)
    if cancelled:
        message = f"Retrieve cancelled after {progress.done} instance(s)."
    elif kind is Category.FAILURE:
        message = explain_status(final_status, operation=operation)
        if comment:
            message += f" The archive says: {comment}."
        if operation == "C-MOVE" and (final_status & 0xF000) == 0xC000:
            # Some archives (Orthanc) answer an unknown destination with C000 rather than A801.
            message += f" If the archive does not know this workstation as a move destination: {register}."
        raise NetworkError(message, FailureKind.STATUS, final_status)
    else:
        message = explain_status(final_status, operation=operation)
    return RetrieveResult(final_status, message, progress, failed_uids, cancelled)


def move(
    node: RemoteNode,
    keys: Mapping[str, KeyValue],
    level: str,
    dest_ae: str,
    *,
    model: str | None = None,
    local: LocalNode | None = None,
    ssl_context: ssl.SSLContext | None = None,
    progress_cb: Callable[[RetrieveProgress], None] | None = None,
    cancel_token: CancelToken | None = None,
    arrivals: Callable[[Callable[[ScpEvent], None]], Callable[[], None]] | None = None,
    expected: int | None = None,
) -> RetrieveResult:
    """C-MOVE the study/series/instance(s) named by `keys` to `dest_ae` (normally our own SCP).

    `arrivals` is `StorageServer.subscribe`: instances stored by our SCP during the move then count as
    progress too, for archives that send no pending responses. Setting `cancel_token` sends C-CANCEL.
    """
    local = local or LocalNode()
    model = (model or node.query_model or "study").lower()
    level = level.upper()
    identifier = _retrieve_identifier(level, keys, model)
    model_uid = QR_MODELS[model]["move"]
    progress = RetrieveProgress(expected=expected)
    lock = threading.Lock()
    wanted_studies = set(_key_text(keys.get("StudyInstanceUID")).split("\\")) - {""}

    def on_arrival(event: ScpEvent) -> None:
        if event.kind != "stored" or (wanted_studies and event.study_uid not in wanted_studies):
            return
        with lock:
            progress.received += 1
        if progress_cb:
            progress_cb(progress)

    unsubscribe = arrivals(on_arrival) if arrivals else None
    try:
        assoc = _associate(node, local, contexts=[(model_uid, UNCOMPRESSED[:2])], ssl_context=ssl_context)
        watcher = _CancelWatcher(assoc, 1, model_uid, cancel_token)
        try:
            responses = assoc.send_c_move(identifier, dest_ae, model_uid, msg_id=1)
            return _run_retrieve(
                assoc,
                responses,
                node=node,
                local=local,
                operation="C-MOVE",
                progress=progress,
                progress_cb=progress_cb,
                watcher=watcher,
                cancel_token=cancel_token,
                lock=lock,
            )
        finally:
            watcher.close()
            _release(assoc)
    finally:
        if unsubscribe:
            unsubscribe()


# Most likely classes first: the C-GET association can carry at most 128 presentation contexts.
_COMMON_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.11.1",  # GSPS
    "1.2.840.10008.5.1.4.1.1.88.59",  # KO
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.128",  # PET
    "1.2.840.10008.5.1.4.1.1.20",  # NM
    "1.2.840.10008.5.1.4.1.1.12.1",  # XA
    "1.2.840.10008.5.1.4.1.1.1.2",  # MG
)


def _get_contexts(sop_classes: Sequence[str], model_uid: str) -> list[tuple[str, Sequence[str]]]:
    """One context per (class, transfer syntax) so the archive can send each object as it stored it."""
    contexts: list[tuple[str, Sequence[str]]] = [(model_uid, UNCOMPRESSED[:2])]
    classes = list(dict.fromkeys(sop_classes)) or list(_COMMON_CLASSES)
    for uid in classes:
        contexts.append((uid, UNCOMPRESSED[:2]))
    for syntax in COMPRESSED:  # compressed variants only while room remains, lossless first
        for uid in classes:
            if len(contexts) >= 128:
                return contexts
            contexts.append((uid, [syntax]))
    for uid in storage_sop_classes():  # then any other class, uncompressed
        if len(contexts) >= 128:
            break
        if uid not in classes:
            contexts.append((uid, UNCOMPRESSED[:2]))
    return contexts


def get(
    node: RemoteNode,
    keys: Mapping[str, KeyValue],
    level: str,
    store: StudyStore,
    *,
    model: str | None = None,
    local: LocalNode | None = None,
    ssl_context: ssl.SSLContext | None = None,
    progress_cb: Callable[[RetrieveProgress], None] | None = None,
    cancel_token: CancelToken | None = None,
    sop_classes: Sequence[str] | None = None,
    expected: int | None = None,
) -> RetrieveResult:
    """C-GET: the archive sends the instances back on our association (SCP role for storage), into `store`.

    `sop_classes` narrows the storage contexts proposed; when not given, an IMAGE-level C-FIND learns them
    (falling back to the common classes if the archive will not answer that).
    """
    local = local or LocalNode()
    model = (model or node.query_model or "study").lower()
    level = level.upper()
    identifier = _retrieve_identifier(level, keys, model)
    model_uid = QR_MODELS[model]["get"]
    if sop_classes is None:
        sop_classes = _classes_for(node, level, keys, model, local, ssl_context)
    contexts = _get_contexts(sop_classes, model_uid)
    roles = [build_role(uid, scp_role=True) for uid in dict.fromkeys(c[0] for c in contexts[1:])]
    progress = RetrieveProgress(expected=expected)
    lock = threading.Lock()

    def on_store(event: Any) -> Dataset:
        request = event.request
        outcome = store_received(
            store,
            dataset_bytes=request.DataSet.getvalue(),
            transfer_syntax=str(event.context.transfer_syntax),
            affected_sop_class=str(request.AffectedSOPClassUID or ""),
            affected_sop_instance=str(request.AffectedSOPInstanceUID or ""),
            source=f"get:{node.ae_title}",
            source_ae=node.ae_title,
            max_bytes=local.max_object_bytes or None,
            sync=local.sync_each_instance,  # as for pushed instances: grouped, and synced before we return
            replace=node.ae_title.strip() in {a.strip() for a in local.accept_corrections_from if a.strip()},
        )
        if outcome.status in (0x0000, 0xB007):
            with lock:
                progress.received += 1
            if progress_cb:
                progress_cb(progress)
        return status_dataset(outcome.status, outcome.comment)

    assoc = _associate(
        node,
        local,
        contexts=contexts,
        ssl_context=ssl_context,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    watcher = _CancelWatcher(assoc, 1, model_uid, cancel_token)
    try:
        responses = assoc.send_c_get(identifier, model_uid, msg_id=1)
        return _run_retrieve(
            assoc,
            responses,
            node=node,
            local=local,
            operation="C-GET",
            progress=progress,
            progress_cb=progress_cb,
            watcher=watcher,
            cancel_token=cancel_token,
            lock=lock,
        )
    finally:
        watcher.close()
        _release(assoc)
        store.sync_pending()


def _classes_for(
    node: RemoteNode,
    level: str,
    keys: Mapping[str, KeyValue],
    model: str,
    local: LocalNode,
    ssl_context: ssl.SSLContext | None,
) -> list[str]:
    query = {k: keys.get(k) for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    query = {k: v for k, v in query.items() if v}
    query["SOPClassUID"] = ""
    if level in ("STUDY",) and model == "study":
        query.setdefault("SeriesInstanceUID", "")
    try:
        matches = find(node, "IMAGE", query, model=model, local=local, ssl_context=ssl_context, limit=5000)
    except (NetworkError, ValueError) as exc:
        log.info("could not learn SOP classes before C-GET (%s); proposing common classes", exc)
        return []
    return [m.get("SOPClassUID") for m in matches if m.get("SOPClassUID")]


def sop_class_extended(model_uid: str) -> SOPClassExtendedNegotiation:
    """Relational-queries extended negotiation item (offered only where a node is set up for it)."""
    item = SOPClassExtendedNegotiation()
    item.sop_class_uid = model_uid
    item.service_class_application_information = b"\x01"
    return item


def test_move(
    node: RemoteNode,
    dest_ae: str,
    *,
    local: LocalNode | None = None,
    ssl_context: ssl.SSLContext | None = None,
    arrivals: Callable[[Callable[[ScpEvent], None]], Callable[[], None]] | None = None,
) -> str:
    """Check that the archive can send to us: move one instance it holds to `dest_ae`; a plain-word verdict.

    Raises `NetworkError` (with the "register … in the archive" advice for A801) when it cannot.
    """
    local = local or LocalNode()
    model = (node.query_model or "study").lower()
    studies = find(node, "STUDY", {}, local=local, ssl_context=ssl_context, limit=1)
    if not studies:
        return f"{node.ae_title} answers queries but holds no studies, so a test retrieve cannot be made yet."
    study = studies[0]
    parent = {"StudyInstanceUID": study.get("StudyInstanceUID"), "PatientID": study.get("PatientID")}
    series = find(node, "SERIES", parent, local=local, ssl_context=ssl_context, limit=1)
    images = (
        find(
            node,
            "IMAGE",
            {**parent, "SeriesInstanceUID": series[0].get("SeriesInstanceUID")},
            local=local,
            ssl_context=ssl_context,
            limit=1,
        )
        if series
        else []
    )
    if not images:
        return f"{node.ae_title} answers queries but lists no instances to test a retrieve with."
    keys = {
        **parent,
        "SeriesInstanceUID": series[0].get("SeriesInstanceUID"),
        "SOPInstanceUID": images[0].get("SOPInstanceUID"),
    }
    result = move(node, keys, "IMAGE", dest_ae, model=model, local=local, ssl_context=ssl_context, arrivals=arrivals)
    if result.progress.failed:
        return (
            f"{node.ae_title} accepted the retrieve but could not deliver the instance to {dest_ae} "
            f"({result.message}). Check the host and port the archive has for {dest_ae}."
        )
    return f"Test retrieve worked: {node.ae_title} sent one instance to {dest_ae}."
