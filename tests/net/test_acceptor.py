"""The lean upper-layer acceptor behind our Storage SCP: wire encodings against pynetdicom's, and the protocol
corners a real requestor can hit (small PDUs, role selection, limits, violations, silence)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_role
from pynetdicom.dimse_messages import C_ECHO_RSP, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_STORE

from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore
from viewer.net.acceptor import C_ECHO_RSP as ECHO_RSP_FIELD
from viewer.net.acceptor import C_STORE_RSP as STORE_RSP_FIELD
from viewer.net.acceptor import decode_command, encode_pdata, encode_response
from viewer.net.scp import ScpEvent, StorageServer

pytestmark = pytest.mark.network

CT = "1.2.840.10008.5.1.4.1.1.2"


def _pynetdicom_command_bytes(message: object) -> bytes:
    """The command set pynetdicom encodes for a message (via its P-DATA fragments)."""
    values = [
        value
        for p_data in message.encode_msg(1, 1 << 20)  # type: ignore[attr-defined]
        for _context, value in p_data.presentation_data_value_list
    ]
    return b"".join(value[1:] for value in values if value[0] & 0x01)


@pytest.mark.parametrize("status", [0x0000, 0xB007, 0xA700, 0xC000])
def test_store_response_bytes_equal_pynetdicoms(status: int) -> None:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = 5
    primitive.AffectedSOPClassUID = CT
    primitive.AffectedSOPInstanceUID = "1.2.3.45"
    primitive.Status = status
    comment = "" if status in (0x0000, 0xB007) else "disk full"
    if comment:
        primitive.ErrorComment = comment
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    ours = encode_response(STORE_RSP_FIELD, 5, status, CT, "1.2.3.45", comment)
    assert pydicom.dcmread(BytesIO(ours), force=True) == pydicom.dcmread(
        BytesIO(_pynetdicom_command_bytes(message)), force=True
    )


def test_echo_response_bytes_equal_pynetdicoms() -> None:
    primitive = C_ECHO()
    primitive.MessageIDBeingRespondedTo = 9
    primitive.AffectedSOPClassUID = "1.2.840.10008.1.1"
    primitive.Status = 0
    message = C_ECHO_RSP()
    message.primitive_to_message(primitive)
    ours = encode_response(ECHO_RSP_FIELD, 9, 0, "1.2.840.10008.1.1")
    assert ours == _pynetdicom_command_bytes(message)


def test_store_request_from_pynetdicom_decodes() -> None:
    primitive = C_STORE()
    primitive.MessageID = 77
    primitive.AffectedSOPClassUID = CT
    primitive.AffectedSOPInstanceUID = "1.2.3.4.5"
    primitive.Priority = 2
    primitive.MoveOriginatorApplicationEntityTitle = "ARCHIVE"
    primitive.MoveOriginatorMessageID = 3
    primitive.DataSet = BytesIO(b"\x08\x00\x16\x00\x02\x00\x00\x00\x31\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    command = decode_command(_pynetdicom_command_bytes(message))
    assert (command.field, command.message_id) == (0x0001, 77)
    assert command.data_set_type != 0x0101  # any other value means a data set follows
    assert (command.affected_sop_class, command.affected_sop_instance) == (CT, "1.2.3.4.5")
    assert command.move_originator_ae == "ARCHIVE"


def test_responses_are_split_to_the_requestors_maximum_pdu() -> None:
    command = encode_response(STORE_RSP_FIELD, 1, 0, CT, "1.2.3.4")
    pdus = encode_pdata(3, command, peer_max_pdu=32)
    offset, fragments, controls = 0, [], []
    while offset < len(pdus):
        assert pdus[offset] == 0x04
        length = struct.unpack_from(">I", pdus, offset + 2)[0]
        assert length <= 32
        item_length = struct.unpack_from(">I", pdus, offset + 6)[0]
        controls.append(pdus[offset + 11])
        fragments.append(pdus[offset + 12 : offset + 10 + item_length])
        offset += 6 + length
    assert b"".join(fragments) == command
    assert controls[-1] == 0x03 and set(controls[:-1]) <= {0x01}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[StorageServer, list[ScpEvent]]]:
    events: list[ScpEvent] = []
    local = LocalNode(port=0, bind_address="127.0.0.1", max_associations=2, acse_timeout_s=1.0)
    store = StudyStore(tmp_path / "store")
    with StorageServer(store, local, on_event=events.append) as running:
        yield running, events
    store.close()


def _ct() -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    return ds


def test_tiny_requestor_pdu_and_role_selection(server: tuple[StorageServer, list[ScpEvent]]) -> None:
    scp, _ = server
    ae = AE("SMALLPDU")
    ae.maximum_pdu_size = 64  # our responses (~150 bytes) must come back in several PDUs
    ae.add_requested_context(CT, [ImplicitVRLittleEndian])
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate(
        "127.0.0.1", scp.port, ae_title=scp.ae_title, ext_neg=[build_role(CT, scu_role=True, scp_role=False)]
    )
    assert assoc.is_established
    try:
        assert int(assoc.send_c_store(_ct()).Status) == 0
        assert int(assoc.send_c_echo().Status) == 0
    finally:
        assoc.release()
    assert scp.store.counts()["instances"] == 1


def test_association_limit_rejects_transiently(server: tuple[StorageServer, list[ScpEvent]]) -> None:
    scp, events = server
    ae = AE("BUSY")
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    held = [ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title) for _ in range(2)]
    try:
        assert all(a.is_established for a in held)
        third = ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title)
        assert third.is_rejected
        rejection = third.acceptor.primitive
        assert (rejection.result, rejection.result_source, rejection.diagnostic) == (0x02, 0x03, 0x02)
    finally:
        for assoc in held:
            assoc.release()
    assert any(e.kind == "rejected" and "too many" in e.message for e in events)
    # Released associations give their places back.
    again = ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title)
    assert again.is_established
    again.release()


def _raw(port: int, payload: bytes, *, wait_s: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        if payload:
            sock.sendall(payload)
        received = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                break
            if not chunk:
                return received
            received += chunk
        raise AssertionError(f"the SCP kept the connection open; it sent {received!r}")


def test_protocol_violations_are_aborted_and_the_server_goes_on(server: tuple[StorageServer, list[ScpEvent]]) -> None:
    scp, _ = server
    # A P-DATA-TF before any association request: A-ABORT, source service provider, unexpected PDU.
    answer = _raw(scp.port, b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x02\x01\x03")
    assert answer == b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x02"
    # An association request that is not one: invalid PDU parameter.
    answer = _raw(scp.port, b"\x01\x00\x00\x00\x00\x08garbage!")
    assert answer[:1] == b"\x07" and answer[-1] == 0x06
    # Silence: the ACSE timeout (1 s here) ends the connection.
    started = time.monotonic()
    assert _raw(scp.port, b"", wait_s=5.0) in (b"", b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x00")
    assert time.monotonic() - started < 4.0
    ae = AE("AFTER")
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title)
    assert assoc.is_established
    assert int(assoc.send_c_store(_ct()).Status) == 0
    assoc.release()


@pytest.mark.parametrize("matching", [True, False])
def test_large_objects_are_spooled_to_the_store_not_memory(tmp_path: Path, matching: bool) -> None:
    """Data sets over the spool threshold go to a temp file as they arrive; the result is the same, and a
    refused one leaves nothing behind."""
    local = LocalNode(port=0, bind_address="127.0.0.1", max_pdu=16384)
    store = StudyStore(tmp_path / "store")
    server = StorageServer(store, local)
    server.spool_above_bytes = 4096  # CT_small is ~39 KB: spooled after its first PDUs
    spooled: list[object] = []
    real_open = server.open_spool
    server.open_spool = lambda *a: spooled.append(real_open(*a)) or spooled[-1]  # type: ignore[method-assign]
    ds = _ct()
    with server:
        ae = AE("BIGSCU")
        ae.add_requested_context(CT, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title)
        assert assoc.is_established
        try:
            if matching:
                status = int(assoc.send_c_store(ds).Status)
            else:  # the request names another instance than the data set holds
                from tests.net.test_scp import send_as

                assoc.release()
                status = send_as(server, ds, "1.2.840.10008.5.1.4.1.1.4")  # MR class for a CT data set
        finally:
            if assoc.is_established:
                assoc.release()
    assert spooled and spooled[0] is not None
    if matching:
        assert status == 0
        (instance,) = store.instances_for_study(ds.StudyInstanceUID)
        stored = pydicom.dcmread(instance.path)
        assert stored.SOPInstanceUID == ds.SOPInstanceUID and stored.PixelData == ds.PixelData
        assert stored.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    else:
        assert status == 0xA900
        assert store.counts()["instances"] == 0
    assert list(store.tmp_dir.iterdir()) == []
    assert store.integrity_problems() == []
    store.close()


def test_silent_connections_are_capped_and_the_server_stays_usable(tmp_path: Path) -> None:
    local = LocalNode(port=0, bind_address="127.0.0.1", max_associations=1, acse_timeout_s=30.0)
    store = StudyStore(tmp_path / "store")
    with StorageServer(store, local) as server:  # room for 2 * 1 + 8 = 10 connections
        # From three loopback addresses, 4 each: under the per-host cap (1 + 4), so the total cap is what acts.
        silent = [
            socket.create_connection(("127.0.0.1", server.port), source_address=(f"127.0.0.{2 + i % 3}", 0))
            for i in range(12)
        ]
        try:
            time.sleep(0.3)
            closed = 0
            for sock in silent:
                sock.settimeout(0.2)
                try:
                    closed += sock.recv(1) == b""
                except TimeoutError:
                    pass
            assert closed == 2  # the connections past the cap were closed at once
        finally:
            for sock in silent:
                sock.close()
        time.sleep(0.3)  # the silent ones are gone: their threads see the close
        ae = AE("AFTER")
        ae.add_requested_context(CT, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title)
        assert assoc.is_established
        assoc.release()
    store.close()
