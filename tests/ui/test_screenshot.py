"""A real window on an X server (Xvfb): the app starts, shows the demo study, and the screen shows an image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.support.net import require_tool, stop

ROOT = Path(__file__).resolve().parents[2]


def _free_display() -> int:
    for number in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number")


def test_main_window_on_xvfb_shows_the_demo_image(tmp_path: Path) -> None:
    xvfb = require_tool("Xvfb")
    display = _free_display()
    server = subprocess.Popen(
        [xvfb, f":{display}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        env = {**os.environ, "DISPLAY": f":{display}", "QT_QPA_PLATFORM": "xcb", "LIGHTBOX_SCP_AUTOSTART": "0"}
        out = tmp_path / "screenshot.png"
        for _ in range(50):  # wait for the X socket
            if Path(f"/tmp/.X11-unix/X{display}").exists():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        result = subprocess.run(
            [sys.executable, "-m", "tests.ui.screenshot_app", str(tmp_path / "home"), str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert out.is_file()
    finally:
        stop(server)

    from PySide6.QtGui import QImage

    image = QImage(str(out)).convertToFormat(QImage.Format.Format_Grayscale8)
    assert (image.width(), image.height()) == (1280, 800)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())[:, :1280]
    viewer_region = pixels[150:750, 500:1250]  # right of the browser, below the toolbars
    assert viewer_region.std() > 10, "the viewer area is blank"
    assert len(np.unique(viewer_region)) > 32, "no image with grey levels is shown"
    shutil.copy(out, Path(os.environ.get("LIGHTBOX_SCREENSHOT", tmp_path / "kept.png")))
