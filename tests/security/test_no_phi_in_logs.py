"""Ordinary application logs carry no patient data while importing and receiving (the audit trail may)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from tests.reliability.corpus import PATIENT_NAME, tiny_instance, write_series
from tests.support.net import free_port, require_tool, wait_for_port
from viewer.core import audit
from viewer.core.settings import LocalNode
from viewer.core.store import StoreError, StudyStore

PHI = ("Fuzzmann", "Patricia", "FUZZ-0001", "19700101")


def _all_logged_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def _assert_no_phi(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "nothing was logged at all: the check would prove nothing"
    text = _all_logged_text(caplog)
    for value in PHI:
        assert value not in text, f"patient data {value!r} reached the ordinary log"


def _awkward_files(folder: Path) -> None:
    """Files that make the store and importer talk: a changed resend, a file without UIDs, junk."""
    changed = tiny_instance(1, study_uid="2.25.77", series_uid="2.25.78")
    changed.save_as(folder / "a.dcm", enforce_file_format=True)
    changed.PixelData = bytes(64)
    changed.save_as(folder / "b.dcm", enforce_file_format=True)  # same UID, other content: "replaced"
    broken = tiny_instance(2, study_uid="2.25.77", series_uid="2.25.78")
    del broken.StudyInstanceUID
    broken.save_as(folder / "c.dcm", enforce_file_format=True)
    (folder / "d.dcm").write_bytes((folder / "a.dcm").read_bytes()[:300])  # cut short


def test_import_logs_no_patient_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    incoming = tmp_path / "incoming"
    write_series(incoming, 3)
    _awkward_files(incoming)
    store = StudyStore(tmp_path / "store")
    trail = audit.AuditLog(tmp_path / "audit")
    trail.attach(store)
    for path in sorted(incoming.iterdir()):
        try:
            store.add_file(path)
        except StoreError:
            pass
    importer = pytest.importorskip("viewer.core.importer")
    report = importer.import_paths(StudyStore(tmp_path / "store2"), [incoming])
    assert report.imported >= 3
    trail.close()
    _assert_no_phi(caplog)
    assert "FUZZ-0001" in trail.path.read_text()  # the audit trail is where patient IDs belong
    store.close()


@pytest.mark.network
def test_scp_receive_logs_no_patient_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scp_module = pytest.importorskip("viewer.net.scp")
    storescu = require_tool("storescu")
    caplog.set_level(logging.DEBUG)
    outgoing = tmp_path / "outgoing"
    write_series(outgoing, 3)
    _awkward_files(outgoing)
    store = StudyStore(tmp_path / "store")
    port = free_port()
    server = scp_module.StorageServer(store, LocalNode(ae_title="LIGHTBOX", port=port, bind_address="127.0.0.1"))
    server.start()
    try:
        wait_for_port(port)
        subprocess.run(
            [storescu, "-aec", "LIGHTBOX", "+sd", "-nh", "127.0.0.1", str(port), str(outgoing)],
            capture_output=True,
            timeout=60,
        )
        # An unknown association and a refused object also get logged.
        subprocess.run([require_tool("echoscu"), "-aec", "NOBODY", "127.0.0.1", str(port)], timeout=30)
    finally:
        server.stop()
    assert store.counts()["instances"] >= 3
    assert PATIENT_NAME.split("^")[0] in {s.patient_name.split("^")[0] for s in store.studies()}
    _assert_no_phi(caplog)
    store.close()
