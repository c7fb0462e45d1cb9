"""File ▸ Export studies: a folder with a DICOMDIR, de-identified on request, written in the background."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from viewer.core.context import AppContext


def test_export_selected_study_deidentified(qtbot, tmp_path: Path) -> None:
    from viewer.ui.main_window import MainWindow

    ctx = AppContext.open(tmp_path / "home")
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ctx.store.add_dataset(original)
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    reports = []
    window.export_studies([original.StudyInstanceUID], tmp_path / "out", deidentify=True, on_done=reports.append)
    qtbot.waitUntil(lambda: bool(reports), timeout=20000)
    (report,) = reports
    assert report.exported == 1 and report.dicomdir.is_file()
    dicomdir = pydicom.dcmread(report.dicomdir)
    (image_record,) = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    exported = pydicom.dcmread(report.folder.joinpath(*image_record.ReferencedFileID))
    assert str(exported.PatientName) != str(original.PatientName)
    assert exported.SOPInstanceUID != original.SOPInstanceUID
    assert exported.PatientIdentityRemoved == "YES"
    assert "Exported 1 de-identified" in window.statusBar().currentMessage()
    window.close()
