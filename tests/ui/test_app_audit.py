"""The running app keeps its audit trail: importing from the CLI and viewing a study in the window are recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydicom.data import get_testdata_file

from viewer.core import audit
from viewer.core.context import AppContext


def _events(home: Path) -> list[tuple[str, str]]:
    path = home / "audit" / "audit.jsonl"
    out = []
    for message in audit.read(path) if path.exists() else []:
        for obj in message["ParticipantObjectIdentification"]:
            if obj.get("ParticipantObjectTypeCodeRole") != 1:  # the study, not the patient
                out.append((message["Event"], obj["ParticipantObjectID"]))
    return out


def test_cli_import_and_window_view_are_audited(qtbot, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ct = get_testdata_file("CT_small.dcm")
    subprocess.run(
        [sys.executable, "-m", "viewer", "--home", str(home), "import", "--quiet", ct], check=True, timeout=120
    )
    ctx = AppContext.open(home)
    (study,) = ctx.store.studies()
    assert ("imported", study.study_uid) in _events(home)

    from viewer.ui.main_window import MainWindow

    audit.install(ctx.home, ctx.store)
    try:
        window = MainWindow(ctx)
        qtbot.addWidget(window)
        (series,) = ctx.store.series_for_study(study.study_uid)
        window.open_series(series.series_uid)
        assert ("viewed", study.study_uid) in _events(home)
        window.close()
    finally:
        audit.uninstall()
