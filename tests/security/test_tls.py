"""DICOM TLS with the BCP 195 profile: our contexts, DCMTK's +tls tools against our SCP, our SCU against storescp."""

from __future__ import annotations

import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from tests.security.pki import Pki, make_pki
from tests.security.scp_support import our_scp
from tests.support.net import free_port, require_tool, running
from viewer.core.settings import TlsSettings
from viewer.core.store import StudyStore
from viewer.net.tls import (
    BCP195_TLS12_CIPHERS,
    TlsConfigurationError,
    client_context,
    server_context,
    server_context_or_none,
    tls_args,
)

CT = get_testdata_file("CT_small.dcm")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _server_settings(pki: Pki) -> TlsSettings:
    return TlsSettings(
        enabled=True,
        certificate=str(pki.server.certificate),
        private_key=str(pki.server.private_key),
        ca_certificates=str(pki.ca_certificate),
    )


def _client_settings(pki: Pki, *, check_hostname: bool = True) -> TlsSettings:
    return TlsSettings(
        enabled=True,
        certificate=str(pki.client.certificate),
        private_key=str(pki.client.private_key),
        ca_certificates=str(pki.ca_certificate),
        check_hostname=check_hostname,
    )


# ----------------------------------------------------------------------------- the contexts themselves
def test_contexts_follow_bcp195(pki: Pki) -> None:
    for context in (server_context(_server_settings(pki)), client_context(_client_settings(pki))):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.options & ssl.OP_NO_COMPRESSION
        assert context.options & ssl.OP_NO_RENEGOTIATION
        assert context.verify_mode == ssl.CERT_REQUIRED
        tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert tls12, "no TLS 1.2 suites offered"
        for cipher in tls12:
            assert cipher["name"] in BCP195_TLS12_CIPHERS
            assert cipher["aead"] and cipher["kea"] in ("kx-ecdhe", "kx-dhe"), cipher
    assert server_context_or_none(TlsSettings(enabled=False)) is None


def test_configuration_errors_name_the_missing_file(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(TlsConfigurationError, match="certificate"):
        server_context(TlsSettings(enabled=True, ca_certificates=str(pki.ca_certificate)))
    with pytest.raises(TlsConfigurationError, match="does not exist"):
        client_context(TlsSettings(enabled=True, ca_certificates=str(tmp_path / "nope.pem")))
    with pytest.raises(TlsConfigurationError, match="cannot load certificate"):
        server_context(
            TlsSettings(
                enabled=True,
                certificate=str(pki.server.certificate),
                private_key=str(pki.client.private_key),  # a key that does not match the certificate
                ca_certificates=str(pki.ca_certificate),
            )
        )


def _handshake(port: int, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version() or ""


def _exchange_a_byte(port: int, context: ssl.SSLContext) -> None:
    # With TLS 1.3 the server reports a missing client certificate only when the client first reads.
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"\x01")
        if not tls.recv(1):
            raise ConnectionError("closed by the server")


def test_old_protocols_and_weak_suites_are_refused(tmp_path: Path, pki: Pki) -> None:
    store = StudyStore(tmp_path / "store")
    with our_scp(store, ssl_context=server_context(_server_settings(pki))) as scp:
        good = client_context(_client_settings(pki))
        assert _handshake(scp.port, good) in ("TLSv1.2", "TLSv1.3")

        tls12_only = client_context(_client_settings(pki))
        tls12_only.maximum_version = ssl.TLSVersion.TLSv1_2
        assert _handshake(scp.port, tls12_only) == "TLSv1.2"

        cbc_only = client_context(_client_settings(pki))
        cbc_only.maximum_version = ssl.TLSVersion.TLSv1_2
        cbc_only.set_ciphers("ECDHE-ECDSA-AES128-SHA256:AES128-SHA256:AES256-SHA")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(scp.port, cbc_only)

        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(pki.ca_certificate))
        old.load_cert_chain(str(pki.client.certificate), str(pki.client.private_key))
        old.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(scp.port, old)

        no_client_cert = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        no_client_cert.load_verify_locations(str(pki.ca_certificate))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _exchange_a_byte(scp.port, no_client_cert)
    store.close()


# ----------------------------------------------------------------------------- DCMTK against our SCP
def _dcmtk_tls(tool: str, identity_key: Path, identity_cert: Path, pki: Pki) -> list[str]:
    return [require_tool(tool), "+tls", str(identity_key), str(identity_cert), "+cf", str(pki.ca_certificate)]


