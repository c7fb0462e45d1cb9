"""A pynetdicom association server whose acceptor threads wait on events instead of polling.

pynetdicom 3.0's acceptor runs two polling loops per association: the DUL thread sleeps `_run_loop_delay`
between checks of the socket and of its outgoing queue, and the association reactor sleeps 1 ms before each
look at the DIMSE message queue. For a sender pushing thousands of small instances one at a time, those
loops dominate: every C-STORE waits out a sleep or two, and the idle wake-ups of every thread compete for the
GIL with the handler doing real work.

Here both loops block on what they wait for: the DUL thread in `select()` on the socket plus a wake-up pipe
written whenever a primitive is queued for sending, the reactor on the DIMSE queue itself. Everything they
do once woken is pynetdicom's own code, in the same order as its loops (copied from pynetdicom 3.0.4; when
a different pynetdicom is installed the stock classes are used unchanged).
"""

from __future__ import annotations

import logging
import os
import queue
import select
import ssl
import threading
import weakref
from copy import deepcopy
from datetime import datetime
from typing import Any

import pynetdicom
from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

log = logging.getLogger(__name__)

SUPPORTED_PYNETDICOM = ("3.0.",)
# How long an idle loop waits before it re-checks its timers (ARTIM, network idle, release and abort
# requests); new data and queued primitives wake it at once.
_IDLE_WAIT_S = 0.005


def supported() -> bool:
    return pynetdicom.__version__.startswith(SUPPORTED_PYNETDICOM)


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class _EventDrivenDUL(DULServiceProvider):
    """DUL provider that sleeps in `select()` until the peer sends data or the local user queues a primitive."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # Closed only when nothing can write to them any more (closing at thread exit would race a late wake).
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # a full pipe is awake already; a closed one belongs to a finished thread

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def _wait_for_work(self) -> None:
        sock = self.socket
        raw = getattr(sock, "socket", None) if sock is not None else None
        if raw is None or not getattr(sock, "_is_connected", False):
            readers: list[Any] = [self._wake_r]
        else:
            if isinstance(raw, ssl.SSLSocket) and raw.pending():
                return  # TLS may hold decrypted bytes that select() cannot see
            readers = [raw, self._wake_r]
        try:
            ready, _, _ = select.select(readers, [], [], _IDLE_WAIT_S)
        except (OSError, ValueError):
            return  # a socket closed under us: the next loop turns that into Evt17
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    def run_reactor(self) -> None:
        self._run_event_driven()

    def _run_event_driven(self) -> None:
        # Same steps as DULServiceProvider.run_reactor (pynetdicom 3.0.4), with its idle sleep replaced by
        # `_wait_for_work`.
        self._idle_timer.start()
        idle = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
                idle = True
            if idle:
                self._wait_for_work()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                log.error("Exception in DUL.run(), aborting association")
                log.exception(exc)
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                if self.socket is not None:
                    self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                idle = True
                continue
            self.state_machine.do_action(event)
            idle = False


class _EventDrivenAssociation(Association):
    """Acceptor association whose reactor blocks on the DIMSE message queue instead of sleeping 1 ms a loop."""

    def __init__(self, ae: Any, mode: str) -> None:
        super().__init__(ae, mode)
        self.dul = _EventDrivenDUL(self)

    def _run_reactor(self) -> None:
        # Same steps as Association._run_reactor (pynetdicom 3.0.4) for an acceptor.
        self._is_paused = False
        while not self._kill:
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            try:
                context_id, msg = self.dimse.msg_queue.get(timeout=_IDLE_WAIT_S)
            except queue.Empty:
                context_id, msg = None, None
            if msg:
                self._serve_request(msg, int(context_id))
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                log.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                message = "Association Aborted"
                if self.acse.is_aborted("a-p-abort"):
                    message += " (A-P-ABORT)"
                log.info(message)
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                log.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


class EventDrivenRequestHandler(RequestHandler):
    """pynetdicom's request handler, creating `_EventDrivenAssociation`s."""

    def _create_association(self) -> Association:
        # Same steps as RequestHandler._create_association (pynetdicom 3.0.4) with our association class.
        assoc = _EventDrivenAssociation(self.ae, MODE_ACCEPTOR)
        assoc._server = self.server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        assoc.set_socket(AssociationSocket(assoc, client_socket=self.request))
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        assoc.acceptor.supported_contexts = deepcopy(self.server.contexts)
        assoc.requestor.address_info = self.remote
        handlers = self.server._handlers
        for event, bound in handlers.items():
            if event.is_intervention and bound:
                assoc.bind(event, *bound)
            elif isinstance(event, evt.NotificationEvent):
                for handler in bound:
                    assoc.bind(event, handler[0], handler[1])
        return assoc


def start_server(
    ae: Any,
    address: tuple[str, int],
    *,
    evt_handlers: list[Any],
    ssl_context: ssl.SSLContext | None = None,
) -> ThreadedAssociationServer:
    """Like `ae.start_server(address, block=False, ...)`, with event-driven acceptors where supported."""
    if not supported():
        log.info("pynetdicom %s: using its stock (polling) acceptor", pynetdicom.__version__)
        return ae.start_server(address, block=False, evt_handlers=evt_handlers, ssl_context=ssl_context)
    server = ae.make_server(
        address,
        ssl_context=ssl_context,
        evt_handlers=evt_handlers,
        server_class=ThreadedAssociationServer,
        request_handler=EventDrivenRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name=f"AcceptorServer@{address[1]}", daemon=True)
    thread.start()
    ae._servers.append(server)  # so that ae.shutdown() stops it, as for ae.start_server
    return server
