"""Real DICOM peers for tests on loopback: DCMTK dcmqrscp and storescp, and Orthanc.

Each helper writes its configuration into a temp folder, picks free ports, waits until the peer
answers, and always stops it. Test data is made at test time from pydicom's bundled files.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.support.net import free_port, require_tool, running, wait_for_port

HOST = "127.0.0.1"


@dataclass
class Peer:
    ae_title: str
    port: int
    folder: Path
    http_port: int | None = None
    host: str = HOST

    def node(self, **kwargs: object):
        from viewer.core.settings import RemoteNode

        return RemoteNode(name=self.ae_title, ae_title=self.ae_title, host=self.host, port=self.port, **kwargs)


def run_tool(cmd: Sequence[str], *, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
    require_tool(cmd[0])
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:4])}… failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def storescu(ae_title: str, port: int, files: Iterable[Path | str], *extra: str, host: str = HOST) -> None:
    """Push files with DCMTK storescu (one association; only the contexts the files need)."""
    files = [str(f) for f in files]
    for start in range(0, len(files), 400):  # keep the command line short
        run_tool(
            ["storescu", "-R", "-aet", "LOADER", "-aec", ae_title, *extra, host, str(port), *files[start : start + 400]]
        )


def storescu_exact(ae_title: str, port: int, files: Iterable[Path | str], folder: Path, *extra: str) -> None:
    """storescu proposing each file's own SOP class and transfer syntax (compressed ones included).

    storescu's -R only proposes uncompressed syntaxes unless told otherwise, so the test writes an
    association configuration with one presentation context per (SOP class, transfer syntax) of the files.
    """
    pairs: dict[tuple[str, str], None] = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        pairs[(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))] = None
    syntaxes = sorted({ts for _, ts in pairs})
    lines = ["[[TransferSyntaxes]]"]
    for i, ts in enumerate(syntaxes):
        lines += [f"[TS{i}]", f"TransferSyntax1 = {ts}"]
    lines += ["[[PresentationContexts]]", "[Exact]"]
    for n, (sop, ts) in enumerate(pairs, start=1):
        lines.append(f"PresentationContext{n} = {sop}\\TS{syntaxes.index(ts)}")
    lines += ["[[Profiles]]", "[Exact]", "PresentationContexts = Exact"]
    config = folder / "storescu-exact.cfg"
    config.write_text("\n".join(lines) + "\n")
    run_tool(
        ["storescu", "-xf", str(config), "Exact", "-aet", "MODALITY", "-aec", ae_title, *extra, HOST, str(port)]
        + [str(f) for f in files]
    )


# ----------------------------------------------------------------------------- test data
@dataclass
class StudyFiles:
    study_uid: str
    patient_id: str
    patient_name: str
    series: dict[str, list[Path]]  # series UID -> files

    @property
    def files(self) -> list[Path]:
        return [f for files in self.series.values() for f in files]


def make_study(
    folder: Path,
    *,
    patient_name: str = "DOE^JANE",
    patient_id: str = "PID001",
    study_date: str = "20240115",
    accession: str = "ACC001",
    description: str = "CT CHEST",
    series_counts: Sequence[int] = (3, 2),
    source: str = "CT_small.dcm",
    modality: str | None = None,
    charset: str | None = None,
) -> StudyFiles:
    """Write one study (fresh UIDs) as Part 10 files made from a pydicom test file."""
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(get_testdata_file(source))
    study_uid = generate_uid()
    series: dict[str, list[Path]] = {}
    number = 0
    for series_index, count in enumerate(series_counts, start=1):
        series_uid = generate_uid()
        series[series_uid] = []
        for instance in range(1, count + 1):
            ds = template.copy()
            if charset:
                ds.SpecificCharacterSet = charset
            ds.PatientName = patient_name
            ds.PatientID = patient_id
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.StudyDate = study_date
            ds.SeriesDate = study_date
            ds.AccessionNumber = accession
            ds.StudyDescription = description
            ds.SeriesDescription = f"series {series_index}"
            ds.SeriesNumber = series_index
            ds.InstanceNumber = instance
            ds.StudyID = "1"
            ds.ReferringPhysicianName = "WHO^DR"
            if modality:
                ds.Modality = modality
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            number += 1
            path = folder / f"{study_uid[-12:]}_{number:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            series[series_uid].append(path)
    return StudyFiles(study_uid, patient_id, patient_name, series)


def make_small_instances(folder: Path, count: int) -> list[Path]:
    """Many tiny, valid instances (8x8 secondary capture) for throughput tests."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset

    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    paths = []
    for i in range(count):
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.PatientName = "BENCH^SMALL"
        ds.PatientID = "BENCH"
        ds.Modality = "OT"
        ds.InstanceNumber = i + 1
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = np.full((8, 8), i % 256, dtype=np.uint8).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"small_{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def compress(src: Path, dst: Path, kind: str) -> Path:
    """A compressed copy: 'jpeg' (lossless SV1), 'jpeg-baseline', 'rle', 'jpls' (DCMTK) or 'j2k' (OpenJPEG)."""
    if kind == "jpeg":
        run_tool(["dcmcjpeg", str(src), str(dst)])
    elif kind == "jpeg-baseline":
        run_tool(["dcmcjpeg", "+eb", str(src), str(dst)])
    elif kind == "rle":
        run_tool(["dcmcrle", str(src), str(dst)])
    elif kind == "jpls":
        run_tool(["dcmcjpls", str(src), str(dst)])
    elif kind == "j2k":
        ds = pydicom.dcmread(src)
        ds.compress("1.2.840.10008.1.2.4.90", encoding_plugin="pylibjpeg")  # OpenJPEG
        ds.save_as(dst, enforce_file_format=True)
    else:
        raise ValueError(kind)
    return dst


