"""Audit trail: DICOM audit message fields as JSON lines, grouped store events, syslog sink."""

from __future__ import annotations

import copy
import socket
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from viewer.core import audit
from viewer.core.store import StudyStore

CT = get_testdata_file("CT_small.dcm")


def _instances(n: int, patient_id: str = "AUDIT-PID") -> list[bytes]:
    base = pydicom.dcmread(CT)
    base.PatientID = patient_id
    out = []
    for i in range(n):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = f"{base.SOPInstanceUID}.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buffer = pydicom.filebase.DicomBytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def test_record_has_the_dicom_audit_message_fields(tmp_path: Path) -> None:
    log = audit.AuditLog(tmp_path / "audit", local_ae="LIGHTBOX")
    log.record(audit.PRINTED, study_uid="1.2.3", patient_id="P1", remote_ae="FILMER", remote_host="10.0.0.9")
    (message,) = audit.read(log.path)
    event = message["EventIdentification"]
    assert event["EventID"] == {"csd-code": "110106", "codeSystemName": "DCM", "originalText": "Export"}
    assert event["EventActionCode"] == "R"
    assert event["EventOutcomeIndicator"] == audit.SUCCESS
    assert "T" in event["EventDateTime"] and event["EventDateTime"][-6] in "+-"
    local, printer = message["ActiveParticipant"]
    assert local["UserID"] and local["UserIsRequestor"] is True
    assert "AETITLES=LIGHTBOX" in local["AlternativeUserID"]
    assert printer["AlternativeUserID"] == "AETITLES=FILMER"
    assert printer["NetworkAccessPointID"] == "10.0.0.9" and printer["NetworkAccessPointTypeCode"] == "2"
    assert printer["RoleIDCode"]["csd-code"] == "110154"
    study, patient = message["ParticipantObjectIdentification"]
    assert study["ParticipantObjectID"] == "1.2.3"
    assert study["ParticipantObjectIDTypeCode"]["csd-code"] == "110180"
    assert patient["ParticipantObjectID"] == "P1" and patient["ParticipantObjectTypeCodeRole"] == 1
    assert (log.path.stat().st_mode & 0o777) == 0o600


def test_store_events_become_grouped_received_imported_and_deleted_messages(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    log = audit.AuditLog(tmp_path / "audit", quiet_s=60)
    log.attach(store)
    received, imported = _instances(3), _instances(5)[3:]
    for data in received:
        store.add_bytes(data, source="scp:MODALITY1")
    for data in imported:
        store.add_bytes(data, source="file:import.dcm")
    study_uid = pydicom.dcmread(CT).StudyInstanceUID
    log.flush()
    store.delete_study(study_uid)
    messages = audit.read(log.path)
    by_event = {m["Event"]: m for m in messages}
    assert sorted(m["Event"] for m in messages) == ["deleted", "imported", "received"]

    got = by_event["received"]
    assert got["EventIdentification"]["EventID"]["csd-code"] == "110104"
    assert got["EventIdentification"]["EventActionCode"] == "C"
    assert got["ParticipantObjectIdentification"][0]["ParticipantObjectDescription"] == {"NumberOfInstances": 3}
    assert got["ParticipantObjectIdentification"][1]["ParticipantObjectID"] == "AUDIT-PID"
    sender = got["ActiveParticipant"][1]
    assert sender["UserID"] == "MODALITY1" and sender["UserIsRequestor"] is True
    assert by_event["imported"]["EventIdentification"]["EventID"]["csd-code"] == "110107"
    assert by_event["imported"]["ParticipantObjectIdentification"][0]["ParticipantObjectDescription"] == {
        "NumberOfInstances": 2
    }
    deleted = by_event["deleted"]
    assert deleted["EventIdentification"]["EventActionCode"] == "D"
    assert deleted["ParticipantObjectIdentification"][1]["ParticipantObjectID"] == "AUDIT-PID"
    log.close()
    store.close()


def test_a_quiet_group_is_written_without_flush(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    log = audit.AuditLog(tmp_path / "audit", quiet_s=0.2)
    log.attach(store)
    store.add_bytes(_instances(1)[0], source="scp:CT1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (log.path.exists() and audit.read(log.path)):
        time.sleep(0.05)
    assert [m["Event"] for m in audit.read(log.path)] == ["received"]
    log.close()
    store.close()


def test_syslog_sink_receives_the_same_message(tmp_path: Path) -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(5)
    try:
        log = audit.AuditLog(tmp_path / "audit", syslog_address=collector.getsockname())
        log.record(audit.VIEWED, study_uid="1.2.3.4", patient_id="P7")
        datagram = collector.recv(65536).decode()
        log.close()
    finally:
        collector.close()
    assert datagram.startswith("<")  # syslog priority
    assert '"Event":"viewed"' in datagram and "110103" in datagram and "1.2.3.4" in datagram


def test_module_level_api_uses_the_installed_trail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audit.uninstall()
    assert audit.record_viewed("9.9") == {}  # nothing installed: not recorded, and said so
    store = StudyStore(tmp_path / "store")
    try:
        installed = audit.install(tmp_path / "home", store, local_ae="WS1")
        audit.record_viewed("1.2.3", "P1")
        audit.record_printed("1.2.3", "P1", printer_ae="PRINTER")
        audit.record_exported("1.2.3", "P1", destination="/media/cd")
        audit.record_sent("1.2.3", "P1", remote_ae="PACS", remote_host="pacs.example")
        events = [m["Event"] for m in audit.read(installed.path)]
        assert events == ["viewed", "printed", "exported", "sent"]
        assert installed.path == tmp_path / "home" / "audit" / "audit.jsonl"
    finally:
        audit.uninstall()
        store.close()
