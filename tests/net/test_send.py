"""Storage SCU against real DCMTK storescp peers on loopback: as stored, transcoded, cancelled, peer down."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from tests.support.net import free_port
from tests.support.peers import HOST, storescp
from viewer.core.model import Instance
from viewer.core.settings import LocalNode, RemoteNode
from viewer.net.send import Outcome, SendProgress, send_instances

LOCAL = LocalNode(ae_title="LIGHTBOX", acse_timeout_s=10.0, dimse_timeout_s=20.0, network_timeout_s=20.0)


def _source(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} missing"
    return Path(path)


def _received(folder: Path) -> dict[str, pydicom.Dataset]:
    """What storescp wrote, by SOP Instance UID (it names the files itself)."""
    out = {}
    for path in folder.iterdir():
        if path.is_file():
            ds = pydicom.dcmread(path)
            out[str(ds.SOPInstanceUID)] = ds
    return out


def _as_store_instance(path: Path) -> Instance:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return Instance(
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        study_uid=str(ds.StudyInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
        path=str(path),
    )


def test_sends_as_stored_pixel_data_byte_for_byte(tmp_path: Path) -> None:
    ct, mr = _source("CT_small.dcm"), _source("MR_small_jpeg_ls_lossless.dcm")
    progress: list[SendProgress] = []
    with storescp(tmp_path / "in") as peer:
        report = send_instances(
            peer.node(),
            [_as_store_instance(ct), mr],
            on_progress=progress.append,
            cancel=threading.Event(),
            local=LOCAL,
        )
    assert report.ok, report.summary()
    assert [r.outcome for r in report.results] == [Outcome.SUCCESS, Outcome.SUCCESS]
    assert [r.status for r in report.results] == [0x0000, 0x0000]
    assert [(p.done, p.total) for p in progress] == [(1, 2), (2, 2)]
    assert not any(r.transcoded for r in report.results)
    received = _received(peer.folder)
    for source in (ct, mr):
        original = pydicom.dcmread(source)
        copy = received[str(original.SOPInstanceUID)]
        assert copy.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert copy.PixelData == original.PixelData
    assert received[str(pydicom.dcmread(mr).SOPInstanceUID)].file_meta.TransferSyntaxUID == JPEGLSLossless


def test_peer_taking_only_explicit_le_gets_a_decompressed_copy(tmp_path: Path) -> None:
    mr = _source("MR_small_jpeg_ls_lossless.dcm")
    # +xe after the helper's +xa: the last of storescp's preference options wins, so it accepts only
    # the uncompressed syntaxes (Explicit VR Little Endian preferred) and refuses the JPEG-LS context.
    with storescp(tmp_path / "in", extra=("+xe",)) as peer:
        report = send_instances(peer.node(), [mr], local=LOCAL)
    assert report.ok, report.summary()
    (result,) = report.results
    assert result.outcome is Outcome.SUCCESS
    assert result.stored_syntax == JPEGLSLossless
    assert result.sent_syntax == ExplicitVRLittleEndian
    assert result.transcoded
    original = pydicom.dcmread(mr)
    copy = _received(peer.folder)[str(original.SOPInstanceUID)]
    assert copy.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert "PixelData" in copy and not copy["PixelData"].is_undefined_length
    assert np.array_equal(copy.pixel_array, original.pixel_array)


def test_cancel_between_instances_sends_only_the_first(tmp_path: Path) -> None:
    ct, mr = _source("CT_small.dcm"), _source("MR_small_jpeg_ls_lossless.dcm")
    cancel = threading.Event()

    def cancel_after_first(progress: SendProgress) -> None:
        if progress.done == 1:
            cancel.set()

    with storescp(tmp_path / "in") as peer:
        report = send_instances(peer.node(), [ct, mr], on_progress=cancel_after_first, cancel=cancel, local=LOCAL)
    assert report.cancelled
    assert [r.outcome for r in report.results] == [Outcome.SUCCESS, Outcome.CANCELLED]
    assert report.results[1].status is None
    assert not report.ok
    assert set(_received(peer.folder)) == {str(pydicom.dcmread(ct).SOPInstanceUID)}
    assert "cancelled, 1 not sent" in report.summary()


def test_peer_down_gives_a_failure_report_not_an_exception(tmp_path: Path) -> None:
    node = RemoteNode(name="GONE", ae_title="GONE", host=HOST, port=free_port())  # nothing listens there
    ct = _source("CT_small.dcm")
    report = send_instances(node, [ct, ct], local=LOCAL)
    assert not report.ok
    assert "refused" in report.error.lower() and str(node.port) in report.error
    assert [r.outcome for r in report.results] == [Outcome.FAILURE, Outcome.FAILURE]
    assert all(r.status is None and r.comment == report.error for r in report.results)
    assert report.error in report.summary()


def test_unreadable_file_fails_alone(tmp_path: Path) -> None:
    bogus = tmp_path / "not-dicom.dcm"
    bogus.write_bytes(b"this is not a DICOM file")
    ct = _source("CT_small.dcm")
    with storescp(tmp_path / "in") as peer:
        report = send_instances(peer.node(), [bogus, ct], local=LOCAL)
    assert [r.outcome for r in report.results] == [Outcome.FAILURE, Outcome.SUCCESS]
    assert "cannot read" in report.results[0].comment.lower()
    assert set(_received(peer.folder)) == {str(pydicom.dcmread(ct).SOPInstanceUID)}


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm"])
def test_jpeg2000_goes_as_stored_or_decompressed(tmp_path: Path, name: str) -> None:
    source = _source(name)
    original = pydicom.dcmread(source)
    with storescp(tmp_path / "as-stored") as peer:
        stored = send_instances(peer.node(), [source], local=LOCAL)
    assert stored.ok, stored.summary()
    assert _received(peer.folder)[str(original.SOPInstanceUID)].PixelData == original.PixelData
    with storescp(tmp_path / "explicit", extra=("+xe",)) as peer:
        decompressed = send_instances(peer.node(), [source], local=LOCAL)
    assert decompressed.ok and decompressed.results[0].transcoded, decompressed.summary()
    copy = _received(peer.folder)[str(original.SOPInstanceUID)]
    assert np.array_equal(copy.pixel_array, original.pixel_array)


def test_sends_over_tls_with_the_node_client_context(tmp_path: Path) -> None:
    from tests.security.pki import make_pki
    from viewer.core.settings import TlsSettings
    from viewer.net.association import client_ssl_context

    pki = make_pki(tmp_path / "pki")
    server_tls = ("+tls", str(pki.server.private_key), str(pki.server.certificate), "+cf", str(pki.ca_certificate))
    client = TlsSettings(
        enabled=True,
        certificate=str(pki.client.certificate),
        private_key=str(pki.client.private_key),
        ca_certificates=str(pki.ca_certificate),
    )
    mr = _source("MR_small_jpeg_ls_lossless.dcm")
    with storescp(tmp_path / "in", extra=server_tls) as peer:
        plain = send_instances(peer.node(), [mr], local=LOCAL)  # a TLS-only peer: clear failure, no hang
        node = peer.node(use_tls=True)
        report = send_instances(node, [mr], local=LOCAL, ssl_context=client_ssl_context(node, client))
    assert not plain.ok and plain.error
    assert report.ok, report.summary()
    assert client_ssl_context(peer.node(), client) is None
    original = pydicom.dcmread(mr)
    assert _received(peer.folder)[str(original.SOPInstanceUID)].PixelData == original.PixelData


def test_peer_aborting_mid_send_fails_the_rest_without_raising(tmp_path: Path) -> None:
    ct, mr = _source("CT_small.dcm"), _source("MR_small_jpeg_ls_lossless.dcm")
    with storescp(tmp_path / "in", extra=("--abort-after",)) as peer:
        # storescp drops the association before its first response; pynetdicom does not always see the
        # A-ABORT at once, so a short DIMSE timeout bounds the wait.
        impatient = LocalNode(ae_title="LIGHTBOX", acse_timeout_s=10.0, dimse_timeout_s=3.0, network_timeout_s=3.0)
        report = send_instances(peer.node(), [ct, mr], local=impatient)
    assert [r.outcome for r in report.results] == [Outcome.FAILURE, Outcome.FAILURE]
    assert "no answer" in report.results[0].comment.lower()
    assert "lost" in report.error and report.results[1].comment == report.error


def test_refused_association_says_why(tmp_path: Path) -> None:
    with storescp(tmp_path / "in", extra=("--refuse",)) as peer:
        report = send_instances(peer.node(), [_source("CT_small.dcm")], local=LOCAL)
    assert report.results[0].outcome is Outcome.FAILURE
    # storescp --refuse closes its socket right after the A-ASSOCIATE-RJ; under load pynetdicom can see the
    # connection gone before it reads the RJ, so the report says either (never an exception, never "sent").
    assert report.error
    assert report.succeeded == 0
