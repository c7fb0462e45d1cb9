"""The GUI import is bounded as `lightbox import` is: by the settings' largest object (issue 14, finding 4).

Before, the import dialog called the importer without limits, so a drop of files or a ZIP archive was read
with the built-in 4 GiB bound whatever the administrator had set in `max_object_bytes`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

pytest.importorskip("pytestqt")

from viewer.core.context import AppContext
from viewer.core.settings import Settings
from viewer.ui.main_window import MainWindow
from viewer.ui.workers import wait_for_workers

REPO = Path(__file__).resolve().parents[2]
LIMIT = 20_000  # MR_small (9,830 bytes) fits, CT_small (39,206 bytes) does not


def _dropped_folder(root: Path) -> Path:
    folder = root / "dropped"
    folder.mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "mr.dcm")
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "ct.dcm")
    with zipfile.ZipFile(folder / "archive.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(get_testdata_file("CT_small.dcm"), "ct.dcm")
    return folder


def _home_with_limit(home: Path) -> Path:
    home.mkdir(exist_ok=True)
    settings = Settings.load(home / "settings.json")
    settings.local.max_object_bytes = LIMIT
    settings.save(home / "settings.json")
    return home


def test_gui_import_refuses_objects_over_the_settings_limit_as_the_cli_does(
    qtbot, lightbox_home: Path, tmp_path: Path
) -> None:
    folder = _dropped_folder(tmp_path)
    ctx = AppContext.open(_home_with_limit(lightbox_home))
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    try:
        dialog = window.import_paths([folder])
        qtbot.waitUntil(lambda: dialog.report is not None, timeout=20000)
        report = dialog.report
        assert report.imported == 1
        reasons = {problem.source: problem.reason for problem in report.failed}
        assert sorted(Path(source.split("!")[0]).name for source in reasons) == ["archive.zip", "ct.dcm"]
        assert all(f"({LIMIT} bytes)" in reason for reason in reasons.values()), reasons
        assert ctx.store.counts()["instances"] == 1
    finally:
        wait_for_workers(10000)
        window.close()
        ctx.store.close()

    # The CLI, on a data folder with the same setting, refuses the same files for the same reasons.
    cli_home = _home_with_limit(tmp_path / "cli-home")
    cli = subprocess.run(
        [sys.executable, "-m", "viewer", "--home", str(cli_home), "import", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1, cli.stdout + cli.stderr
    for reason in reasons.values():
        assert reason in cli.stdout
