"""Export to a folder with a DICOMDIR (STD-GEN-CD) that DCMTK reads; de-identified export leaks nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.support.net import require_tool
from viewer.cli import main as cli_main
from viewer.core import audit
from viewer.core.deidentify import BASIC_PROFILE, effective_action
from viewer.core.export import ExportError, export_studies
from viewer.core.store import StudyStore

SOURCES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "test-SR.dcm"]
FILE_ID = re.compile(r"^[A-Z0-9_]{1,8}$")


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory):
    store = StudyStore(tmp_path_factory.mktemp("export-store"))
    for name in SOURCES:
        store.add_file(get_testdata_file(name))
    yield store
    store.close()


def _exported_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "DICOMDIR")


def _check_dicomdir_with_dcmtk(folder: Path, expected_files: int, scratch: Path) -> None:
    dump = subprocess.run(
        [require_tool("dcmdump"), "+sd", "+r", str(folder)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    assert dump.returncode == 0, dump.stderr
    assert "=MediaStorageDirectoryStorage" in dump.stdout
    assert dump.stdout.count("# Dicom-File-Format") == expected_files + 1
    dicomdir = subprocess.run(
        [require_tool("dcmdump"), str(folder / "DICOMDIR")],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    assert dicomdir.returncode == 0, dicomdir.stderr
    file_ids = re.findall(r"\(0004,1500\) CS \[([^\]]*)\]", dicomdir.stdout)
    assert len(file_ids) == expected_files
    for file_id in file_ids:
        components = file_id.split("\\")
        assert len(components) <= 8 and all(FILE_ID.match(c) for c in components), file_id
        assert (folder.joinpath(*components)).is_file()
    # dcmmkdir builds a General Purpose CD-R (STD-GEN-CD) DICOMDIR from our files only if every one complies.
    relative = [str(p.relative_to(folder)) for p in _exported_files(folder)]
    remake = subprocess.run(
        [require_tool("dcmmkdir"), "-Pgp", "-a", "+D", str(scratch / "DICOMDIR"), *relative],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert remake.returncode == 0, remake.stdout + remake.stderr
    ftest = subprocess.run(
        [require_tool("dcmftest"), *[str(p) for p in _exported_files(folder)]], capture_output=True, text=True
    )
    assert ftest.returncode == 0 and "no:" not in ftest.stdout, ftest.stdout


def test_plain_export_keeps_everything_and_reads_with_dcmtk(tmp_path: Path, filled_store: StudyStore) -> None:
    studies = [s.study_uid for s in filled_store.studies()]
    total = sum(s.instance_count for s in filled_store.studies())
    trail = audit.AuditLog(tmp_path / "audit")
    report = export_studies(filled_store, studies, tmp_path / "out", audit_log=trail)
    assert report.skipped == []
    assert report.exported == total == len(SOURCES)
    _check_dicomdir_with_dcmtk(tmp_path / "out", total, tmp_path)
    exported_uids = {pydicom.dcmread(p).SOPInstanceUID for p in _exported_files(tmp_path / "out")}
    stored_uids = {i.sop_instance_uid for uid in studies for i in filled_store.instances_for_study(uid)}
    assert exported_uids == stored_uids
    for path in _exported_files(tmp_path / "out"):
        assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    messages = audit.read(trail.path)
    assert {m["Event"] for m in messages} == {"exported"}
    assert {m["ParticipantObjectIdentification"][0]["ParticipantObjectID"] for m in messages} == set(studies)
    with pytest.raises(ExportError):
        export_studies(filled_store, studies, tmp_path / "out", audit_log=trail)


def test_deidentified_export_keeps_no_original_profile_value(tmp_path: Path, filled_store: StudyStore) -> None:
    studies = [s.study_uid for s in filled_store.studies()]
    originals = {}
    for uid in studies:
        for inst in filled_store.instances_for_study(uid):
            originals[inst.sop_instance_uid] = pydicom.dcmread(inst.path)
    report = export_studies(
        filled_store, studies, tmp_path / "anon", deidentify=True, audit_log=audit.AuditLog(tmp_path / "a")
    )
    assert report.skipped == [] and report.exported == len(originals)
    _check_dicomdir_with_dcmtk(tmp_path / "anon", len(originals), tmp_path)

    exported = [pydicom.dcmread(p) for p in _exported_files(tmp_path / "anon")]
    # Each exported file comes from exactly one original; match them by pixel-free content we kept (SOP Class
    # and Instance Number), then compare every attribute the profile lists.
    leaked: list[str] = []
    for ds in exported:
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.SOPInstanceUID not in originals
        candidates = [o for o in originals.values() if o.SOPClassUID == ds.SOPClassUID]
        for original in candidates:
            for tag, action in BASIC_PROFILE.items():
                if tag not in original or tag >> 16 == 0x0002:
                    continue
                before = original[tag]
                if tag in ds and effective_action(action) != "X":
                    after = ds[tag]
                    if after.VR == "SQ" or after.value in (None, "", b""):
                        continue
                    if str(after.value) == str(before.value) and str(before.value).strip():
                        leaked.append(f"{before.keyword}={before.value!r}")
                elif tag in ds and effective_action(action) == "X":
                    leaked.append(f"{before.keyword} not removed")
        assert not any(elem.tag.is_private for elem in ds.iterall())
    assert leaked == []
    names = {str(o.get("PatientName", "")) for o in originals.values()} - {""}
    dicomdir_text = (tmp_path / "anon" / "DICOMDIR").read_bytes()
    for name in names:
        assert name.encode() not in dicomdir_text
    # One study in, one study out, with its series still linked.
    assert len({ds.StudyInstanceUID for ds in exported}) == len(studies)


def test_cli_export(tmp_path: Path, lightbox_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = StudyStore(lightbox_home / "store")
    store.add_file(get_testdata_file("CT_small.dcm"))
    store.close()
    code = cli_main(["--home", str(lightbox_home), "export", "--all", "--deidentify", str(tmp_path / "cd")])
    assert code == 0
    assert "exported 1 instances of 1 studies" in capsys.readouterr().out
    assert (tmp_path / "cd" / "DICOMDIR").is_file()
    (message,) = audit.read(lightbox_home / "audit" / "audit.jsonl")
    assert message["Event"] == "exported"
    assert message["EventIdentification"]["EventOutcomeDescription"] == "de-identified"
