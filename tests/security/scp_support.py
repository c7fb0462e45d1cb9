"""Start our own Storage SCP for the security and reliability tests.

Uses engineer C's `viewer.net.scp.StorageServer` when it exists; until then a minimal pynetdicom SCP
that stores through the same `StudyStore` (so TLS and store behaviour are still tested end to end).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.net import free_port, wait_for_port
from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore


@dataclass
class RunningScp:
    ae_title: str
    port: int
    server: object


def have_storage_server() -> bool:
    try:
        from viewer.net.scp import StorageServer  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def our_scp(
    store: StudyStore,
    *,
    ssl_context: ssl.SSLContext | None = None,
    ae_title: str = "LIGHTBOX",
    allowed_calling_aes: list[str] | None = None,
) -> Iterator[RunningScp]:
    port = free_port()
    local = LocalNode(
        ae_title=ae_title,
        port=port,
        bind_address="127.0.0.1",
        restrict_calling_aes=allowed_calling_aes is not None,
        allowed_calling_aes=list(allowed_calling_aes or []),
    )
    if have_storage_server():
        from viewer.net.scp import StorageServer

        server = StorageServer(store, local, ssl_context=ssl_context)
        server.start()
        try:
            wait_for_port(port)
            yield RunningScp(ae_title, port, server)
        finally:
            server.stop()
        return
    yield from _fallback_scp(store, local, ssl_context)


def _fallback_scp(store: StudyStore, local: LocalNode, ssl_context: ssl.SSLContext | None) -> Iterator[RunningScp]:
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import Verification

    from viewer.core.store import StoreError, StoreFullError

    def handle_store(event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        try:
            store.add_dataset(ds, source=f"scp:{event.assoc.requestor.ae_title}")
        except StoreFullError:
            return 0xA700
        except StoreError:
            return 0xC000
        return 0x0000

    ae = AE(local.ae_title)
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)
    if local.restrict_calling_aes:
        ae.require_calling_aet = local.allowed_calling_aes
    server = ae.start_server(
        (local.bind_address, local.port),
        block=False,
        ssl_context=ssl_context,
        evt_handlers=[(evt.EVT_C_STORE, handle_store)],
    )
    try:
        yield RunningScp(local.ae_title, local.port, server)
    finally:
        server.shutdown()
