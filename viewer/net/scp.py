"""The embedded Storage + Verification SCP: what PACS and modalities push to this workstation.

Received objects go through the same store as imports, so the atomic-write and duplicate rules are the
store's. The acceptor hands a data set over only once its last fragment has arrived, so an association
aborted mid-object never reaches the store. Each instance is written and indexed atomically before its
C-STORE response; it is synced to disk with its association's others (at release, and within a second
while the association lasts), or before its response when `LocalNode.sync_each_instance` is set.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dsutils import decode
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContext

from viewer.core.header_scan import HeaderScan, scan_dataset, scan_file
from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from viewer.core.settings import LocalNode
from viewer.core.store import (
    IncomingFile,
    InvalidObjectError,
    NotDicomError,
    StoreFullError,
    StudyStore,
    check_uid,
)
from viewer.net.acceptor import (
    Acceptor,
    AcceptorHandlers,
    AcceptorSettings,
    AssociationInfo,
    Command,
    Decision,
    Spool,
    peer_host,
)
from viewer.net.contexts import (
    SCP_TRANSFER_SYNTAXES,
    UNCOMPRESSED,
    VERIFICATION,
    choose_transfer_syntax,
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
    dataset_bytes: bytes | IncomingFile,
    transfer_syntax: str,
    affected_sop_class: str,
    affected_sop_instance: str,
    source: str,
    source_ae: str = "",
    max_bytes: int | None = None,
    sync: bool = True,
) -> StoreOutcome:
    """Check and store one received data set; returns the C-STORE status to answer with.

    Shared by the Storage SCP and the C-GET SCU (which receives instances the same way). The data set comes
    as bytes, or (a large object) as a whole Part 10 file already written through `open_received_file`. With
    `sync` False the instance is written and indexed atomically but left to the store's group sync (see
    `StudyStore.add_indexed`).
    """
    incoming = dataset_bytes if isinstance(dataset_bytes, IncomingFile) else None
    try:
        if incoming is not None:
            incoming.close()
            scan = scan_file(incoming.path)
            identified = _identify_scan(scan) if scan is not None else _identify_file(incoming.path)
        else:
            assert isinstance(dataset_bytes, bytes)
            if max_bytes is not None and len(dataset_bytes) > max_bytes:
                return StoreOutcome(OUT_OF_RESOURCES, "object larger than this workstation accepts")
            scan = scan_dataset(dataset_bytes, offset=0, transfer_syntax=transfer_syntax)
            identified = _identify_scan(scan) if scan is not None else _identify_bytes(dataset_bytes, transfer_syntax)
        if isinstance(identified, StoreOutcome):
            return identified
        sop_class, sop_instance, has_pixels = identified
        refusal = _check_uids(sop_class, sop_instance, affected_sop_class, affected_sop_instance)
        if refusal is not None:
            return refusal
        try:
            if incoming is not None:
                result = store.add_incoming(incoming, scan, source=source, sync=sync)
            else:
                assert isinstance(dataset_bytes, bytes)
                file_bytes = part10_header(sop_class, sop_instance, transfer_syntax, source_ae) + dataset_bytes
                if scan is not None:
                    result = store.add_indexed(file_bytes, scan.entry, source=source, sync=sync)
                else:
                    result = store.add_bytes(file_bytes, source=source)
        except StoreFullError as exc:
            return StoreOutcome(OUT_OF_RESOURCES, str(exc)[:64])
        except (InvalidObjectError, NotDicomError) as exc:
            return StoreOutcome(CANNOT_UNDERSTAND, str(exc)[:64])
        except OSError as exc:
            log.error("could not store a received instance: %s", exc)
            return StoreOutcome(PROCESSING_FAILURE, f"storage error: {exc.strerror or exc}"[:64])
    finally:
        if incoming is not None:
            incoming.discard()
    status = SUCCESS
    comment = ""
    if not has_pixels and is_image_storage(sop_class):
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


def open_received_file(
    store: StudyStore, sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str = ""
) -> IncomingFile | None:
    """A temp file in the store, started with the preamble and the file meta the request's UIDs give, for a
    data set too large to hold in memory (`store_received` checks the data set's UIDs against them).
    None when the request's UIDs cannot make a file meta."""
    if _check_uids(sop_class, sop_instance, "", "") is not None:
        return None
    incoming = store.incoming()
    try:
        incoming.write(part10_header(sop_class, sop_instance, transfer_syntax, source_ae))
    except BaseException:
        incoming.discard()
        raise
    return incoming


_Identified = tuple[str, str, bool]  # SOP Class UID, SOP Instance UID, has pixel data


def _identify_scan(scan: HeaderScan) -> _Identified | StoreOutcome:
    if scan.truncation:
        return StoreOutcome(CANNOT_UNDERSTAND, f"data set is incomplete: {scan.truncation}"[:64])
    return scan.entry.instance.sop_class_uid, scan.entry.instance.sop_instance_uid, scan.has_pixel_data


def _identify_bytes(dataset_bytes: bytes, transfer_syntax: str) -> _Identified | StoreOutcome:
    return _identify_decoded(_decode(dataset_bytes, transfer_syntax))


def _identify_file(path: Path) -> _Identified | StoreOutcome:
    try:
        decoded: Dataset | None = pydicom.dcmread(path, defer_size=4096)
    except Exception as exc:
        log.info("received a data set that cannot be decoded: %s", type(exc).__name__)
        decoded = None
    return _identify_decoded(decoded)


def _identify_decoded(decoded: Dataset | None) -> _Identified | StoreOutcome:
    if decoded is None:
        return StoreOutcome(CANNOT_UNDERSTAND, "data set cannot be decoded")
    try:
        sop_class = str(decoded.get("SOPClassUID", "") or "").strip()
        sop_instance = str(decoded.get("SOPInstanceUID", "") or "").strip()
    except Exception as exc:  # a hostile or corrupt element value
        return StoreOutcome(CANNOT_UNDERSTAND, f"unreadable UID: {type(exc).__name__}"[:64])
    return sop_class, sop_instance, any(tag in decoded for tag in _PIXEL_TAGS)


def _check_uids(sop_class: str, sop_instance: str, affected_class: str, affected_instance: str) -> StoreOutcome | None:
    if not sop_class or not sop_instance:
        return StoreOutcome(CANNOT_UNDERSTAND, "missing SOP Class or SOP Instance UID")
    try:
        check_uid("SOP Class UID", sop_class)
        check_uid("SOP Instance UID", sop_instance)
    except InvalidObjectError as exc:
        return StoreOutcome(CANNOT_UNDERSTAND, str(exc)[:64])
    if affected_class and sop_class != affected_class:
        return StoreOutcome(DATASET_MISMATCH, "SOP Class UID differs from the request")
    if affected_instance and sop_instance != affected_instance:
        return StoreOutcome(CANNOT_UNDERSTAND, "SOP Instance UID differs from the request")
    return None


def _decode(dataset_bytes: bytes, transfer_syntax: str) -> Dataset | None:
    """Full pydicom decode, for what the header scanner declines (big endian, deflated, odd encodings)."""
    syntax = UID(transfer_syntax)
    try:
        ds = decode(
            BytesIO(dataset_bytes),
            syntax.is_implicit_VR if syntax.is_transfer_syntax else True,
            syntax.is_little_endian if syntax.is_transfer_syntax else True,
            syntax.is_deflated if syntax.is_transfer_syntax else False,
        )
        # Touch the UIDs now so a malformed header fails here, not inside the store.
        ds.get("SOPClassUID")
        ds.get("SOPInstanceUID")
        return ds
    except Exception as exc:
        log.info("received a data set that cannot be decoded: %s", type(exc).__name__)
        return None


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


def part10_header(sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str = "") -> bytes:
    """Preamble, DICM prefix and file meta: what goes before a received data set in its stored file."""
    return b"\x00" * 128 + b"DICM" + encode_file_meta(sop_class, sop_instance, transfer_syntax, source_ae)


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


class StorageServer(AcceptorHandlers):
    """Storage + Verification SCP: our own lean acceptor (`viewer.net.acceptor`), one thread per association."""

    # Data sets larger than this are written to the store's temp folder as they arrive (a breast tomosynthesis
    # or whole-slide object can be gigabytes; ten associations of those must not be held in memory).
    spool_above_bytes = 32 << 20

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
        self._acceptor: Acceptor | None = None
        self._contexts: list[PresentationContext] = []
        self._lock = threading.Lock()
        self._associations = 0
        self._per_host: dict[str, int] = {}  # associations held, by the peer's IP address
        self._resolved: dict[str, tuple[float, frozenset[str]]] = {}  # allow-list host name -> (expiry, IPs)
        self.received = 0
        self.failed = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._acceptor is not None

    @property
    def port(self) -> int:
        """The port actually listened on (useful when `local.port` is 0)."""
        if self._acceptor is None:
            return self.local.port
        return int(self._acceptor.server_address[1])

    @property
    def ae_title(self) -> str:
        return self.local.ae_title

    def status_text(self) -> str:
        if not self.running:
            return f"{self.local.ae_title} stopped"
        return f"{self.local.ae_title} @ {self.port}" + (" (TLS)" if self.ssl_context else "")

    def start(self) -> None:
        if self._acceptor is not None:
            return
        if not self._contexts:
            self._contexts = [_context(VERIFICATION, UNCOMPRESSED[:2])]
            self._contexts += [_context(str(uid), SCP_TRANSFER_SYNTAXES) for uid in storage_sop_classes()]
        settings = AcceptorSettings(
            ae_title=self.local.ae_title,
            implementation_class_uid=IMPLEMENTATION_CLASS_UID,
            implementation_version_name=IMPLEMENTATION_VERSION_NAME,
            max_pdu=int(self.local.max_pdu),
            acse_timeout_s=self.local.acse_timeout_s,
            dimse_timeout_s=self.local.dimse_timeout_s,
            network_timeout_s=self.local.network_timeout_s,
            spool_above_bytes=self.spool_above_bytes,
            max_connections=2 * max(1, int(self.local.max_associations)) + 8,
            # A host may also have a few connections negotiating beside its associations (a PACS opening its
            # next association while the last one releases), not the whole table.
            max_connections_per_host=self.associations_per_host() + 4,
            idle_timeout_s=float(self.local.idle_association_s or 0.0),
        )
        acceptor = Acceptor(
            (self.local.bind_address, int(self.local.port)), settings, self, ssl_context=self.ssl_context
        )
        acceptor.start()
        self._acceptor = acceptor
        self._emit(ScpEvent("started", message=self.status_text()))

    def stop(self) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is None:
            return
        acceptor.shutdown()
        self.store.sync_pending()
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
        with self._lock:
            return self._associations

    def _emit(self, event: ScpEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("SCP event listener failed")

    def associations_per_host(self) -> int:
        """How many associations one IP address may hold at once (`LocalNode.max_associations_per_host`)."""
        total = max(1, int(self.local.max_associations))
        configured = int(self.local.max_associations_per_host or 0)
        if configured > 0:
            return min(configured, total)
        return max(1, total - total // 4)

    def calling_ae_allowed(self, calling_ae: str, host: str = "") -> bool:
        """Whether the allow-list admits `calling_ae` connecting from `host` (always, with the list off).

        An "AE@host" entry binds the AE title to that host; a bare "AE" entry admits it from anywhere."""
        if not self.local.restrict_calling_aes:
            return True
        calling_ae = calling_ae.strip()
        for entry in self.local.allowed_calling_aes:
            ae, bound = parse_allowed_entry(entry)
            if not ae or ae != calling_ae:
                continue
            if not bound or (host and self._host_matches(bound, host)):
                return True
        return False

    def _host_matches(self, pattern: str, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        try:
            return address in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            pass  # a host name
        now = time.monotonic()
        cached = self._resolved.get(pattern)
        if cached is None or cached[0] < now:
            try:
                infos = socket.getaddrinfo(pattern, None, proto=socket.IPPROTO_TCP)
                addresses = frozenset(peer_host(str(info[4][0])) for info in infos)
            except OSError as exc:
                log.warning("allow-list host %s cannot be resolved: %s", pattern, exc)
                addresses = frozenset()
            cached = (now + 60.0, addresses)  # re-resolved each minute: DHCP and DNS changes get picked up
            self._resolved[pattern] = cached
        return str(address) in cached[1]

    # ------------------------------------------------------------------ protocol decisions
    def negotiate(self, request: A_ASSOCIATE, info: AssociationInfo) -> Decision:
        """Refuse callers that do not name us or are outside the allow-list; accept private and unknown storage
        classes an archive may send."""
        if self.local.check_called_ae and info.called_ae != self.local.ae_title.strip():
            log.warning(
                "association from %s (%s) rejected: called AE title %r is not ours",
                info.calling_ae,
                info.address,
                info.called_ae,
            )
            self._emit(ScpEvent("rejected", info.calling_ae, info.address, message="called AE title is not ours"))
            # A-ASSOCIATE-RJ permanent, service-user, "called AE title not recognised" (PS3.8 9.3.4).
            return Decision(reject=(0x01, 0x01, 0x07))
        if not self.calling_ae_allowed(info.calling_ae, info.host):
            log.warning(
                "association from %s (%s) rejected: calling AE not in the allow-list", info.calling_ae, info.address
            )
            self._emit(
                ScpEvent("rejected", info.calling_ae, info.address, message="calling AE title not in the allow-list")
            )
            # A-ASSOCIATE-RJ permanent, service-user, "calling AE title not recognised" (PS3.8 9.3.4).
            return Decision(reject=(0x01, 0x01, 0x03))
        known = storage_sop_classes_set() | {VERIFICATION}
        extra = [
            _context(str(cx.abstract_syntax), SCP_TRANSFER_SYNTAXES)
            for cx in request.presentation_context_definition_list or []
            if str(cx.abstract_syntax) not in known and looks_like_storage(str(cx.abstract_syntax))
        ]
        per_host = self.associations_per_host()
        with self._lock:
            busy = ""
            if self._associations >= max(1, int(self.local.max_associations)):
                busy = "too many associations"
            elif self._per_host.get(info.host, 0) >= per_host:
                busy = "too many associations from that host"
            else:
                self._associations += 1
                self._per_host[info.host] = self._per_host.get(info.host, 0) + 1
        if busy:
            log.info("association from %s (%s) rejected: %s", info.calling_ae, info.address, busy)
            self._emit(ScpEvent("rejected", info.calling_ae, info.address, message=busy))
            # Transient, service-provider (presentation), local limit exceeded.
            return Decision(reject=(0x02, 0x03, 0x02))
        prefer_compressed = bool(self.local.prefer_compressed)
        return Decision(
            contexts=self._contexts + _unique(extra),
            choose_transfer_syntax=lambda proposed: choose_transfer_syntax(
                proposed, prefer_compressed=prefer_compressed
            ),
        )

    def accepted(self, info: AssociationInfo) -> None:
        self._emit(ScpEvent("accepted", info.calling_ae, info.address))

    def finished(self, info: AssociationInfo, how: str, detail: str = "") -> None:
        with self._lock:
            self._associations -= 1
            left = self._per_host.get(info.host, 0) - 1
            if left > 0:
                self._per_host[info.host] = left
            else:
                self._per_host.pop(info.host, None)
        if not self.local.sync_each_instance:
            # What an association delivered is on disk before we report it finished.
            try:
                self.store.sync_pending()
            except OSError as exc:
                log.error("could not sync received instances: %s", exc)
        self._emit(ScpEvent(how, info.calling_ae, info.address, message=detail))

    def c_echo(self, info: AssociationInfo) -> int:
        self._emit(ScpEvent("echo", info.calling_ae, info.address))
        return SUCCESS

    def refused(self, info: AssociationInfo, command: Command, status: int, comment: str) -> None:
        with self._lock:
            self.failed += 1
        self._emit(ScpEvent("refused", info.calling_ae, info.address, status, message=comment))

    def too_large(self, info: AssociationInfo, size: int) -> bool:
        limit = self.local.max_object_bytes
        if not limit or size <= limit:
            return False
        log.warning("aborting association from %s: object larger than %d bytes", info.calling_ae, limit)
        self._emit(ScpEvent("refused", info.calling_ae, info.address, OUT_OF_RESOURCES, message="object too large"))
        return True

    def open_spool(self, info: AssociationInfo, command: Command, transfer_syntax: str) -> IncomingFile | None:
        """Large objects are written to the store's temp folder as they arrive, not held in memory."""
        try:
            return open_received_file(
                self.store, command.affected_sop_class, command.affected_sop_instance, transfer_syntax, info.calling_ae
            )
        except (StoreFullError, OSError):
            return None  # kept in memory; the store refuses it with A700 once it is whole

    def c_store(
        self, info: AssociationInfo, command: Command, transfer_syntax: str, data_set: bytes | Spool
    ) -> tuple[int, str]:
        try:
            assert isinstance(data_set, (bytes, IncomingFile))
            outcome = store_received(
                self.store,
                dataset_bytes=data_set,
                transfer_syntax=transfer_syntax,
                affected_sop_class=command.affected_sop_class,
                affected_sop_instance=command.affected_sop_instance,
                source=f"scp:{info.calling_ae}",
                source_ae=info.calling_ae,
                max_bytes=self.local.max_object_bytes or None,
                sync=self.local.sync_each_instance,
            )
        except Exception as exc:  # never let a bug turn into a silent "success"
            log.exception("C-STORE handler failed")
            outcome = StoreOutcome(PROCESSING_FAILURE, f"internal error: {type(exc).__name__}"[:64])
        stored = outcome.status in (SUCCESS, WARNING_MISMATCH)
        with self._lock:
            if stored:
                self.received += 1
            else:
                self.failed += 1
        self._emit(
            ScpEvent(
                "stored" if stored else "refused",
                info.calling_ae,
                info.address,
                outcome.status,
                outcome.sop_instance_uid or command.affected_sop_instance,
                outcome.sop_class_uid or command.affected_sop_class,
                outcome.series_uid,
                outcome.study_uid,
                outcome.duplicate,
                outcome.comment,
            )
        )
        return outcome.status, outcome.comment


def parse_allowed_entry(entry: str) -> tuple[str, str]:
    """An allow-list entry, "AE" or "AE@host", as (AE title, host or '')."""
    entry = entry.strip()
    ae, sep, host = entry.rpartition("@")
    if not sep or not ae.strip() or not host.strip():
        return entry, ""
    return ae.strip(), host.strip()


def _context(abstract_syntax: str, transfer_syntaxes: Sequence[str]) -> PresentationContext:
    context = PresentationContext()
    context.abstract_syntax = abstract_syntax
    context.transfer_syntax = list(transfer_syntaxes)
    return context


def _unique(contexts: list[PresentationContext]) -> list[PresentationContext]:
    seen: dict[str, PresentationContext] = {}
    for context in contexts:
        seen.setdefault(str(context.abstract_syntax), context)
    return list(seen.values())


_STORAGE_SET: set[str] | None = None


def storage_sop_classes_set() -> set[str]:
    global _STORAGE_SET
    if _STORAGE_SET is None:
        _STORAGE_SET = {str(u) for u in storage_sop_classes()}
    return _STORAGE_SET