# ----------------------------------------------------------------------------- dcmqrscp
DCMQRSCP_CONFIG = """\
NetworkTCPPort  = {port}
MaxPDUSize      = 16384
MaxAssociations = 16

HostTable BEGIN
{hosts}
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
{ae} {db} RW (500, 1024mb) ANY
AETable END
"""


@contextlib.contextmanager
def dcmqrscp(
    folder: Path,
    *,
    ae_title: str = "ARCHIVE",
    move_destinations: dict[str, int] | None = None,
    files: Iterable[Path] = (),
) -> Iterator[Peer]:
    """DCMTK dcmqrscp as a Q/R archive; `move_destinations` maps AE title -> loopback port it may move to."""
    require_tool("dcmqrscp")
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "db"
    db.mkdir(exist_ok=True)
    port = free_port()
    hosts = "\n".join(
        f"dest{i} = ({ae}, {HOST}, {dest_port})" for i, (ae, dest_port) in enumerate((move_destinations or {}).items())
    )
    config = folder / "dcmqrscp.cfg"
    config.write_text(DCMQRSCP_CONFIG.format(port=port, hosts=hosts, ae=ae_title, db=db))
    with running(["dcmqrscp", "-c", str(config)], cwd=folder, port=port, log_path=folder / "dcmqrscp.log"):
        peer = Peer(ae_title, port, folder)
        files = list(files)
        if files:
            storescu(ae_title, port, files)
        yield peer


# ----------------------------------------------------------------------------- Orthanc
@contextlib.contextmanager
def orthanc(
    folder: Path, *, ae_title: str = "ORTHANC", modalities: dict[str, tuple[str, int]] | None = None
) -> Iterator[Peer]:
    """Orthanc with DICOM + HTTP on free loopback ports; `modalities` are the move destinations it knows."""
    require_tool("Orthanc")
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    storage = folder / "storage"
    storage.mkdir(exist_ok=True)
    config = {
        "Name": "TestPACS",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "DicomAet": ae_title,
        "DicomPort": dicom_port,
        "DicomServerEnabled": True,
        "HttpPort": http_port,
        "HttpServerEnabled": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowMove": True,
        "DicomAlwaysAllowGet": True,
        "Plugins": [],
        "DicomModalities": {name.lower(): [ae, HOST, p] for name, (ae, p) in (modalities or {}).items()},
    }
    config = {k: v for k, v in config.items() if v is not None}
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    with running(["Orthanc", str(path)], cwd=folder, port=dicom_port, log_path=folder / "orthanc.log", timeout=30):
        wait_for_port(http_port, 30)
        _wait_http(f"http://{HOST}:{http_port}/system")
        yield Peer(ae_title, dicom_port, folder, http_port=http_port)


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as rsp:
                if rsp.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def orthanc_instance_count(peer: Peer) -> int:
    with urllib.request.urlopen(f"http://{HOST}:{peer.http_port}/statistics", timeout=5) as rsp:
        return int(json.load(rsp)["CountInstances"])


# ----------------------------------------------------------------------------- storescp
@contextlib.contextmanager
def storescp(folder: Path, *, ae_title: str = "STORESCP", extra: Sequence[str] = ()) -> Iterator[Peer]:
    """DCMTK storescp writing what it receives into `folder` (benchmarks, SCU store tests)."""
    require_tool("storescp")
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = ["storescp", "-aet", ae_title, "-od", str(folder), "+xa", *extra, str(port)]
    with running(cmd, cwd=folder, port=port, log_path=folder.parent / f"storescp-{port}.log"):
        yield Peer(ae_title, port, folder)
