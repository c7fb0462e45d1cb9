"""DICOM TLS: `ssl.SSLContext`s for our Storage SCP and for every SCU, built from `TlsSettings`.

The contexts follow the expectations of the BCP 195 TLS profiles in DICOM PS3.15 Annex B.9 (the
non-downgrading profile, which DCMTK also uses by default):

* TLS 1.2 is the lowest version offered or accepted; TLS 1.3 is used when both ends have it.
* For TLS 1.2 only the BCP 195 recommended AEAD suites are offered: ECDHE (and DHE) key exchange with
  AES-GCM. TLS 1.3 suites are all AEAD already and OpenSSL's defaults are kept for them.
* TLS compression and renegotiation are switched off.
* Both ends authenticate: the server demands a client certificate signed by the configured CA (unless the
  settings relax that), the client always verifies the server's certificate against the CA.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from viewer.core.settings import TlsSettings

# RFC 7525 / RFC 9325 section 4.2 recommended TLS 1.2 suites, ECDHE first (OpenSSL names).
BCP195_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
)

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsConfigurationError(ValueError):
    """The TLS settings cannot make a working context; the message tells the user what to fix."""


@dataclass(frozen=True)
class ClientTls:
    """What pynetdicom's `AE.associate(tls_args=...)` wants: the context and the name to verify."""

    context: ssl.SSLContext
    server_hostname: str

    def as_tls_args(self) -> tuple[ssl.SSLContext, str]:
        return (self.context, self.server_hostname)


def _harden(context: ssl.SSLContext) -> None:
    context.minimum_version = MINIMUM_VERSION
    context.set_ciphers(":".join(BCP195_TLS12_CIPHERS))
    context.options |= ssl.OP_NO_COMPRESSION
    if hasattr(ssl, "OP_NO_RENEGOTIATION"):
        context.options |= ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_SINGLE_ECDH_USE | ssl.OP_SINGLE_DH_USE


def _existing(path_text: str, what: str) -> Path:
    if not path_text:
        raise TlsConfigurationError(f"TLS is enabled but no {what} is set")
    path = Path(path_text).expanduser()
    if not path.exists():
        raise TlsConfigurationError(f"the {what} {path} does not exist")
    return path


def _load_identity(context: ssl.SSLContext, tls: TlsSettings, *, required: bool) -> None:
    if not tls.certificate and not tls.private_key and not required:
        return
    certificate = _existing(tls.certificate, "certificate")
    key = _existing(tls.private_key or tls.certificate, "private key")
    try:
        context.load_cert_chain(certfile=str(certificate), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigurationError(f"cannot load certificate {certificate} with key {key}: {exc}") from exc


def _load_trust(context: ssl.SSLContext, tls: TlsSettings) -> None:
    ca = _existing(tls.ca_certificates, "CA certificate file or folder")
    try:
        if ca.is_dir():
            context.load_verify_locations(capath=str(ca))
        else:
            context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigurationError(f"cannot load CA certificates from {ca}: {exc}") from exc


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context our Storage SCP wraps accepted connections in."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_identity(context, tls, required=True)
    if tls.require_client_certificate:
        _load_trust(context, tls)
        context.verify_mode = ssl.CERT_REQUIRED
    elif tls.ca_certificates:
        _load_trust(context, tls)
        context.verify_mode = ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def client_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context our SCUs (store, query/retrieve, print) connect with.

    The peer's certificate is always verified against the CA. Host name checking follows
    `tls.check_hostname`: DICOM nodes are often configured by IP address while
    their certificates name a host, so a site may turn it off and rely on the CA alone, as DCMTK does.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(context)
    _load_identity(context, tls, required=False)
    _load_trust(context, tls)
    context.check_hostname = tls.check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls(tls: TlsSettings, host: str, *, use_tls: bool = True) -> ClientTls | None:
    """The TLS arguments for an association to `host`, or None when this node is reached without TLS."""
    if not use_tls:
        return None
    return ClientTls(client_context(tls), host)


def tls_args(tls: TlsSettings, host: str, *, use_tls: bool = True) -> tuple[ssl.SSLContext, str] | None:
    """`tls_args` for `pynetdicom.AE.associate`: None (plain TCP) or (client context, server host name)."""
    client = client_tls(tls, host, use_tls=use_tls)
    return client.as_tls_args() if client is not None else None


def server_context_or_none(tls: TlsSettings) -> ssl.SSLContext | None:
    """The SCP's context when TLS is enabled in the settings, else None (plain TCP)."""
    return server_context(tls) if tls.enabled else None


def describe(context: ssl.SSLContext) -> str:
    """A one-line summary for the log and the settings dialog (no secrets in it)."""
    names = sorted({c["name"] for c in context.get_ciphers()})
    return (
        f"TLS >= {context.minimum_version.name}, verify={context.verify_mode.name}, "
        f"{len(names)} cipher suites ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"
    )


def pem_files_readable(tls: TlsSettings) -> list[str]:
    """Problems with the configured files, for the settings dialog to show before saving (empty when fine)."""
    problems = []
    for text, what in (
        (tls.certificate, "certificate"),
        (tls.private_key, "private key"),
        (tls.ca_certificates, "CA certificates"),
    ):
        if not text:
            problems.append(f"no {what} set")
        elif not os.access(Path(text).expanduser(), os.R_OK):
            problems.append(f"the {what} {text} cannot be read")
    return problems
