"""Our Storage/Verification SCP against DCMTK storescu/echoscu and pynetdicom senders."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from tests.support.peers import compress, run_tool, storescu_exact
from viewer.core.settings import LocalNode, RemoteNode
from viewer.core.store import StoreFullError, StudyStore
from viewer.net import scu
from viewer.net.scp import ScpEvent, StorageServer
from viewer.net.statuses import FailureKind, NetworkError

pytestmark = pytest.mark.network

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def scp(tmp_path: Path) -> Iterator[tuple[StorageServer, list[ScpEvent]]]:
    events: list[ScpEvent] = []
    local = LocalNode(port=0, bind_address="127.0.0.1", max_pdu=16384)
    store = StudyStore(tmp_path / "store")
    server = StorageServer(store, local, on_event=events.append)
    with server:
        yield server, events
    store.close()


def fresh_copy(source: str, folder: Path, name: str) -> Path:
    ds = pydicom.dcmread(get_testdata_file(source))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path


def send(
    server: StorageServer, ds: Dataset, *, calling: str = "TESTSCU", context_class: str | None = None
) -> int | None:
    ae = AE(calling)
    ae.add_requested_context(context_class or ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title)
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(ds)
        return int(rsp.Status) if "Status" in rsp else None
    finally:
        assoc.release()


def send_as(server: StorageServer, ds: Dataset, affected_class: str) -> int | None:
    """C-STORE whose request names `affected_class` whatever the data set says (pynetdicom would not allow it)."""
    ae = AE("TESTSCU")
    ae.add_requested_context(affected_class, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title)
    assert assoc.is_established
    try:
        request = C_STORE()
        request.MessageID = 7
        request.AffectedSOPClassUID = affected_class
        request.AffectedSOPInstanceUID = ds.SOPInstanceUID
        request.Priority = 2
        request.DataSet = BytesIO(encode(ds, False, True))
        # Hold pynetdicom's reactor the way its own send_c_store does, so the response comes to us.
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            time.sleep(0.001)
        try:
            assoc.dimse.send_msg(request, assoc.accepted_contexts[0].context_id)
            _, rsp = assoc.dimse.get_msg(block=True)
        finally:
            assoc._reactor_checkpoint.set()
        return int(rsp.Status) if rsp is not None else None
    finally:
        assoc.release()


def ct_dataset(**changes: object) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def test_echoscu_and_storescu_uncompressed_and_compressed(scp, tmp_path: Path) -> None:
    server, events = scp
    run_tool(["echoscu", "-aet", "ECHOER", "-aec", server.ae_title, "127.0.0.1", str(server.port)])
    assert any(e.kind == "echo" and e.calling_ae == "ECHOER" for e in events)

    src = tmp_path / "src"
    src.mkdir()
    files = {
        "1.2.840.10008.1.2.1": fresh_copy("CT_small.dcm", src, "plain.dcm"),
        "1.2.840.10008.1.2.4.70": compress(fresh_copy("CT_small.dcm", src, "a.dcm"), src / "jpeg.dcm", "jpeg"),
        "1.2.840.10008.1.2.4.50": compress(
            fresh_copy("examples_rgb_color.dcm", src, "b.dcm"), src / "base.dcm", "jpeg-baseline"
        ),
        "1.2.840.10008.1.2.5": compress(fresh_copy("MR_small.dcm", src, "c.dcm"), src / "rle.dcm", "rle"),
        "1.2.840.10008.1.2.4.80": compress(fresh_copy("CT_small.dcm", src, "d.dcm"), src / "jls.dcm", "jpls"),
        "1.2.840.10008.1.2.1.99": fresh_copy("image_dfl.dcm", src, "deflated.dcm"),
        "1.2.840.10008.1.2.4.90": compress(fresh_copy("MR_small.dcm", src, "e.dcm"), src / "j2k.dcm", "j2k"),
    }
    storescu_exact(server.ae_title, server.port, files.values(), tmp_path)
    for syntax, path in files.items():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert str(ds.file_meta.TransferSyntaxUID) == syntax
        stored = server.store.instance(str(ds.SOPInstanceUID))
        assert stored is not None, f"{path.name} was not stored"
        assert stored.transfer_syntax == syntax
        kept = pydicom.dcmread(stored.path)
        assert kept.file_meta.SourceApplicationEntityTitle == "MODALITY"
        assert kept.PixelData == pydicom.dcmread(path).PixelData  # stored as received, not transcoded
    stored_events = [e for e in events if e.kind == "stored"]
    assert len(stored_events) == len(files) and all(e.status == 0 for e in stored_events)


def test_statuses_for_bad_objects(scp) -> None:
    server, _ = scp
    assert send(server, ct_dataset()) == 0x0000
    assert send(server, ct_dataset(StudyInstanceUID=None)) == 0xC000
    assert send(server, ct_dataset(SeriesInstanceUID="1.2.3/../../etc")) == 0xC000
    assert send(server, ct_dataset(StudyInstanceUID="1." + "2" * 70)) == 0xC000
    mismatch = ct_dataset(SOPClassUID="1.2.840.10008.5.1.4.1.1.4")  # says MR inside, sent as CT
    assert send_as(server, mismatch, CT) == 0xA900
    no_pixels = ct_dataset(PixelData=None)
    assert send(server, no_pixels) == 0xB007
    assert server.store.instance(no_pixels.SOPInstanceUID) is not None  # a warning still stores
    assert server.store.counts()["instances"] == 2
    assert server.store.integrity_problems() == []


def test_duplicate_is_success_and_stored_once(scp) -> None:
    server, _ = scp
    ds = ct_dataset()
    assert send(server, ds) == 0x0000
    assert send(server, ds) == 0x0000
    assert server.store.counts()["instances"] == 1


def test_private_sop_class_is_accepted(scp) -> None:
    server, _ = scp
    private = "1.3.46.670589.5.0.9"  # Philips private CT synthetic image storage (Xcelera seed)
    ds = ct_dataset(SOPClassUID=private)
    assert send(server, ds, context_class=private) == 0x0000
    stored = server.store.instance(ds.SOPInstanceUID)
    assert stored is not None and stored.sop_class_uid == private


def test_calling_ae_allow_list(tmp_path: Path) -> None:
    local = LocalNode(port=0, bind_address="127.0.0.1", restrict_calling_aes=True, allowed_calling_aes=["GOODSCU"])
    events: list[ScpEvent] = []
    store = StudyStore(tmp_path / "store")
    with StorageServer(store, local, on_event=events.append) as server:
        node = RemoteNode(ae_title=local.ae_title, host="127.0.0.1", port=server.port)
        scu.echo(node, local=LocalNode(ae_title="GOODSCU"))
        with pytest.raises(NetworkError) as refused:
            scu.echo(node, local=LocalNode(ae_title="BADSCU"))
        assert refused.value.kind is FailureKind.REJECTED
        assert "calling AE" in str(refused.value) and "permanently" in str(refused.value)
        proc = run_tool(
            [
                "storescu",
                "-aet",
                "INTRUDER",
                "-aec",
                local.ae_title,
                "127.0.0.1",
                str(server.port),
                get_testdata_file("CT_small.dcm"),
            ],
            check=False,
        )
        assert proc.returncode != 0
        assert "Calling AE Title Not Recognized" in proc.stderr
    assert store.counts()["instances"] == 0
    assert [e.calling_ae for e in events if e.kind == "rejected"] == ["BADSCU", "INTRUDER"]


def test_concurrent_associations(scp, tmp_path: Path) -> None:
    server, _ = scp
    senders = 6
    # Six associations open at once (held by pynetdicom requestors)...
    barrier = threading.Barrier(senders + 1, timeout=20)
    peak: list[int] = []

    def hold_open(index: int) -> None:
        ae = AE(f"HOLDER{index}")
        ae.add_requested_context(CT, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title)
        assert assoc.is_established
        barrier.wait()  # all open
        barrier.wait()  # counted
        assoc.release()

    threads = [threading.Thread(target=hold_open, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    barrier.wait()
    peak.append(server.active_associations())
    barrier.wait()
    for t in threads:
        t.join(30)
    assert max(peak) >= senders
    # ...and six DCMTK storescu processes sending at the same time, each instance stored once. (C-STOREs come
    # from separate processes: pynetdicom requestors sharing one busy process can miss a response that arrives
    # faster than their reactor pauses, which tests pynetdicom rather than us.)
    folders = []
    for index in range(senders):
        folder = tmp_path / f"sender{index}"
        folder.mkdir()
        for number in range(3):
            fresh_copy("CT_small.dcm", folder, f"ct{number}.dcm")
        folders.append(folder)
    procs = [
        subprocess.Popen(
            ["storescu", "-aet", f"SENDER{i}", "-aec", server.ae_title, "+sd", "127.0.0.1", str(server.port), str(f)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i, f in enumerate(folders)
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
    assert server.store.counts()["instances"] == senders * 3


@pytest.mark.parametrize("spooled", [False, True], ids=["in-memory", "spooled-to-disk"])
def test_aborted_association_leaves_no_partial_instance(scp, spooled: bool) -> None:
    server, events = scp
    if spooled:  # the data set outgrows the spool threshold after a few PDUs and goes to a temp file
        server._acceptor.settings.spool_above_bytes = 64 * 1024
    ds = ct_dataset()
    ds.Rows, ds.Columns = 512, 512
    ds.PixelData = np.zeros((512, 512), dtype=np.uint16).tobytes()  # 512 KiB: many 16 KiB PDUs
    ae = AE("ABORTER")
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title)
    assert assoc.is_established
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = CT
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    request.DataSet = BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context_id = assoc.accepted_contexts[0].context_id
    for index, pdata in enumerate(message.encode_msg(context_id, 16384)):
        if index == 8:  # about a quarter of the object is on the wire
            break
        assoc.dul.send_pdu(pdata)
    time.sleep(0.3)
    assoc.abort()
    deadline = time.monotonic() + 5
    while not any(e.kind == "aborted" for e in events) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(e.kind == "aborted" and e.calling_ae == "ABORTER" for e in events)
    assert server.store.instance(ds.SOPInstanceUID) is None
    assert server.store.counts()["instances"] == 0
    assert list(server.store.tmp_dir.iterdir()) == []
    assert server.store.integrity_problems() == []
    assert send(server, ct_dataset()) == 0x0000  # and the SCP carries on


def test_object_over_size_limit_is_refused(tmp_path: Path) -> None:
    local = LocalNode(port=0, bind_address="127.0.0.1", max_object_bytes=20_000)
    store = StudyStore(tmp_path / "store")
    with StorageServer(store, local) as server:
        ae = AE("BIGSCU")
        ae.add_requested_context(CT, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title)
        rsp = assoc.send_c_store(ct_dataset())  # about 39 KB
        status = int(rsp.Status) if "Status" in rsp else None
        if assoc.is_established:
            assoc.release()
        assert status in (None, 0xA700)  # aborted on the wire, or refused once complete
    assert store.counts()["instances"] == 0


class _FullStore(StudyStore):
    """A store on a disk that has just filled up (unit level; the real small-filesystem test is in reliability)."""

    def add_bytes(self, data: bytes, *, source: str = ""):  # type: ignore[override]
        raise StoreFullError("the disk holding the study store is full")

    def add_indexed(self, data: bytes, entry: object, *, source: str = "", sync: bool = True):  # type: ignore[override]
        raise StoreFullError("the disk holding the study store is full")

    def add_checked(self, *args: object, **kwargs: object):  # type: ignore[override]
        raise StoreFullError("the disk holding the study store is full")


def test_disk_full_answers_a700_and_keeps_the_database_consistent(tmp_path: Path) -> None:
    store = _FullStore(tmp_path / "store")
    local = LocalNode(port=0, bind_address="127.0.0.1")
    with StorageServer(store, local) as server:
        assert send(server, ct_dataset()) == 0xA700
        proc = run_tool(
            [
                "storescu",
                "-v",
                "-aec",
                local.ae_title,
                "127.0.0.1",
                str(server.port),
                get_testdata_file("CT_small.dcm"),
            ],
            check=False,
        )
        assert "Refused: OutOfResources" in proc.stderr
    assert store.counts()["instances"] == 0
    assert store.integrity_problems() == []


@pytest.mark.parametrize(
    ("sop_class", "source_ae", "transfer_syntax"),
    [
        (CT, "STORESCU", "1.2.840.10008.1.2.1"),  # odd-length UIDs get their NUL pad
        ("1.2.840.10008.5.1.4.1.1.7", "ODD", "1.2.840.10008.1.2.4.50"),  # odd AE gets its space pad
        ("1.2.840.10008.5.1.4.1.1.88.11", "", "1.2.840.10008.1.2"),  # no source AE element at all
    ],
)
def test_hand_encoded_file_meta_matches_pydicom(sop_class: str, source_ae: str, transfer_syntax: str) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info

    from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
    from viewer.net.scp import encode_file_meta

    instance = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae
    expected = BytesIO()
    write_file_meta_info(expected, meta, enforce_standard=True)
    encoded = encode_file_meta(sop_class, instance, transfer_syntax, source_ae)
    assert encoded == expected.getvalue()
    parsed = pydicom.dcmread(BytesIO(b"\0" * 128 + b"DICM" + encoded), force=True).file_meta
    assert parsed.MediaStorageSOPInstanceUID == instance
