"""Run the real main window on an X display (Xvfb), load the demo study, open it, and save a screenshot.

Used by tests/ui/test_screenshot.py as a subprocess: `python -m tests.ui.screenshot_app HOME OUT.png`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication

from viewer.core.context import AppContext
from viewer.core.demo import add_demo_study
from viewer.ui.app import create_application
from viewer.ui.main_window import MainWindow


def main(home: Path, out: Path) -> int:
    app = create_application()
    ctx = AppContext.open(home)
    add_demo_study(ctx.store)
    window = MainWindow(ctx)
    window.resize(1280, 800)
    window.show()
    window.browser.expand_all()
    (study,) = ctx.store.studies()
    (series,) = ctx.store.series_for_study(study.study_uid)
    window.open_series(series.series_uid)

    def shoot() -> None:
        screen = QGuiApplication.primaryScreen()
        screen.grabWindow(0).save(str(out))
        window.close()
        app.quit()

    QTimer.singleShot(2500, shoot)
    app.exec()
    ctx.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
