"""One way for our SCUs (store, and in time print and query/retrieve) to open and close an association.

The AE carries the settings of our `LocalNode` (AE title, max PDU, timeouts, implementation UID). TLS is taken
as the Q/R SCU takes it: the caller passes the client `ssl.SSLContext` (or None for plain TCP), and the peer's
host is the name its certificate is checked against. A failed association raises `NetworkError` whose message
is written for the user (refused, silent, rejected with the reason, or no service accepted).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association

from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from viewer.core.settings import LocalNode, RemoteNode, TlsSettings
from viewer.net.statuses import (
    FailureKind,
    NetworkError,
    aborted,
    connection_refused,
    explain_rejection,
    timed_out,
)

# PS3.8 9.3.2.2: a presentation context ID is an odd number from 1 to 255, so at most 128 per association.
MAX_PRESENTATION_CONTEXTS = 128


def make_ae(local: LocalNode) -> AE:
    ae = AE(ae_title=local.ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.acse_timeout = local.acse_timeout_s
    ae.dimse_timeout = local.dimse_timeout_s
    ae.network_timeout = local.network_timeout_s
    ae.connection_timeout = min(local.acse_timeout_s, 15.0)
    ae.maximum_pdu_size = int(local.max_pdu)
    return ae


def client_ssl_context(node: RemoteNode, tls: TlsSettings) -> ssl.SSLContext | None:
    """The client context for `node` when it is reached over TLS, else None (what `associate` takes)."""
    if not node.use_tls:
        return None
    from viewer.net.tls import client_context

    return client_context(tls)


def probe(host: str, port: int, timeout: float) -> NetworkError:
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


def associate(
    node: RemoteNode,
    local: LocalNode,
    *,
    contexts: Iterable[tuple[str, Sequence[str]]],
    ssl_context: ssl.SSLContext | None = None,
    ext_neg: list[Any] | None = None,
    evt_handlers: list[Any] | None = None,
) -> Association:
    """An established association with `node` proposing `contexts` (abstract syntax, transfer syntaxes)."""
    ae = make_ae(local)
    contexts = list(contexts)
    if len(contexts) > MAX_PRESENTATION_CONTEXTS:
        raise NetworkError(
            f"Too many kinds of object to send on one association ({len(contexts)} presentation contexts, "
            f"at most {MAX_PRESENTATION_CONTEXTS}).",
            FailureKind.NO_CONTEXT,
        )
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
            f"{node.ae_title} accepted the connection but none of the services we asked for.",
            FailureKind.NO_CONTEXT,
        )
    elapsed = time.monotonic() - started
    if elapsed >= local.acse_timeout_s - 0.5:
        raise timed_out(node.host, node.port, "association answer")
    raise probe(node.host, int(node.port), local.acse_timeout_s)


def release(assoc: Association) -> None:
    """Release (A-RELEASE) if still established; a peer that already went away is not an error here."""
    with contextlib.suppress(Exception):
        if assoc.is_established:
            assoc.release()
