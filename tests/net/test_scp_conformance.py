"""Storage SCP conformance (issue 14, findings 8, 9, 10): which transfer syntax it takes in a context, the
retired storage classes it stores, who it lets in, and what it answers to a command set with a bad UID."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    HTJ2K,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    generate_uid,
)
from pynetdicom import AE

from tests.net.raw_requestor import RawAssociation, c_store_rq, pdata
from tests.support.peers import run_tool
from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore
from viewer.net.contexts import RETIRED_STORAGE, is_image_storage
from viewer.net.scp import ScpEvent, StorageServer

pytestmark = pytest.mark.network

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    running: list[tuple[StorageServer, StudyStore]] = []

    def start(**settings: object) -> tuple[StorageServer, list[ScpEvent]]:
        events: list[ScpEvent] = []
        local = LocalNode(port=0, bind_address="127.0.0.1", **settings)  # type: ignore[arg-type]
        store = StudyStore(tmp_path / f"store{len(running)}")
        server = StorageServer(store, local, on_event=events.append)
        server.start()
        running.append((server, store))
        return server, events

    yield start
    for server, store in running:
        server.stop()
        store.close()


# ----------------------------------------------------------------------------- finding 8: transfer syntaxes
@pytest.mark.parametrize("prefer_compressed", [False, True])
def test_never_lossy_when_lossless_is_offered_in_the_same_context(make_server, prefer_compressed: bool) -> None:
    server, _ = make_server(prefer_compressed=prefer_compressed)
    proposals = {
        # The case: storescp takes Explicit VR LE; we took JPEG Baseline.
        1: [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, JPEGBaseline8Bit],
        3: [JPEGBaseline8Bit, ImplicitVRLittleEndian],
        5: [JPEGBaseline8Bit, HTJ2K, JPEGLosslessSV1],
        7: [HTJ2K, HTJ2KLossless],
        9: [JPEGBaseline8Bit],  # a lossy original: still storable
        11: [HTJ2K],
        13: [HTJ2KLosslessRPCL],
        15: [ExplicitVRLittleEndian, JPEG2000Lossless],
    }
    association = RawAssociation.open(server.port, [(cid, CT, ts) for cid, ts in proposals.items()])
    try:
        assert association.rejection is None
        compressed_first = JPEG2000Lossless if prefer_compressed else ExplicitVRLittleEndian
        assert association.accepted == {
            1: ExplicitVRLittleEndian,
            3: ImplicitVRLittleEndian,
            5: JPEGLosslessSV1,
            7: HTJ2KLossless,
            9: JPEGBaseline8Bit,
            11: HTJ2K,
            13: HTJ2KLosslessRPCL,
            15: compressed_first,
        }
    finally:
        association.release()


def test_storescu_offering_jpeg_first_in_one_context_stores_uncompressed(make_server, tmp_path: Path) -> None:
    server, _ = make_server()
    # -xy: JPEG Baseline first, then the uncompressed syntaxes; +C: all of them in one presentation context.
    # Taking JPEG Baseline would ask storescu to compress lossily, which it cannot do (and must not be asked).
    ct = get_testdata_file("CT_small.dcm")
    proc = run_tool(
        ["storescu", "-xy", "+C", "-v", "-aec", server.ae_title, "127.0.0.1", str(server.port), ct], check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Received Store Response (Success)" in proc.stdout + proc.stderr
    uid = str(pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True).SOPInstanceUID)
    stored = server.store.instance(uid)
    assert stored is not None
    assert pydicom.dcmread(stored.path, stop_before_pixels=True).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_lossy_and_htj2k_originals_are_stored(make_server, tmp_path: Path) -> None:
    server, _ = make_server()
    jpeg = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    jpeg.SOPInstanceUID = generate_uid()
    ae = AE("LOSSY")
    ae.add_requested_context(jpeg.SOPClassUID, [JPEGBaseline8Bit])
    ae.add_requested_context(CT, [HTJ2K])
    assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title)
    assert assoc.is_established
    try:
        assert int(assoc.send_c_store(jpeg).Status) == 0x0000
        htj2k = _tiny(CT, pixels=False)
        htj2k.file_meta.TransferSyntaxUID = HTJ2K
        htj2k.Rows = htj2k.Columns = 2
        htj2k.BitsAllocated, htj2k.BitsStored, htj2k.HighBit = 8, 8, 7
        htj2k.SamplesPerPixel, htj2k.PixelRepresentation, htj2k.PhotometricInterpretation = 1, 0, "MONOCHROME2"
        htj2k.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 12])
        htj2k["PixelData"].VR = "OB"
        htj2k["PixelData"].is_undefined_length = True
        assert int(assoc.send_c_store(htj2k).Status) == 0x0000
    finally:
        assoc.release()
    for uid, syntax in ((jpeg.SOPInstanceUID, JPEGBaseline8Bit), (htj2k.SOPInstanceUID, HTJ2K)):
        stored = server.store.instance(str(uid))
        assert stored is not None
        assert pydicom.dcmread(stored.path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax


# ----------------------------------------------------------------------------- finding 9: retired classes
def _tiny(sop_class: str, *, pixels: bool) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "RETIRED^CLASS"
    ds.PatientID = "RET001"
    ds.Modality = "OT"
    ds.StudyDate = "20240101"
    if pixels:
        ds.Rows = ds.Columns = 4
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME2"
        ds.PixelData = np.arange(16, dtype=np.uint8).tobytes()
    return ds


def test_uid_table_names_retired_storage_classes() -> None:
    # Each one is a retired storage SOP class in pydicom's copy of PS3.6 Table A-1.
    for uid in RETIRED_STORAGE:
        name = pydicom.uid.UID(uid)
        assert name.is_retired and "Storage" in name.name and "Commitment" not in name.name, uid


def test_storescu_stores_every_retired_storage_class(make_server, tmp_path: Path) -> None:
    server, events = make_server()
    folder = tmp_path / "retired"
    folder.mkdir()
    sent: dict[str, str] = {}
    for index, sop_class in enumerate(RETIRED_STORAGE):
        ds = _tiny(sop_class, pixels=is_image_storage(sop_class))
        pydicom.dcmwrite(folder / f"obj{index}.dcm", ds, enforce_file_format=True)
        sent[str(ds.SOPInstanceUID)] = sop_class
    # -R: propose exactly the classes of the files (storescu's own list lacks most retired ones).
    proc = run_tool(
        ["storescu", "-R", "-aet", "OLDMODALITY", "-aec", server.ae_title, "127.0.0.1", str(server.port)]
        + [str(p) for p in sorted(folder.iterdir())],
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for uid, sop_class in sent.items():
        stored = server.store.instance(uid)
        assert stored is not None, sop_class
        assert stored.sop_class_uid == sop_class
    assert [e for e in events if e.kind == "refused"] == []


# ----------------------------------------------------------------------------- finding 10: who may associate
def test_called_ae_title_is_checked(make_server) -> None:
    server, events = make_server()
    wrong = run_tool(["echoscu", "-aet", "SENDER", "-aec", "ANY-SCP", "127.0.0.1", str(server.port)], check=False)
    assert wrong.returncode != 0
    assert "Called AE Title Not Recognized" in wrong.stdout + wrong.stderr
    assert any(e.kind == "rejected" and "called AE" in e.message for e in events)
    raw = RawAssociation.open(server.port, [(1, CT, [ExplicitVRLittleEndian])], called_ae="SOMEONE")
    assert raw.rejection == (0x01, 0x01, 0x07)
    raw.close()
    run_tool(["echoscu", "-aet", "SENDER", "-aec", server.ae_title, "127.0.0.1", str(server.port)])
    relaxed, _ = make_server(check_called_ae=False)
    run_tool(["echoscu", "-aet", "SENDER", "-aec", "ANY-SCP", "127.0.0.1", str(relaxed.port)])


def test_allowed_node_bound_to_its_host(make_server) -> None:
    server, events = make_server(
        restrict_calling_aes=True, allowed_calling_aes=["PACS@127.0.0.2", "MODALITY@127.0.0.0/30", "ANYWHERE"]
    )
    contexts = [(1, CT, [ExplicitVRLittleEndian])]
    cases = [
        ("PACS", "127.0.0.2", None),
        ("PACS", "127.0.0.1", (0x01, 0x01, 0x03)),  # the right AE title from the wrong host
        ("MODALITY", "127.0.0.3", None),
        ("MODALITY", "127.0.0.5", (0x01, 0x01, 0x03)),
        ("ANYWHERE", "127.0.0.9", None),
        ("STRANGER", "127.0.0.2", (0x01, 0x01, 0x03)),
    ]
    for calling, source, rejection in cases:
        raw = RawAssociation.open(server.port, contexts, calling_ae=calling, source=source)
        assert raw.rejection == rejection, (calling, source)
        if rejection is None:
            raw.release()
        else:
            raw.close()
    assert [e.calling_ae for e in events if e.kind == "rejected"] == ["PACS", "MODALITY", "STRANGER"]


@pytest.mark.parametrize(
    "bad_uid",
    ["1.2.3.\u00e9\u00e8".encode("latin-1") + b"\x00", b"1.2.3.4\xff\xfe", b"1.2.ABC.4", b"1.2 3.'4'"],
    ids=["latin1", "not-utf8", "letters", "space-quotes"],
)
def test_bad_affected_sop_instance_uid_gets_a_failure_response(make_server, bad_uid: bytes) -> None:
    server, events = make_server()
    ds = _tiny(CT, pixels=True)
    body = pydicom.filebase.DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(body, ds)
    raw = RawAssociation.open(server.port, [(1, CT, [ExplicitVRLittleEndian])])
    try:
        raw.sock.sendall(pdata(1, c_store_rq(7, CT.encode(), bad_uid), command=True))
        raw.sock.sendall(pdata(1, body.getvalue(), command=False))
        response = raw.read_response()
        status = struct.unpack("<H", response[0x0900])[0]
        assert status == 0xC000
        assert b"not a valid UID" in response[0x0902]
        assert struct.unpack("<H", response[0x0120])[0] == 7
        # The association goes on: the next, valid, C-STORE is stored.
        raw.sock.sendall(pdata(1, c_store_rq(8, CT.encode(), str(ds.SOPInstanceUID).encode()), command=True))
        raw.sock.sendall(pdata(1, body.getvalue(), command=False))
        assert struct.unpack("<H", raw.read_response()[0x0900])[0] == 0x0000
    finally:
        raw.release()
    assert server.store.counts()["instances"] == 1
    assert any(e.kind == "refused" and e.status == 0xC000 for e in events)
