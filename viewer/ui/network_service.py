"""Runs the embedded Storage SCP with the application and brings its events into the GUI thread.

The SCP calls back from pynetdicom's threads; `NetworkService.scp_event` is emitted from there and Qt
queues it to the receivers living in the GUI thread, so slots never run in a network thread.
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any

from PySide6.QtCore import QObject, Signal

from viewer.core.context import AppContext
from viewer.core.settings import RemoteNode
from viewer.net.scp import ScpEvent, StorageServer

log = logging.getLogger(__name__)


class NetworkService(QObject):
    scp_event = Signal(object)  # ScpEvent
    status_changed = Signal(str)  # "LIGHTBOX @ 11112", "Storage SCP: off", or why it is not running

    def __init__(self, ctx: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.server: StorageServer | None = None
        self._status = "Storage SCP: off"
        self.received = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def status_text(self) -> str:
        return self._status

    def _set_status(self, text: str) -> None:
        self._status = text
        self.status_changed.emit(text)

    def start(self) -> bool:
        """Start the SCP with the current settings; False (and a status saying why) when it cannot run."""
        if self.server is not None:
            return True
        local = self.ctx.settings.local
        if not local.enabled:
            self._set_status("Storage SCP: off")
            return False
        try:
            ssl_context = self.server_ssl_context()
        except Exception as exc:  # a bad certificate path must not start a plain-TCP SCP in its place
            log.error("Storage SCP not started: TLS settings unusable: %s", exc)
            self._set_status(f"{local.ae_title}: TLS settings unusable")
            return False
        server = StorageServer(self.ctx.store, local, ssl_context=ssl_context, on_event=self._forward)
        try:
            server.start()
        except OSError as exc:
            log.error("Storage SCP could not listen on %s:%s: %s", local.bind_address, local.port, exc)
            self._set_status(f"{local.ae_title}: port {local.port} unavailable")
            return False
        self.server = server
        from viewer.core import audit

        trail = audit.default_log()
        if isinstance(trail, audit.AuditLog):
            trail.attach_server(server)  # peer hosts for "received" messages
        self._set_status(server.status_text())
        return True

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
        self._set_status("Storage SCP: off")

    def restart(self) -> bool:
        self.stop()
        return self.start()

    # ------------------------------------------------------------------ TLS for SCP and SCUs
    def server_ssl_context(self) -> ssl.SSLContext | None:
        if not self.ctx.settings.tls.enabled:
            return None
        from viewer.net.tls import server_context

        return server_context(self.ctx.settings.tls)

    def client_ssl_context(self, node: RemoteNode) -> ssl.SSLContext | None:
        if not node.use_tls:
            return None
        from viewer.net.tls import client_context

        return client_context(self.ctx.settings.tls)

    def subscribe_arrivals(self, listener):  # type: ignore[no-untyped-def]
        """`StorageServer.subscribe` while running (progress for archives that send no pendings)."""
        if self.server is None:
            return lambda: None
        return self.server.subscribe(listener)

    # ------------------------------------------------------------------ events
    def _forward(self, event: ScpEvent) -> None:
        if event.kind == "stored":
            self.received += 1
        self.scp_event.emit(event)


def install_network(window: Any) -> NetworkService:
    """Hook networking into the main window: SCP started with the app, its status in the status bar,
    and the Query/Retrieve dock. `LIGHTBOX_SCP_AUTOSTART=0` keeps the SCP from listening (tests)."""
    from PySide6.QtCore import Qt

    from viewer.ui.qr_panel import QueryRetrievePanel

    service = NetworkService(window.ctx, window)
    window.network_service = service
    service.status_changed.connect(window.set_scp_status)
    panel = QueryRetrievePanel(window.ctx, service, window)
    window.qr_panel = panel
    dock = window.add_dock(panel, "Query/Retrieve", Qt.DockWidgetArea.LeftDockWidgetArea)
    dock.hide()  # the browser stays the first thing seen; View ▸ Query/Retrieve shows it
    window.add_menu_action("Tools", "&Query/Retrieve…", lambda: (dock.show(), dock.raise_()))
    if os.environ.get("LIGHTBOX_SCP_AUTOSTART", "1") != "0":
        service.start()
    else:
        service._set_status("Storage SCP: off")
    return service
