"""The embedded Storage + Verification SCP: what PACS and modalities push to this workstation.

Received objects go through the same `StudyStore.add_bytes` as imports, so the atomic-write and
duplicate rules are the store's. pynetdicom calls the C-STORE handler only once a data set has arrived
completely, so an association aborted mid-object never reaches the store; the handler answers only
after the store has made the instance durable.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import SOPClassCommonExtendedNegotiation
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import ThreadedAssociationServer

from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from viewer.core.settings import LocalNode
from viewer.core.store import InvalidObjectError, NotDicomError, StoreFullError, StudyStore, check_uid
from viewer.net.contexts import (
    SCP_TRANSFER_SYNTAXES,
    STORAGE_SERVICE_CLASS,
    UNCOMPRESSED,
    VERIFICATION,
    is_image_storage,
    looks_like_storage,
    storage_sop_classes,
)

log = logging.getLogger(__name__)

SUCCESS = 0x0000
WARNING_MISMATCH = 0xB007
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


@dataclass(frozen=True)
class ScpEvent:
    """Something the SCP did; `kind` is one of started, stopped, accepted, rejected, released, aborted,
    stored, refused, echo."""

    kind: str
    calling_ae: str = ""
    address: str = ""
    status: int = 0
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    series_uid: str = ""
    study_uid: str = ""
    duplicate: bool = False
    message: str = ""


@dataclass(frozen=True)
class StoreOutcome:
    status: int
    comment: str = ""
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    series_uid: str = ""
    study_uid: str = ""
    duplicate: bool = False


def store_received(
    store: StudyStore,
    *,
    dataset_bytes: bytes,
    transfer_syntax: str,
    affected_sop_class: str,
    affected_sop_instance: str,
    decoded: Dataset | None,
    source: str,
    source_ae: str = "",
    max_bytes: int | None = None,
) -> StoreOutcome:
    """Check and store one received data set; returns the C-STORE status to answer with.

    Shared by the Storage SCP and the C-GET SCU (which receives instances the same way).
    """
    if max_bytes is not None and len(dataset_bytes) > max_bytes:
        return StoreOutcome(OUT_OF_RESOURCES, "object larger than this workstation accepts")
    if decoded is None:
        return StoreOutcome(CANNOT_UNDERSTAND, "data set cannot be decoded")
    try:
        sop_class = str(decoded.get("SOPClassUID", "") or "").strip()
        sop_instance = str(decoded.get("SOPInstanceUID", "") or "").strip()
    except Exception as exc:  # a hostile or corrupt element value
        return StoreOutcome(CANNOT_UNDERSTAND, f"unreadable UID: {type(exc).__name__}"[:64])
    if not sop_class or not sop_instance:
        return StoreOutcome(CANNOT_UNDERSTAND, "missing SOP Class or SOP Instance UID")
    try:
        check_uid("SOP Class UID", sop_class)
        check_uid("SOP Instance UID", sop_instance)
    except InvalidObjectError as exc:
        return StoreOutcome(CANNOT_UNDERSTAND, str(exc)[:64])
    if affected_sop_class and sop_class != affected_sop_class:
        return StoreOutcome(DATASET_MISMATCH, "SOP Class UID differs from the request")
    if affected_sop_instance and sop_instance != affected_sop_instance:
        return StoreOutcome(CANNOT_UNDERSTAND, "SOP Instance UID differs from the request")

    buffer = BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    buffer.write(encode_file_meta(sop_class, sop_instance, transfer_syntax, source_ae))
    buffer.write(dataset_bytes)
    try:
        result = store.add_bytes(buffer.getvalue(), source=source)
    except StoreFullError as exc:
        return StoreOutcome(OUT_OF_RESOURCES, str(exc)[:64])
    except (InvalidObjectError, NotDicomError) as exc:
        return StoreOutcome(CANNOT_UNDERSTAND, str(exc)[:64])
    except OSError as exc:
        log.error("could not store a received instance: %s", exc)
        return StoreOutcome(PROCESSING_FAILURE, f"storage error: {exc.strerror or exc}"[:64])
    status = SUCCESS
    comment = ""
    if is_image_storage(sop_class) and not any(tag in decoded for tag in _PIXEL_TAGS):
        # Level 2 storage keeps the object as sent, but the sender should know it is not a usable image.
        status, comment = WARNING_MISMATCH, "image object without pixel data"
    return StoreOutcome(
        status,
        comment,
        result.sop_instance_uid,
        result.sop_class_uid,
        result.series_uid,
        result.study_uid,
        result.status.value == "duplicate",
    )


def _meta_element(group_element: int, vr: bytes, value: bytes) -> bytes:
    tag = struct.pack("<HH", group_element >> 16, group_element & 0xFFFF)
    if vr == b"OB":
        return tag + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _uid_bytes(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _text_bytes(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    return raw + b" " if len(raw) % 2 else raw


def encode_file_meta(sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str = "") -> bytes:
    """The Part 10 file meta group (explicit VR little endian) for a received data set.

    Encoded directly rather than through pydicom's writer, which costs about as much as the rest of a
    small instance's bookkeeping; the bytes are the same (a test compares them). The UIDs were checked by
    the caller.
    """
    body = b"".join(
        (
            _meta_element(0x00020001, b"OB", b"\x00\x01"),
            _meta_element(0x00020002, b"UI", _uid_bytes(sop_class)),
            _meta_element(0x00020003, b"UI", _uid_bytes(sop_instance)),
            _meta_element(0x00020010, b"UI", _uid_bytes(transfer_syntax)),
            _meta_element(0x00020012, b"UI", _uid_bytes(IMPLEMENTATION_CLASS_UID)),
            _meta_element(0x00020013, b"SH", _text_bytes(IMPLEMENTATION_VERSION_NAME)),
            _meta_element(0x00020016, b"AE", _text_bytes(source_ae[:16])) if source_ae else b"",
        )
    )
    return _meta_element(0x00020000, b"UL", struct.pack("<I", len(body))) + body


def status_dataset(status: int, comment: str = "") -> Dataset:
    rsp = Dataset()
    rsp.Status = status
    if comment and status != SUCCESS:
        rsp.ErrorComment = comment.encode("ascii", "replace").decode()[:64]
    return rsp


def decode_event_dataset(event: Any) -> Dataset | None:
    try:
        ds = event.dataset
        # Touch the UIDs now so a malformed header fails here, not inside the store.
        ds.get("SOPClassUID")
        ds.get("SOPInstanceUID")
        return ds
    except Exception as exc:
        log.info("received a data set that cannot be decoded: %s", type(exc).__name__)
        return None


class StorageServer:
    """Storage + Verification SCP running in pynetdicom's own threads."""

    def __init__(
        self,
        store: StudyStore,
        local: LocalNode,
        *,
        ssl_context: ssl.SSLContext | None = None,
        on_event: Callable[[ScpEvent], None] | None = None,
    ) -> None:
        self.store = store
        self.local = local
        self.ssl_context = ssl_context
        self._listeners: list[Callable[[ScpEvent], None]] = [on_event] if on_event else []
        self._server: ThreadedAssociationServer | None = None
        self._ae: AE | None = None
        self._lock = threading.Lock()
        self.received = 0
        self.failed = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The port actually listened on (useful when `local.port` is 0)."""
        if self._server is None:
            return self.local.port
        return int(self._server.server_address[1])

    @property
    def ae_title(self) -> str:
        return self.local.ae_title

    def status_text(self) -> str:
        if not self.running:
            return f"{self.local.ae_title} stopped"
        return f"{self.local.ae_title} @ {self.port}" + (" (TLS)" if self.ssl_context else "")

    def start(self) -> None:
        if self._server is not None:
            return
        ae = AE(ae_title=self.local.ae_title)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        ae.maximum_associations = max(1, int(self.local.max_associations))
        ae.maximum_pdu_size = int(self.local.max_pdu)
        ae.acse_timeout = self.local.acse_timeout_s
        ae.dimse_timeout = self.local.dimse_timeout_s
        ae.network_timeout = self.local.network_timeout_s
        ae.add_supported_context(VERIFICATION, UNCOMPRESSED[:2])
        for uid in storage_sop_classes():
            ae.add_supported_context(uid, SCP_TRANSFER_SYNTAXES)
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_SOP_COMMON, self._on_sop_common),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
            (evt.EVT_CONN_OPEN, self._on_connection),
        ]
        if self.local.max_object_bytes:
            handlers.append((evt.EVT_PDU_RECV, self._on_pdu))
        server = ae.start_server(
            (self.local.bind_address, int(self.local.port)),
            block=False,
            evt_handlers=handlers,
            ssl_context=self.ssl_context,
        )
        self._ae, self._server = ae, server
        self._emit(ScpEvent("started", message=self.status_text()))

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        if self._ae is not None:
            self._ae.shutdown()
        self._emit(ScpEvent("stopped"))

    def __enter__(self) -> StorageServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def subscribe(self, listener: Callable[[ScpEvent], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def active_associations(self) -> int:
        return len(self._server.active_associations) if self._server else 0

    # ------------------------------------------------------------------ events
    def _emit(self, event: ScpEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("SCP event listener failed")

    @staticmethod
    def _who(event: Any) -> tuple[str, str]:
        assoc = event.assoc
        calling = ""
        try:
            calling = str(assoc.requestor.ae_title or "").strip()
        except Exception:
            pass
        if not calling:
            primitive = getattr(assoc.requestor, "primitive", None)
            calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        address = f"{assoc.requestor.address}:{assoc.requestor.port}"
        return calling, address

    def calling_ae_allowed(self, calling_ae: str) -> bool:
        if not self.local.restrict_calling_aes:
            return True
        return calling_ae.strip() in {a.strip() for a in self.local.allowed_calling_aes if a.strip()}

    def _on_requested(self, event: Any) -> None:
        """Refuse callers outside the allow-list; accept private and unknown storage classes an archive may send."""
        assoc = event.assoc
        calling, address = self._who(event)
        if not self.calling_ae_allowed(calling):
            log.warning("association from %s (%s) rejected: calling AE not in the allow-list", calling, address)
            # A-ASSOCIATE-RJ permanent, service-user, "calling AE title not recognised" (PS3.8 9.3.4).
            assoc.acse.send_reject(0x01, 0x01, 0x03)
            self._emit(ScpEvent("rejected", calling, address, message="calling AE title not in the allow-list"))
            assoc.kill()
            return
        proposed = assoc.requestor.primitive.presentation_context_definition_list or []
        known = {cx.abstract_syntax for cx in assoc.acceptor.supported_contexts}
        extra: list[PresentationContext] = []
        for cx in proposed:
            uid = cx.abstract_syntax
            if uid in known or not looks_like_storage(uid):
                continue
            context = PresentationContext()
            context.abstract_syntax = uid
            context.transfer_syntax = list(SCP_TRANSFER_SYNTAXES)
            extra.append(context)
            known.add(uid)
        if extra:
            assoc.acceptor.supported_contexts = [*assoc.acceptor.supported_contexts, *extra]

    def _on_sop_common(self, event: Any) -> dict[str, SOPClassCommonExtendedNegotiation]:
        """Tell pynetdicom that the private classes we accepted belong to the Storage service."""
        items: dict[str, SOPClassCommonExtendedNegotiation] = {}
        proposed = event.assoc.requestor.primitive.presentation_context_definition_list or []
        for cx in proposed:
            uid = cx.abstract_syntax
            if looks_like_storage(uid) and uid not in storage_sop_classes_set():
                item = SOPClassCommonExtendedNegotiation()
                item.sop_class_uid = uid
                item.service_class_uid = STORAGE_SERVICE_CLASS
                items[uid] = item
        # Keep whatever the requestor proposed for standard classes out: we do not act on it.
        return items

    @staticmethod
    def _on_connection(event: Any) -> None:
        """Cut per-message latency: no Nagle delay on our small C-STORE responses, and a shorter idle poll in
        pynetdicom's DUL loop (its 1 ms default sleep dominates for small instances on a loaded machine)."""
        try:
            event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            event.assoc.dul._run_loop_delay = 0.0002
        except (AttributeError, OSError):
            pass

    def _on_accepted(self, event: Any) -> None:
        calling, address = self._who(event)
        self._emit(ScpEvent("accepted", calling, address))

    def _on_rejected(self, event: Any) -> None:
        calling, address = self._who(event)
        log.info("association from %s (%s) rejected", calling, address)
        self._emit(ScpEvent("rejected", calling, address, message="calling AE not allowed or too many associations"))

    def _on_released(self, event: Any) -> None:
        calling, address = self._who(event)
        self._emit(ScpEvent("released", calling, address))

    def _on_aborted(self, event: Any) -> None:
        calling, address = self._who(event)
        self._emit(ScpEvent("aborted", calling, address))

    def _on_echo(self, event: Any) -> int:
        calling, address = self._who(event)
        self._emit(ScpEvent("echo", calling, address))
        return SUCCESS

    def _on_pdu(self, event: Any) -> None:
        """Abort an association whose current object grows past the size limit, before it fills memory."""
        if not isinstance(event.pdu, P_DATA_TF):
            return
        message = getattr(event.assoc.dimse, "message", None)
        data_set = getattr(message, "data_set", None)
        if data_set is None:
            return
        size = data_set.tell() + sum(
            len(item.presentation_data_value) for item in event.pdu.presentation_data_value_items
        )
        if size > self.local.max_object_bytes:
            calling, address = self._who(event)
            log.warning(
                "aborting association from %s: object larger than %d bytes", calling, self.local.max_object_bytes
            )
            self._emit(ScpEvent("refused", calling, address, OUT_OF_RESOURCES, message="object too large"))
            event.assoc.abort(block=False)

    def _on_store(self, event: Any) -> Dataset:
        calling, address = self._who(event)
        request = event.request
        try:
            raw = request.DataSet.getvalue()
            outcome = store_received(
                self.store,
                dataset_bytes=raw,
                transfer_syntax=str(event.context.transfer_syntax),
                affected_sop_class=str(request.AffectedSOPClassUID or ""),
                affected_sop_instance=str(request.AffectedSOPInstanceUID or ""),
                decoded=decode_event_dataset(event),
                source=f"scp:{calling}",
                source_ae=calling,
                max_bytes=self.local.max_object_bytes or None,
            )
        except Exception as exc:  # never let a bug turn into a silent "success"
            log.exception("C-STORE handler failed")
            outcome = StoreOutcome(PROCESSING_FAILURE, f"internal error: {type(exc).__name__}"[:64])
        with self._lock:
            if outcome.status in (SUCCESS, WARNING_MISMATCH):
                self.received += 1
            else:
                self.failed += 1
        kind = "stored" if outcome.status in (SUCCESS, WARNING_MISMATCH) else "refused"
        self._emit(
            ScpEvent(
                kind,
                calling,
                address,
                outcome.status,
                outcome.sop_instance_uid or str(request.AffectedSOPInstanceUID or ""),
                outcome.sop_class_uid or str(request.AffectedSOPClassUID or ""),
                outcome.series_uid,
                outcome.study_uid,
                outcome.duplicate,
                outcome.comment,
            )
        )
        return status_dataset(outcome.status, outcome.comment)


_STORAGE_SET: set[str] | None = None


def storage_sop_classes_set() -> set[str]:
    global _STORAGE_SET
    if _STORAGE_SET is None:
        _STORAGE_SET = {str(u) for u in storage_sop_classes()}
    return _STORAGE_SET
