"""User settings, kept as JSON in the data folder.

Each area owns a small dataclass; unknown keys in the file are ignored and missing ones take defaults,
so settings written by an older or newer Lightbox still load.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class LocalNode:
    """Our own AE: the embedded Storage/Verification SCP."""

    ae_title: str = "LIGHTBOX"
    port: int = 11112
    bind_address: str = "0.0.0.0"
    enabled: bool = True
    restrict_calling_aes: bool = False
    allowed_calling_aes: list[str] = field(default_factory=list)
    max_associations: int = 10
    max_pdu: int = 116794
    acse_timeout_s: float = 30.0
    dimse_timeout_s: float = 60.0
    network_timeout_s: float = 60.0
    max_object_bytes: int = 4 * 1024**3
    # Off: received instances are written atomically and synced to disk in groups (at the end of each
    # association and within a second), as storescp, Orthanc and most archives do. On: each one is synced
    # before its C-STORE response (several times slower with small instances).
    sync_each_instance: bool = False
    # --- who may associate, and what one peer may hold (PS3.15 leaves both to the implementation).
    # Defaults a PACS administrator can live with: we keep listening on every interface (archives and
    # modalities must reach a reading-room workstation, and `bind_address` narrows it), the calling-AE
    # allow-list stays off (the first PACS must be able to send before anyone has configured us), but a
    # sender must at least name us: the called AE title is checked, as DCMTK storescp and most archives do.
    # Allow-list entries are "AE" or "AE@host", host an IP address, a network ("10.1.2.0/24") or a name:
    # a bound entry admits that AE title from that host only.
    check_called_ae: bool = True
    # Associations one IP address may hold at once; 0: all but a quarter of `max_associations` (8 of 10),
    # so a flooding or stuck host never locks every other sender out.
    max_associations_per_host: int = 0
    # An association that stores nothing (silence or only C-ECHO) for this long is aborted, so keep-alive
    # echoes cannot hold a slot forever.
    idle_association_s: float = 60.0
    # Within one presentation context: never lossy when lossless is offered. False (as DCMTK storescp):
    # Explicit VR Little Endian first, which every sender can produce (storescu, offered compressed and
    # uncompressed in one context, cannot compress an uncompressed file). True: the sender's own lossless
    # compressed syntax first (smaller files, for senders that hold their images compressed).
    prefer_compressed: bool = False
    # Calling AE titles whose copy of an instance already stored with other content replaces it (a correction
    # from the archive of record). Anyone else's is answered Success and dropped: the stored copy is kept.
    # A replaced copy is kept under the store's replaced/ folder and recorded in the audit trail.
    accept_corrections_from: list[str] = field(default_factory=list)


@dataclass
class RemoteNode:
    """A PACS or workstation we query, retrieve from or send to."""

    name: str = ""
    ae_title: str = ""
    host: str = "127.0.0.1"
    port: int = 104
    query_model: str = "study"  # "study" or "patient" root
    retrieve_method: str = "move"  # "move" (to us) or "get"
    use_tls: bool = False


@dataclass
class DicomWebNode:
    """An archive reached over DICOMweb (PS3.18: QIDO-RS search, WADO-RS retrieve, STOW-RS send)."""

    name: str = ""
    # The service root, e.g. http://pacs:8042/dicom-web (Orthanc) or https://host/dcm4chee-arc/aets/DCM4CHEE/rs.
    base_url: str = ""
    auth: str = "none"  # "none", "basic" or "bearer"
    username: str = ""
    password: str = ""
    token: str = ""
    # PEM file of the CA certificates that sign the server's certificate; empty: the system's trusted CAs.
    ca_bundle: str = ""
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    # Ask for the stored transfer syntax (`transfer-syntax=*`, PS3.18 8.7.3.5) so nothing is transcoded;
    # off for servers that refuse the wildcard (they then send Explicit VR Little Endian).
    any_transfer_syntax: bool = True
    fuzzy_matching: bool = False


@dataclass
class TlsSettings:
    enabled: bool = False
    certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    require_client_certificate: bool = True
    # SCUs verify the peer certificate against the CA always; this also demands it name the host we dialled.
    check_hostname: bool = True


@dataclass
class PrinterSettings:
    name: str = ""
    ae_title: str = ""
    host: str = "127.0.0.1"
    port: int = 104
    color: bool = False
    film_sizes: list[str] = field(default_factory=lambda: ["8INX10IN", "10INX12IN", "11INX14IN", "14INX17IN"])
    media: list[str] = field(default_factory=lambda: ["BLUE FILM", "CLEAR FILM", "PAPER"])
    defaults: dict[str, Any] = field(default_factory=dict)
    compatibility_single_image: bool = False
    use_tls: bool = False
    # Print: the rest is read by viewer.print (defaults holds a PrintPreset as a dict).
    display_formats: list[str] = field(default_factory=list)  # empty: every STANDARD\C,R up to 4,6
    supports_12bit: bool = True
    supports_presentation_lut: bool = True
    calling_ae_title: str = ""  # empty: our local AE title
    timeout_s: float = 60.0


@dataclass
class ViewerSettings:
    cache_megabytes: int = 1024
    default_layout: str = "1x1"
    show_reference_lines: bool = False


@dataclass
class Settings:
    local: LocalNode = field(default_factory=LocalNode)
    nodes: list[RemoteNode] = field(default_factory=list)
    dicomweb_nodes: list[DicomWebNode] = field(default_factory=list)
    printers: list[PrinterSettings] = field(default_factory=list)
    tls: TlsSettings = field(default_factory=TlsSettings)
    viewer: ViewerSettings = field(default_factory=ViewerSettings)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, path: Path) -> Settings:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.error("settings file %s is unreadable (%s); using defaults", path, exc)
            return cls()
        return _from_dict(cls, raw)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def _from_dict(cls: type[T], raw: Any) -> T:
    if not isinstance(raw, dict):
        return cls()
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in raw:
            continue
        kwargs[f.name] = _coerce(hints[f.name], raw[f.name])
    return cls(**kwargs)


def _coerce(tp: Any, value: Any) -> Any:
    if is_dataclass(tp):
        return _from_dict(tp, value)
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        return [_coerce(item, v) for v in value] if isinstance(value, list) else []
    return value
