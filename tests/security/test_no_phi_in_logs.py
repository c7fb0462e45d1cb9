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


REPO = Path(__file__).resolve().parents[2]


def _quoting_file(path: Path) -> Path:
    """An instance whose SOP Instance UID length is corrupted so that its value runs on over the patient's
    name, ID and birth date. Its character set (ISO_IR 144) makes the fast header scan hand the values to
    pydicom to convert, which warns with the whole over-long value quoted, as it does on import stderr and
    in the SCP's log. (storescu re-encodes what it sends but keeps that value, less its spaces.)"""
    from tests.reliability.corpus import encode

    ds = tiny_instance(1, study_uid="2.25.9101", series_uid="2.25.9102")
    ds.SpecificCharacterSet = "ISO_IR 144"
    data = bytearray(encode(ds))
    at = data.find(b"\x08\x00\x18\x00UI")
    end = data.find(b"19700101") + len("19700101")
    assert at > 0 and end > at
    data[at + 6 : at + 8] = (end - (at + 8)).to_bytes(2, "little")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def _pydicom_quotes_phi(path: Path) -> bool:
    """pydicom itself (no redaction) quotes the patient name when reading the crafted file: else the test
    below would pass for the wrong reason."""
    import warnings

    import pydicom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = pydicom.dcmread(path)
        _ = ds.SOPInstanceUID
    return any("Fuzzmann" in str(w.message) for w in caught)


def _assert_no_phi_in(text: str, what: str) -> None:
    for value in PHI:
        assert value not in text, f"patient data {value!r} reached {what}"


def test_cli_import_stderr_has_no_patient_data_from_pydicom_warnings(tmp_path: Path) -> None:
    import sys

    crafted = _quoting_file(tmp_path / "incoming" / "quoting.dcm")
    assert _pydicom_quotes_phi(crafted)
    result = subprocess.run(
        [sys.executable, "-m", "viewer", "--home", str(tmp_path / "home"), "-v", "import", str(crafted.parent)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Invalid value for VR UI" in result.stderr, result.stderr  # the warning is kept, its value is not
    _assert_no_phi_in(result.stderr, "import stderr")
    _assert_no_phi_in(result.stdout, "the import report")


# The SCP as the app runs it (logging configured at start-up, as `lightbox` does before the GUI starts its
# SCP), and bare (the reliability tests' SCP process: no logging set up, Python prints warnings itself).
_SCP_ENTRIES = {
    "configured": "import sys, runpy; from viewer.core import logs; logs.configure(); "
    "sys.argv[0] = 'scp_process'; runpy.run_module('tests.reliability.scp_process', run_name='__main__')",
    "bare": "import sys, runpy; sys.argv[0] = 'scp_process'; "
    "runpy.run_module('tests.reliability.scp_process', run_name='__main__')",
}


@pytest.mark.network
@pytest.mark.timeout(120)
@pytest.mark.parametrize("entry", sorted(_SCP_ENTRIES))
def test_scp_process_log_has_no_patient_data_from_pydicom_warnings(tmp_path: Path, entry: str) -> None:
    import os
    import signal
    import sys

    pytest.importorskip("viewer.net.scp")
    storescu = require_tool("storescu")
    crafted = _quoting_file(tmp_path / "outgoing" / "quoting.dcm")
    assert _pydicom_quotes_phi(crafted)
    port = free_port()
    log_path = tmp_path / "scp.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SCP_ENTRIES[entry], str(tmp_path / "home"), str(port)],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, timeout=30)
            # An unauthenticated sender: any calling AE, no TLS.
            sent = subprocess.run(
                [storescu, "-v", "-aec", "LIGHTBOX", "127.0.0.1", str(port), str(crafted)],
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    assert "Received Store Response" in sent.stdout + sent.stderr  # the SCP read the object and answered
    text = log_path.read_text(errors="replace")
    if entry == "configured":
        assert "Invalid value for VR UI" in text, text  # pydicom did read and warn; the warning is kept
    _assert_no_phi_in(text, "the SCP log")
