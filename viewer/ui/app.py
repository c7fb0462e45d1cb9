"""GUI entry point: `run_gui(home, demo_if_empty)` opens the data folder and shows the main window."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from viewer import APP_NAME, __version__

log = logging.getLogger(__name__)


def create_application() -> object:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    icon = resources_dir() / "icons" / "lightbox.svg"
    if icon.is_file():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    return app


def resources_dir() -> Path:
    """`resources/` beside the package in a checkout, or inside the frozen bundle."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def run_gui(home: Path | None = None, demo_if_empty: bool = False) -> int:
    """Show the main window until it is closed; returns the process exit code."""
    from viewer.core import logs
    from viewer.core.context import AppContext
    from viewer.ui.main_window import MainWindow
    from viewer.ui.workers import wait_for_workers

    logs.install()  # also when started without the CLI (a frozen bundle's own entry, a test)
    app = create_application()
    ctx = AppContext.open(home)
    if demo_if_empty and ctx.store.counts()["studies"] == 0:
        from viewer.core.demo import add_demo_study

        # Synchronous on purpose: it takes about a second and the first screen should show images.
        add_demo_study(ctx.store)
    from viewer.core import audit

    audit.install(ctx.home, ctx.store, local_ae=ctx.settings.local.ae_title)
    window = MainWindow(ctx)
    window.show()
    if demo_if_empty:
        window.browser.expand_all()
    code = app.exec()  # type: ignore[attr-defined]
    wait_for_workers(10000)
    audit.uninstall()
    ctx.store.close()
    return int(code)
