"""The duplicate policy (findings 2 and 3) against the application's SCP process with storescu, and the CLI.

Same SOP Instance UID, other bytes: the stored copy is kept and the sender answered Success, unless the
calling AE is named in `accept_corrections_from` (its copy replaces, the old one kept under replaced/ and
audited). A copy cut short never replaces; another patient in a stored study is refused.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.reliability.corpus import tiny_instance
from tests.reliability.test_faults import _app_scp
from tests.support.net import free_port, require_tool
from viewer.core.settings import Settings
from viewer.core.store import StudyStore

REPO = Path(__file__).resolve().parents[2]


def _storescu(port: int, path: Path, aet: str = "MODALITY") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("storescu"), "-v", "-aet", aet, "-aec", "LIGHTBOX", "127.0.0.1", str(port), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _write(folder: Path, name: str, ds: pydicom.Dataset) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _cut_before_pixels(path: Path, out: Path) -> Path:
    """The same object cut at the element boundary before Pixel Data (it looks whole on its own)."""
    data = path.read_bytes()
    out.write_bytes(data[: data.rindex(b"\xe0\x7f\x10\x00")])
    return out


def _sha(store: StudyStore, uid: str) -> str:
    inst = store.instance(uid)
    assert inst is not None
    return inst.sha256


@pytest.mark.network
@pytest.mark.timeout(180)
def test_scp_keeps_the_stored_copy_lets_named_peers_correct_and_refuses_cut_copies_and_other_patients(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    settings = Settings()
    settings.local.accept_corrections_from = ["ARCHIVE"]
    settings.save(home / "settings.json")
    study, series = generate_uid(prefix=None), generate_uid(prefix=None)
    original = tiny_instance(1, study_uid=study, series_uid=series)
    first = _write(tmp_path / "a", "first.dcm", original)
    changed = original.copy()
    changed.SeriesDescription = "other bytes"
    second = _write(tmp_path / "b", "second.dcm", changed)
    corrected = original.copy()
    corrected.SeriesDescription = "corrected by the archive"
    correction = _write(tmp_path / "c", "correction.dcm", corrected)
    other_patient = tiny_instance(2, study_uid=study, series_uid=series)
    other_patient.PatientName, other_patient.PatientID = "Other^Person", "OTHER-99"
    intruder = _write(tmp_path / "d", "intruder.dcm", other_patient)
    uid = original.SOPInstanceUID
    port = free_port()
    with _app_scp(home, port):
        assert _storescu(port, first).returncode == 0
        store = StudyStore(home / "store")
        stored_sha = _sha(store, uid)
        # Another peer's different copy: answered Success (PS3.4 has no C-STORE duplicate status; see
        # viewer/net/receive.py), the stored copy kept.
        run = _storescu(port, second)
        assert run.returncode == 0 and "Success" in run.stdout + run.stderr, run.stdout + run.stderr
        assert _sha(store, uid) == stored_sha
        # A cut-short copy is a failure, never a replacement, even from the peer allowed to correct.
        cut = _cut_before_pixels(first, tmp_path / "cut.dcm")
        run = _storescu(port, cut, aet="ARCHIVE")
        output = (run.stdout + run.stderr).lower()
        assert "error: cannotunderstand" in output, output[-2000:]
        assert _sha(store, uid) == stored_sha
        # Another patient in the stored study is refused; the study row keeps its patient.
        run = _storescu(port, intruder)
        output = (run.stdout + run.stderr).lower()
        assert "error: cannotunderstand" in output, output[-2000:]
        assert store.instance(other_patient.SOPInstanceUID) is None
        assert store.study(study).patient_id == original.PatientID
        # The archive's correction replaces; the old copy stays recoverable.
        assert _storescu(port, correction, aet="ARCHIVE").returncode == 0
        assert _sha(store, uid) != stored_sha
        kept = home / "store" / "replaced" / stored_sha
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == stored_sha
        assert store.integrity_problems() == []
        store.close()


def test_cli_import_keeps_the_stored_copy_and_fails_a_cut_copy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    study, series = generate_uid(prefix=None), generate_uid(prefix=None)
    original = tiny_instance(1, study_uid=study, series_uid=series)
    first = _write(tmp_path / "a", "first.dcm", original)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "viewer", "--home", str(home), *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert cli("import", str(first)).returncode == 0
    store = StudyStore(home / "store")
    stored_sha = _sha(store, original.SOPInstanceUID)
    store.close()
    changed = original.copy()
    changed.SeriesDescription = "other bytes"
    run = cli("import", str(_write(tmp_path / "b", "changed.dcm", changed)))
    assert run.returncode == 0 and "1 kept the stored copy" in run.stdout, run.stdout
    # Finding 3: a copy cut before Pixel Data imported "1 replaced" with exit 0; now it fails with a reason.
    run = cli("import", str(_cut_before_pixels(first, tmp_path / "cut.dcm")))
    assert run.returncode == 1, run.stdout
    assert "cut.dcm: a cut-short copy of the stored instance" in run.stdout
    store = StudyStore(home / "store")
    assert _sha(store, original.SOPInstanceUID) == stored_sha
    assert store.integrity_problems() == []
    store.close()


def test_a_replacement_is_audited_and_listed_in_the_import_report(tmp_path: Path) -> None:
    from viewer.core import audit
    from viewer.core.importer import import_paths

    study, series = generate_uid(prefix=None), generate_uid(prefix=None)
    original = tiny_instance(1, study_uid=study, series_uid=series)
    first = _write(tmp_path / "a", "first.dcm", original)
    corrected = original.copy()
    corrected.SeriesDescription = "corrected"
    second = _write(tmp_path / "b", "second.dcm", corrected)
    store = StudyStore(tmp_path / "store")
    trail = audit.install(tmp_path, store)
    try:
        import_paths(store, [first])
        report = import_paths(store, [second], replace_existing=True)
    finally:
        audit.uninstall()
    assert report.replaced == 1 and [p.source for p in report.replaced_items] == [str(second)]
    assert "Replaced:" in report.details()
    messages = [json.dumps(m) for m in audit.read(trail.path)]
    assert any("replaced; previous copy kept under replaced/" in m and original.SOPInstanceUID in m for m in messages)
    store.close()
