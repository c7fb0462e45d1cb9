"""A lean DICOM upper-layer acceptor for the Storage and Verification SCP.

pynetdicom's acceptor runs three threads per association that hand every PDU and DIMSE message to each
other through polled queues; with small instances that hand-off, not the network or the disk, sets the
pace (a pynetdicom SCP whose C-STORE handler does nothing reaches about a fifth of DCMTK storescp's rate).
Here one thread per association reads PDUs straight off its socket, reassembles the command and data set
fragments and answers in the same thread. pynetdicom still does the part worth sharing: decoding the
A-ASSOCIATE-RQ, presentation context and role negotiation, and encoding the A-ASSOCIATE-AC.

The protocol handled is exactly what a Storage/Verification SCP needs (PS3.8 and PS3.7): association
accept/reject, P-DATA with C-STORE and C-ECHO, release, abort, and the ARTIM-like timeouts. Anything else
a requestor sends is answered the way PS3.7 says (unrecognised operation) or ends the association with an
A-ABORT naming the reason.

Bounds against a peer that holds connection slots (PS3.15 leaves denial of service to the implementation):
- ARTIM (PS3.8 9.1.5) is a total deadline: from connect (TLS handshake included) to the last byte of the
  A-ASSOCIATE-RQ, however the bytes trickle in. The accept loop, which wakes twice a second anyway, shuts down
  connections past it; the association threads only read, so the limit costs nothing per PDU.
- At most `max_connections_per_host` connections from one IP address (negotiating or associated), so one
  host cannot fill every slot; the SCP adds a per-host association limit of its own.
- An association that has done no work (no C-STORE) for `idle_timeout_s` is aborted: silence ends it through
  the socket timeout, and a C-ECHO keep-alive is checked when it arrives.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from viewer.core.uids import uid_problem

log = logging.getLogger(__name__)

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"

C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
C_CANCEL_RQ = 0x0FFF
NO_DATA_SET = 0x0101
UNRECOGNISED_OPERATION = 0x0211
CANNOT_UNDERSTAND = 0xC000

# A-ABORT source 2 (service provider) reasons, PS3.8 9.3.8
ABORT_UNEXPECTED_PDU = 0x02
ABORT_INVALID_PARAMETER = 0x06
ABORT_UNSPECIFIED = 0x00

# Largest A-ASSOCIATE-RQ we read; real ones are a few KiB even with hundreds of contexts.
_MAX_ASSOCIATE_RQ = 1 << 20
# Largest P-DATA PDU we read when the requestor ignores the maximum we announced.
_MAX_PDATA = 64 << 20


class ProtocolError(Exception):
    """The requestor broke the upper-layer protocol; the association is aborted with `reason`."""

    def __init__(self, message: str, reason: int = ABORT_UNEXPECTED_PDU) -> None:
        super().__init__(message)
        self.reason = reason


class PeerClosed(Exception):
    """The connection closed (or an A-ABORT arrived) while we waited for data."""


@dataclass
class Command:
    """A decoded DIMSE command set: the few elements a Storage/Verification SCP acts on."""

    field: int = 0
    message_id: int = 0
    data_set_type: int = NO_DATA_SET
    affected_sop_class: str = ""
    affected_sop_instance: str = ""
    move_originator_ae: str = ""


@dataclass
class AssociationInfo:
    calling_ae: str
    called_ae: str
    address: str
    contexts: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (abstract, transfer syntax)
    peer_max_pdu: int = 0
    host: str = ""  # the peer's IP address alone


@dataclass(frozen=True)
class Decision:
    """What the SCP says to an A-ASSOCIATE-RQ: accept with `contexts`, or reject with (result, source, reason).

    `choose_transfer_syntax`, when given, picks the syntax of each accepted context from the ones the
    requestor proposed in it (None: keep the first of `contexts`' syntaxes the requestor proposed)."""

    contexts: Sequence[PresentationContext] = ()
    reject: tuple[int, int, int] | None = None
    choose_transfer_syntax: Callable[[Sequence[str]], str | None] | None = None


class Spool(Protocol):
    """Where a large data set is written as it arrives, instead of memory."""

    def write(self, data: bytes | memoryview) -> None: ...

    def discard(self) -> None: ...


class AcceptorHandlers:
    """What the SCP decides; the acceptor only speaks the protocol. All calls come from association threads."""

    def negotiate(self, request: A_ASSOCIATE, info: AssociationInfo) -> Decision:
        raise NotImplementedError

    def accepted(self, info: AssociationInfo) -> None: ...

    def c_store(
        self, info: AssociationInfo, command: Command, transfer_syntax: str, data_set: bytes | Spool
    ) -> tuple[int, str]:
        """Store a data set: bytes, or the `open_spool` result it was written to (the handler owns it now)."""
        raise NotImplementedError

    def open_spool(self, info: AssociationInfo, command: Command, transfer_syntax: str) -> Spool | None:
        """Somewhere to write a data set that has outgrown `AcceptorSettings.spool_above_bytes`; None keeps
        it in memory."""
        return None

    def c_echo(self, info: AssociationInfo) -> int:
        return 0x0000

    def refused(self, info: AssociationInfo, command: Command, status: int, comment: str) -> None:
        """A C-STORE was refused by the acceptor itself (a malformed command set), before `c_store`."""

    def too_large(self, info: AssociationInfo, size: int) -> bool:
        """True when a data set of `size` bytes (still arriving) must be refused by aborting."""
        return False

    def releasing(self, info: AssociationInfo) -> None:
        """The requestor asked to release: called before the release is answered."""

    def finished(self, info: AssociationInfo, how: str, detail: str = "") -> None:
        """`how` is 'released' or 'aborted'."""


@dataclass
class AcceptorSettings:
    ae_title: str
    implementation_class_uid: str
    implementation_version_name: str
    max_pdu: int = 116794
    # ARTIM: the whole time from connect to a complete A-ASSOCIATE-RQ (not a per-read timeout).
    acse_timeout_s: float = 30.0
    dimse_timeout_s: float = 60.0
    network_timeout_s: float = 60.0
    spool_above_bytes: int = 32 << 20
    # Connections still negotiating count too: a flood of silent connections must not cost a thread each.
    max_connections: int = 64
    max_connections_per_host: int = 0  # 0: no limit of its own (max_connections still applies)
    idle_timeout_s: float = 0.0  # 0: none beyond the network and DIMSE timeouts


class Acceptor:
    """Listens on one address and runs each association in its own daemon thread."""

    def __init__(
        self,
        address: tuple[str, int],
        settings: AcceptorSettings,
        handlers: AcceptorHandlers,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = handlers
        self.ssl_context = ssl_context
        self._listener = socket.create_server(address, reuse_port=False)
        self._listener.settimeout(0.5)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        # Connections still before the end of their A-ASSOCIATE-RQ -> their ARTIM deadline (monotonic).
        self._negotiating: dict[socket.socket, float] = {}
        self._per_host: dict[str, int] = {}
        self._next_reap = 0.0
        self._thread = threading.Thread(target=self._serve, name="lightbox-scp-accept", daemon=True)

    @property
    def server_address(self) -> tuple[str, int]:
        return self._listener.getsockname()[:2]

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._reap_overdue()
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            host = peer_host(peer[0])
            thread = threading.Thread(
                target=self._run_association, args=(conn, peer, host), name="lightbox-scp-association", daemon=True
            )
            per_host_limit = self.settings.max_connections_per_host
            with self._lock:
                full = len(self._threads) >= self.settings.max_connections
                host_full = bool(per_host_limit) and self._per_host.get(host, 0) >= per_host_limit
                if not full and not host_full:
                    self._connections.add(conn)
                    self._threads.add(thread)
                    self._per_host[host] = self._per_host.get(host, 0) + 1
                    if self.settings.acse_timeout_s:
                        self._negotiating[conn] = time.monotonic() + self.settings.acse_timeout_s
            if full:
                log.warning("connection from %s:%s closed: %d connections already open", *peer[:2], len(self._threads))
                conn.close()
                continue
            if host_full:
                log.warning("connection from %s:%s closed: %d connections from that host", *peer[:2], per_host_limit)
                conn.close()
                continue
            thread.start()

    def _reap_overdue(self) -> None:
        """Shut down the connections whose A-ASSOCIATE-RQ is not complete by their ARTIM deadline.

        Their threads, blocked in a read, see the connection end and finish. Done from the accept loop so a
        trickling peer costs no timer, and a trickle cannot restart the clock as a per-read timeout would."""
        now = time.monotonic()
        if now < self._next_reap:
            return
        self._next_reap = now + 0.5
        with self._lock:  # held while shutting down: the owning thread closes a socket only under this lock
            overdue = [conn for conn, deadline in self._negotiating.items() if deadline <= now]
            for conn in overdue:
                del self._negotiating[conn]
                with contextlib.suppress(OSError):
                    # The plain socket's shutdown, also for a TLS socket: it must not touch the TLS state
                    # that its own thread is using.
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)
        if overdue:
            log.info("closed %d connection(s) that sent no complete association request in time", len(overdue))

    def negotiation_done(self, conn: socket.socket) -> None:
        """The A-ASSOCIATE-RQ on `conn` is complete: ARTIM stops (PS3.8 9.1.5)."""
        with self._lock:
            self._negotiating.pop(conn, None)

    def _run_association(self, conn: socket.socket, peer: tuple[str, int], host: str) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(self.settings.acse_timeout_s or None)
            if self.ssl_context is not None:
                try:
                    tls = self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                except (ssl.SSLError, OSError) as exc:
                    log.info("TLS handshake from %s:%s failed: %s", peer[0], peer[1], exc)
                    return
                with self._lock:  # the TLS socket took over the descriptor; the deadline follows it
                    self._connections.discard(conn)
                    self._connections.add(tls)
                    deadline = self._negotiating.pop(conn, None)
                    if deadline is not None:
                        self._negotiating[tls] = deadline
                conn = tls
                try:
                    tls.do_handshake()
                except (ssl.SSLError, OSError) as exc:
                    log.info("TLS handshake from %s:%s failed: %s", peer[0], peer[1], exc)
                    return
            _Association(self, conn, f"{peer[0]}:{peer[1]}", host).run()
        except Exception:
            log.exception("association thread failed")
        finally:
            with self._lock:
                self._negotiating.pop(conn, None)
                try:
                    conn.close()
                except OSError:
                    pass
                self._connections.discard(conn)
                self._threads.discard(threading.current_thread())
                left = self._per_host.get(host, 0) - 1
                if left > 0:
                    self._per_host[host] = left
                else:
                    self._per_host.pop(host, None)


class _Association:
    def __init__(self, acceptor: Acceptor, conn: socket.socket, address: str, host: str) -> None:
        self.acceptor = acceptor
        self.settings = acceptor.settings
        self.handlers = acceptor.handlers
        self.conn = conn
        self.reader = conn.makefile("rb", buffering=1 << 16)
        self.info = AssociationInfo("", "", address, host=host)
        self._last_work = 0.0  # monotonic time of acceptance or of the last C-STORE

    # ------------------------------------------------------------------ wire
    def _read_exact(self, size: int) -> bytes:
        data = self.reader.read(size)
        if data is None or len(data) < size:
            raise PeerClosed("connection closed")
        return data

    def _read_pdu(self) -> tuple[int, bytes]:
        header = self._read_exact(6)
        pdu_type, length = header[0], struct.unpack(">I", header[2:6])[0]
        limit = _MAX_ASSOCIATE_RQ if pdu_type == 0x01 else _MAX_PDATA
        if length > limit:
            raise ProtocolError(f"PDU of {length} bytes is larger than allowed", ABORT_INVALID_PARAMETER)
        return pdu_type, self._read_exact(length)

    def _send(self, data: bytes) -> None:
        self.conn.sendall(data)

    def _send_abort(self, reason: int) -> None:
        try:
            self._send(b"\x07\x00\x00\x00\x00\x04\x00\x00\x02" + bytes([reason]))
        except OSError:
            pass

    # ------------------------------------------------------------------ phases
    def run(self) -> None:
        try:
            if not self._associate():
                return
        except (PeerClosed, OSError):
            return
        except ProtocolError as exc:
            log.info("association request from %s refused: %s", self.info.address, exc)
            self._send_abort(exc.reason)
            return
        how, detail = "aborted", ""
        try:
            self.conn.settimeout(self._idle_timeout())
            self._transfer()
            how = "released"
        except PeerClosed as exc:
            detail = str(exc)
        except ProtocolError as exc:
            detail = str(exc)
            log.info("aborting association from %s: %s", self.info.address, exc)
            self._send_abort(exc.reason)
        except TimeoutError:
            detail = "timed out"
            self._send_abort(ABORT_UNSPECIFIED)
        except OSError as exc:
            detail = exc.strerror or type(exc).__name__
        except Exception as exc:  # a bug of ours: end the association cleanly rather than leave the peer hanging
            log.exception("association from %s failed", self.info.address)
            detail = f"internal error: {type(exc).__name__}"
            self._send_abort(ABORT_UNSPECIFIED)
        self.handlers.finished(self.info, how, detail)

    def _idle_timeout(self) -> float | None:
        timeouts = [
            t
            for t in (self.settings.network_timeout_s, self.settings.dimse_timeout_s, self.settings.idle_timeout_s)
            if t
        ]
        return min(timeouts) if timeouts else None

    def _associate(self) -> bool:
        pdu_type, body = self._read_pdu()
        self.acceptor.negotiation_done(self.conn)
        if pdu_type != 0x01:
            raise ProtocolError(f"expected A-ASSOCIATE-RQ, got PDU type 0x{pdu_type:02x}")
        request_pdu = A_ASSOCIATE_RQ()
        try:
            request_pdu.decode(b"\x01\x00" + struct.pack(">I", len(body)) + body)
            request = request_pdu.to_primitive()
        except Exception as exc:
            raise ProtocolError(f"malformed A-ASSOCIATE-RQ ({type(exc).__name__})", ABORT_INVALID_PARAMETER) from exc
        self.info.calling_ae = str(request.calling_ae_title or "").strip()
        self.info.called_ae = str(request.called_ae_title or "").strip()
        for item in request.user_information or []:
            if isinstance(item, MaximumLengthNotification):
                self.info.peer_max_pdu = int(item.maximum_length_received or 0)
        if str(request.application_context_name) != APPLICATION_CONTEXT:
            decision = Decision(reject=(0x01, 0x01, 0x02))  # application context name not supported
        else:
            decision = self.handlers.negotiate(request, self.info)
        if decision.reject is not None:
            result, source, reason = decision.reject
            self._send(b"\x03\x00\x00\x00\x00\x04\x00" + bytes([result, source, reason]))
            self._await_close()
            return False

        try:
            self._accept(request, decision)
        except BaseException:
            # The SCP counted this association when it decided to accept it; it must hear that it ended.
            self.handlers.finished(self.info, "aborted", "the requestor went away during negotiation")
            raise
        self._last_work = time.monotonic()
        self.handlers.accepted(self.info)
        return True

    def _accept(self, request: A_ASSOCIATE, decision: Decision) -> None:
        roles = {
            str(item.sop_class_uid): (item.scu_role, item.scp_role)
            for item in request.user_information or []
            if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
        }
        proposed = request.presentation_context_definition_list
        results, role_items = negotiate_as_acceptor(proposed, list(decision.contexts), roles or None)
        if decision.choose_transfer_syntax is not None:
            offered = {cx.context_id: cx.transfer_syntax for cx in proposed}
            ours = {str(cx.abstract_syntax): cx.transfer_syntax for cx in decision.contexts}
            for cx in results:
                if cx.result == 0x00 and cx.context_id in offered:
                    supported = ours.get(str(cx.abstract_syntax), ())
                    choice = decision.choose_transfer_syntax(
                        [str(ts) for ts in offered[cx.context_id] if ts in supported]
                    )
                    if choice is not None:
                        cx.transfer_syntax = [choice]
        self.info.contexts = {
            int(cx.context_id): (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
            for cx in results
            if cx.result == 0x00 and cx.context_id is not None
        }
        response = A_ASSOCIATE()
        response.application_context_name = APPLICATION_CONTEXT
        response.calling_ae_title = request.calling_ae_title
        response.called_ae_title = request.called_ae_title
        response.result = 0x00
        response.result_source = 0x01
        response.presentation_context_definition_results_list = results
        max_length = MaximumLengthNotification()
        max_length.maximum_length_received = int(self.settings.max_pdu)
        class_uid = ImplementationClassUIDNotification()
        class_uid.implementation_class_uid = self.settings.implementation_class_uid
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = self.settings.implementation_version_name
        response.user_information = [max_length, class_uid, version, *role_items]
        accept_pdu = A_ASSOCIATE_AC()
        accept_pdu.from_primitive(response)
        self._send(accept_pdu.encode())

    def _await_close(self) -> None:
        """After a reject the requestor closes the connection; give it a moment (ARTIM) to do so."""
        try:
            self.conn.settimeout(min(self.settings.acse_timeout_s or 5.0, 5.0))
            self.reader.read(1)
        except OSError:
            pass

    def _transfer(self) -> None:
        self._spool: Spool | None = None
        try:
            self._transfer_messages()
        finally:
            if self._spool is not None:  # the association ended inside a large data set
                self._spool.discard()

    def _transfer_messages(self) -> None:
        command_parts: list[bytes] = []
        data_parts: list[bytes] = []
        data_size = 0
        command: Command | None = None
        refusal = ""  # why the C-STORE whose data set is arriving is refused before it is stored
        context_id = 0
        while True:
            pdu_type, body = self._read_pdu()
            if pdu_type == 0x05:  # A-RELEASE-RQ
                self.handlers.releasing(self.info)
                self._send(b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00")
                return
            if pdu_type == 0x07:  # A-ABORT
                raise PeerClosed("aborted by the requestor")
            if pdu_type != 0x04:
                raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02x} during the association")
            offset, end = 0, len(body)
            while offset < end:
                if offset + 6 > end:
                    raise ProtocolError("truncated presentation data value item", ABORT_INVALID_PARAMETER)
                item_length = struct.unpack_from(">I", body, offset)[0]
                item_end = offset + 4 + item_length
                if item_length < 2 or item_end > end:
                    raise ProtocolError("bad presentation data value length", ABORT_INVALID_PARAMETER)
                pdv_context, control = body[offset + 4], body[offset + 5]
                fragment = body[offset + 6 : item_end]
                offset = item_end
                if pdv_context not in self.info.contexts:
                    raise ProtocolError(f"data on presentation context {pdv_context}, which was not accepted")
                is_command, is_last = control & 0x01, control & 0x02
                if is_command:
                    if command is not None:
                        raise ProtocolError("a new command arrived before the data set of the last one")
                    command_parts.append(fragment)
                    context_id = pdv_context
                    if is_last:
                        command = decode_command(b"".join(command_parts))
                        command_parts = []
                        if command.data_set_type == NO_DATA_SET:
                            self._dispatch(context_id, command, b"")
                            command = None
                        elif command.field == C_STORE_RQ:
                            refusal = command_uid_problem(command)
                    continue
                if command is None or pdv_context != context_id:
                    raise ProtocolError("a data set arrived without its command")
                if refusal:  # read to stay in step with the requestor, but neither kept nor stored
                    if is_last:
                        self._refuse_store(context_id, command, refusal)
                        command, refusal = None, ""
                    continue
                data_size += len(fragment)
                if self.handlers.too_large(self.info, data_size):
                    raise ProtocolError("object larger than this workstation accepts", ABORT_UNSPECIFIED)
                if self._spool is None and data_size > self.settings.spool_above_bytes:
                    self._spool = self.handlers.open_spool(self.info, command, self.info.contexts[context_id][1])
                    if self._spool is not None:
                        for part in data_parts:
                            self._spool.write(part)
                        data_parts = []
                if self._spool is not None:
                    self._spool.write(fragment)
                else:
                    data_parts.append(fragment)
                if is_last:
                    data: bytes | Spool
                    if self._spool is not None:
                        data, self._spool = self._spool, None
                    else:
                        data = data_parts[0] if len(data_parts) == 1 else b"".join(data_parts)
                    data_parts, data_size = [], 0
                    self._dispatch(context_id, command, data)
                    command = None

    # ------------------------------------------------------------------ DIMSE
    def _refuse_store(self, context_id: int, command: Command, comment: str) -> None:
        """A C-STORE failure response (C000, PS3.4 B.2.3) for a request whose command set names no valid UID."""
        log.info("C-STORE from %s refused: %s", self.info.address, comment)
        self.handlers.refused(self.info, command, CANNOT_UNDERSTAND, comment)
        abstract = self.info.contexts[context_id][0]
        sop_class = command.affected_sop_class if not uid_problem(command.affected_sop_class) else abstract
        response = encode_response(C_STORE_RSP, command.message_id, CANNOT_UNDERSTAND, sop_class, "", comment)
        self._send(encode_pdata(context_id, response, self.info.peer_max_pdu))

    def _dispatch(self, context_id: int, command: Command, data: bytes | Spool) -> None:
        abstract, transfer_syntax = self.info.contexts[context_id]
        if command.field == C_STORE_RQ:
            self._last_work = time.monotonic()
            status, comment = self.handlers.c_store(self.info, command, transfer_syntax, data)
            response = encode_response(
                C_STORE_RSP,
                command.message_id,
                status,
                command.affected_sop_class or abstract,
                command.affected_sop_instance,
                comment,
            )
        elif not isinstance(data, bytes):
            data.discard()  # a data set spooled for a command that is not a C-STORE
            raise ProtocolError(f"command 0x{command.field:04x} does not take a data set this large")
        elif command.field == C_ECHO_RQ:
            idle = self.settings.idle_timeout_s
            if idle and time.monotonic() - self._last_work > idle:
                # C-ECHO as a keep-alive must not hold a slot that a sender with work could use.
                raise ProtocolError(f"no C-STORE for {idle:g} s (only C-ECHO)", ABORT_UNSPECIFIED)
            status = self.handlers.c_echo(self.info)
            response = encode_response(C_ECHO_RSP, command.message_id, status, command.affected_sop_class or abstract)
        elif command.field == C_CANCEL_RQ:
            return  # nothing of ours runs long enough to cancel
        elif command.field & 0x8000:
            raise ProtocolError(f"unexpected response command 0x{command.field:04x} from the requestor")
        else:
            response = encode_response(
                command.field | 0x8000,
                command.message_id,
                UNRECOGNISED_OPERATION,
                command.affected_sop_class or abstract,
                command.affected_sop_instance,
            )
        self._send(encode_pdata(context_id, response, self.info.peer_max_pdu))


# ---------------------------------------------------------------------- command set codec (implicit VR LE)
_COMMAND_ELEMENT = struct.Struct("<HHI")


def decode_command(data: bytes) -> Command:
    command = Command()
    offset, end = 0, len(data)
    while offset < end:
        if offset + 8 > end:
            raise ProtocolError("truncated command set", ABORT_INVALID_PARAMETER)
        group, element, length = _COMMAND_ELEMENT.unpack_from(data, offset)
        offset += 8
        value = data[offset : offset + length]
        offset += length
        if len(value) != length or group != 0x0000:
            raise ProtocolError("malformed command set", ABORT_INVALID_PARAMETER)
        if element == 0x0100:
            command.field = _us(value)
        elif element == 0x0110:
            command.message_id = _us(value)
        elif element == 0x0800:
            command.data_set_type = _us(value)
        elif element == 0x0002:
            command.affected_sop_class = _uid(value)
        elif element == 0x1000:
            command.affected_sop_instance = _uid(value)
        elif element == 0x1030:
            command.move_originator_ae = value.decode("ascii", "replace").strip()
    if not command.field:
        raise ProtocolError("command set without a Command Field", ABORT_INVALID_PARAMETER)
    return command


def command_uid_problem(command: Command) -> str:
    """Why a C-STORE-RQ's command set cannot be acted on ('' when it can): its Affected SOP Instance UID
    (mandatory, PS3.7 9.3.1.1) or a given Affected SOP Class UID is not a UID by PS3.5 9.1."""
    if uid_problem(command.affected_sop_instance):
        return "Affected SOP Instance UID is not a valid UID (PS3.5 9.1)"
    if command.affected_sop_class and uid_problem(command.affected_sop_class):
        return "Affected SOP Class UID is not a valid UID (PS3.5 9.1)"
    return ""


def peer_host(address: str) -> str:
    """The IP address a peer connects from, IPv4-mapped IPv6 addresses written as IPv4."""
    return address[7:] if address.startswith("::ffff:") and "." in address else address


def _us(value: bytes) -> int:
    if len(value) != 2:
        raise ProtocolError("bad US value in the command set", ABORT_INVALID_PARAMETER)
    return int.from_bytes(value, "little")


def _uid(value: bytes) -> str:
    return value.rstrip(b"\x00 ").decode("ascii", "replace")


def _element(element: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00" if element in (0x0002, 0x1000) else b" "
    return _COMMAND_ELEMENT.pack(0x0000, element, len(value)) + value


def encode_response(
    command_field: int,
    message_id: int,
    status: int,
    affected_sop_class: str = "",
    affected_sop_instance: str = "",
    error_comment: str = "",
) -> bytes:
    """A response command set, elements in tag order, with its group length."""
    parts = []
    if affected_sop_class:
        parts.append(_element(0x0002, affected_sop_class.encode("ascii", "replace")))
    parts.append(_element(0x0100, struct.pack("<H", command_field)))
    parts.append(_element(0x0120, struct.pack("<H", message_id)))
    parts.append(_element(0x0800, struct.pack("<H", NO_DATA_SET)))
    parts.append(_element(0x0900, struct.pack("<H", status)))
    if error_comment and status not in (0x0000,):
        parts.append(_element(0x0902, error_comment.encode("ascii", "replace")[:64]))
    if affected_sop_instance:
        parts.append(_element(0x1000, affected_sop_instance.encode("ascii", "replace")))
    body = b"".join(parts)
    return _element(0x0000, struct.pack("<I", len(body))) + body


def encode_pdata(context_id: int, command: bytes, peer_max_pdu: int) -> bytes:
    """P-DATA-TF PDUs carrying a command set, split to the requestor's maximum PDU length."""
    room = peer_max_pdu - 6 if peer_max_pdu and peer_max_pdu > 6 + 1 else len(command)
    room = max(room, 1)
    pdus = []
    for start in range(0, len(command), room):
        fragment = command[start : start + room]
        last = start + room >= len(command)
        item = struct.pack(">IBB", len(fragment) + 2, context_id, 0x03 if last else 0x01) + fragment
        pdus.append(b"\x04\x00" + struct.pack(">I", len(item)) + item)
    return b"".join(pdus)