@pytest.mark.network
def test_dcmtk_echoscu_and_storescu_over_tls_to_our_scp(tmp_path: Path, pki: Pki) -> None:
    store = StudyStore(tmp_path / "store")
    with our_scp(store, ssl_context=server_context(_server_settings(pki))) as scp:
        address = ["-aec", scp.ae_title, "-aet", "TLSSCU", "127.0.0.1", str(scp.port)]
        echo = subprocess.run(
            [*_dcmtk_tls("echoscu", pki.client.private_key, pki.client.certificate, pki), "-v", *address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert echo.returncode == 0, echo.stdout + echo.stderr
        assert "Received Echo Response (Success)" in echo.stdout + echo.stderr

        send = subprocess.run(
            [*_dcmtk_tls("storescu", pki.client.private_key, pki.client.certificate, pki), "-v", *address, CT],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert send.returncode == 0, send.stdout + send.stderr
        assert "Received Store Response (Success)" in send.stdout + send.stderr
        sop_uid = pydicom.dcmread(CT, stop_before_pixels=True).SOPInstanceUID
        stored = store.instance(sop_uid)
        assert stored is not None and Path(stored.path).is_file()

        stranger = subprocess.run(
            [*_dcmtk_tls("echoscu", pki.stranger.private_key, pki.stranger.certificate, pki), *address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert stranger.returncode != 0
        plain = subprocess.run(
            [require_tool("echoscu"), "-to", "5", *address], capture_output=True, text=True, timeout=30
        )
        assert plain.returncode != 0
    store.close()


# ----------------------------------------------------------------------------- our SCU against DCMTK storescp
@pytest.mark.network
def test_our_scu_stores_to_dcmtk_storescp_over_tls(tmp_path: Path, pki: Pki) -> None:
    out = tmp_path / "received"
    out.mkdir()
    port = free_port()
    cmd = [
        *_dcmtk_tls("storescp", pki.server.private_key, pki.server.certificate, pki),
        "-aet",
        "DCMTKTLS",
        "-od",
        str(out),
        str(port),
    ]
    with running(cmd, port=port, log_path=tmp_path / "storescp.log"):
        ds = pydicom.dcmread(CT)
        ae = AE("LIGHTBOX")
        ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
        ae.add_requested_context(Verification)
        assoc = ae.associate(
            "127.0.0.1", port, ae_title="DCMTKTLS", tls_args=tls_args(_client_settings(pki), "127.0.0.1")
        )
        assert assoc.is_established
        try:
            assert assoc.send_c_echo().Status == 0
            assert assoc.send_c_store(ds).Status == 0
        finally:
            assoc.release()

        # A server whose certificate does not name the host we dialled is refused when host names are checked.
        ae2 = AE("LIGHTBOX")
        ae2.add_requested_context(Verification)
        strict = tls_args(_client_settings(pki), "pacs.example.org")
        assert not ae2.associate("127.0.0.1", port, ae_title="DCMTKTLS", tls_args=strict).is_established
        relaxed = tls_args(_client_settings(pki, check_hostname=False), "pacs.example.org")
        assoc = ae2.associate("127.0.0.1", port, ae_title="DCMTKTLS", tls_args=relaxed)
        assert assoc.is_established
        assoc.release()
        # The application's own SCU (C's `viewer.net.scu`) takes the same client context.
        from viewer.core.settings import LocalNode, RemoteNode
        from viewer.net import scu

        node = RemoteNode(name="dcmtk", ae_title="DCMTKTLS", host="127.0.0.1", port=port, use_tls=True)
        assert scu.echo(node, local=LocalNode(), ssl_context=client_context(_client_settings(pki))) >= 0
        with pytest.raises(scu.NetworkError):
            scu.echo(node, local=LocalNode())  # plain TCP to a TLS-only peer fails instead of hanging
    received = list(out.iterdir())
    assert len(received) == 1
    assert pydicom.dcmread(received[0]).SOPInstanceUID == ds.SOPInstanceUID


@pytest.mark.network
def test_unknown_calling_ae_is_rejected_with_the_right_reason(tmp_path: Path, pki: Pki) -> None:
    store = StudyStore(tmp_path / "store")
    context = server_context(_server_settings(pki))
    with our_scp(store, ssl_context=context, allowed_calling_aes=["TLSSCU"]) as scp:
        tool = _dcmtk_tls("echoscu", pki.client.private_key, pki.client.certificate, pki)
        known = subprocess.run(
            [*tool, "-aet", "TLSSCU", "-aec", scp.ae_title, "127.0.0.1", str(scp.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert known.returncode == 0, known.stdout + known.stderr
        intruder = subprocess.run(
            [*tool, "-aet", "INTRUDER", "-aec", scp.ae_title, "127.0.0.1", str(scp.port), "-d"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        output = intruder.stdout + intruder.stderr
        assert intruder.returncode != 0
        assert "Association Rejected" in output, output[-2000:]
        assert "Rejected Permanent" in output and "Service User" in output
        assert "Calling AE Title Not Recognized" in output

        # pynetdicom as the SCU sees the same A-ASSOCIATE-RJ fields.
        ae = AE("INTRUDER")
        ae.add_requested_context(Verification)
        client = tls_args(_client_settings(pki), "127.0.0.1")
        assoc = ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title, tls_args=client)
        assert assoc.is_rejected
        rejection = assoc.acceptor.primitive
        assert (rejection.result, rejection.result_source, rejection.diagnostic) == (0x01, 0x01, 0x03)
    assert store.counts()["instances"] == 0
    store.close()
