"""The embedded Storage + Verification SCP: what PACS and modalities push to this workstation.

Received objects go through the same store as imports, so the atomic-write and duplicate rules are the
store's. The acceptor hands a data set over only once its last fragment has arrived, so an association
aborted mid-object never reaches the store. Each instance is written atomically and listed in the store's
journal before its C-STORE response; its index row commits with a group (within 50 ms, and before the
release is answered), so a killed process loses none (recovery indexes the journal). It is synced to disk
with its association's others (at release, and within a second while the association lasts), or before its
response when `LocalNode.sync_each_instance` is set (then it is indexed before the response as well).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContext

from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from viewer.core.ingest import encode_file_meta, part10_header, request_uid_problem
from viewer.core.settings import LocalNode
from viewer.core.store import IncomingFile, StoreFullError, StudyStore
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
    looks_like_storage,
    storage_sop_classes,
)
from viewer.net.receive import (
    CANNOT_UNDERSTAND,
    DATASET_MISMATCH,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SUCCESS,
    WARNING_MISMATCH,
    StoreOutcome,
    receive,
)

log = logging.getLogger(__name__)

__all__ = [
    "CANNOT_UNDERSTAND",
    "DATASET_MISMATCH",
    "OUT_OF_RESOURCES",
    "PROCESSING_FAILURE",
    "SUCCESS",
    "WARNING_MISMATCH",
    "ScpEvent",
    "StorageServer",
    "StoreOutcome",
    "encode_file_meta",
    "open_received_file",
    "part10_header",
    "status_dataset",
    "store_received",
]


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


# The shared receive path (`viewer.net.receive`), under the name the C-GET SCU and tests know.
store_received = receive


def open_received_file(
    store: StudyStore, sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str = ""
) -> IncomingFile | None:
    """A temp file in the store, started with the preamble and the file meta the request's UIDs give, for a
    data set too large to hold in memory (`store_received` checks the data set's UIDs against them).
    None when the request's UIDs cannot make a file meta."""
    if request_uid_problem(sop_class, sop_instance):
        return None
    incoming = store.incoming()
    try:
        incoming.write(part10_header(sop_class, sop_instance, transfer_syntax, source_ae))
    except BaseException:
        incoming.discard()
        raise
    return incoming


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
        self.store.release_spare_files()
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

    def releasing(self, info: AssociationInfo) -> None:
        # What the requestor sent is in the index before it learns the association is over.
        self.store.commit_received()

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

    def corrections_allowed(self, calling_ae: str) -> bool:
        """Whether this peer's copy of a stored instance replaces it (LocalNode.accept_corrections_from)."""
        return calling_ae.strip() in {a.strip() for a in self.local.accept_corrections_from if a.strip()}

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
                replace=self.corrections_allowed(info.calling_ae),
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
