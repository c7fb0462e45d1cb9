"""Orthanc with its DICOMweb plugin (Debian `orthanc-dicomweb`) on loopback, behind HTTP basic auth.

Built on the same process helpers as `tests.support.peers.orthanc`; the configuration differs in what
DICOMweb needs: the plugin, its root, and registered users (so wrong credentials can be tested).
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port, require_tool, running
from tests.support.peers import HOST, Peer

PLUGIN_PATHS = (
    Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
    Path("/usr/lib/orthanc/libOrthancDicomWeb.so.1.7"),
)
USER = "radiologist"
PASSWORD = "s3cret-Pässword"


@dataclass
class DicomWebPeer(Peer):
    user: str = USER
    password: str = PASSWORD

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}/dicom-web"

    def web_node(self, **kwargs: object):
        from viewer.core.settings import DicomWebNode

        values: dict[str, object] = {
            "name": "Orthanc DICOMweb",
            "base_url": self.base_url,
            "auth": "basic",
            "username": self.user,
            "password": self.password,
        }
        values.update(kwargs)
        return DicomWebNode(**values)  # type: ignore[arg-type]

    def rest(self, method: str, path: str, body: bytes | None = None) -> object:
        """Orthanc's own REST API (counts, deletes) with the test user's credentials."""
        request = urllib.request.Request(f"http://{HOST}:{self.http_port}{path}", data=body, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as rsp:
            payload = rsp.read()
        return json.loads(payload) if payload else None

    def instance_count(self) -> int:
        return int(self.rest("GET", "/statistics")["CountInstances"])  # type: ignore[index]

    def clear(self) -> None:
        for patient in self.rest("GET", "/patients"):  # type: ignore[union-attr]
            self.rest("DELETE", f"/patients/{patient}")


def plugin_path() -> Path:
    for path in PLUGIN_PATHS:
        if path.exists():
            return path
    import pytest

    pytest.skip("the Orthanc DICOMweb plugin is not installed (./dev test installs orthanc-dicomweb)")
    raise AssertionError  # unreachable


@contextlib.contextmanager
def orthanc_dicomweb(
    folder: Path,
    *,
    ae_title: str = "WEBPACS",
    modalities: dict[str, tuple[str, int]] | None = None,
) -> Iterator[DicomWebPeer]:
    """Orthanc with DICOM, HTTP and DICOMweb on free loopback ports; HTTP requires basic auth."""
    require_tool("Orthanc")
    plugin = plugin_path()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    storage = folder / "storage"
    storage.mkdir(exist_ok=True)
    config = {
        "Name": "TestWebPACS",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "DicomAet": ae_title,
        "DicomPort": dicom_port,
        "DicomServerEnabled": True,
        "HttpPort": http_port,
        "HttpServerEnabled": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowMove": True,
        "DicomAlwaysAllowGet": True,
        "HttpThreadsCount": 8,
        "DefaultEncoding": "Utf8",
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": HOST, "Ssl": False},
        "DicomModalities": {name.lower(): [ae, HOST, p] for name, (ae, p) in (modalities or {}).items()},
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    with running(["Orthanc", str(path)], cwd=folder, port=dicom_port, log_path=folder / "orthanc.log", timeout=30):
        peer = DicomWebPeer(ae_title, dicom_port, folder, http_port=http_port)
        _wait_ready(peer)
        yield peer


def _wait_ready(peer: DicomWebPeer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            peer.rest("GET", "/system")
            return
        except (OSError, urllib.error.HTTPError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)
