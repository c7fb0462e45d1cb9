"""Archives and huge inputs cost bounded memory: nested ZIP members are spooled to disk, members that would
inflate past the largest object are refused before a byte is read, a 'DICM + zeros' file is refused from
its first bytes. Peak RSS of the real CLI process is measured (RUSAGE_CHILDREN of a fresh parent)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.reliability.corpus import write_series

REPO = Path(__file__).resolve().parents[2]
MAX_OBJECT = 32 * 1024**2
RSS_BOUND = MAX_OBJECT + 256 * 1024**2
_MEASURE = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(r.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); "
    "print(r.stdout)"
)


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(json.dumps({"local": {"max_object_bytes": MAX_OBJECT}}))
    return home


def _import_measured(home: Path, path: Path) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "viewer", "--home", str(home), "import", str(path)]
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], cwd=REPO, capture_output=True, text=True, timeout=300)
    _rc, rss, report = out.stdout.split("\n", 2)
    return int(rss), report


def _zeros(fh: object, size: int) -> None:
    chunk = bytes(1024**2)
    for _ in range(size // len(chunk)):
        fh.write(chunk)  # type: ignore[attr-defined]


@pytest.mark.timeout(300)
def test_nested_zip_is_spooled_not_read_into_memory(tmp_path: Path) -> None:
    write_series(tmp_path / "ok", 1)
    archive = tmp_path / "outer.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as outer:
        outer.write(tmp_path / "ok" / "00001.dcm", "ok.dcm")
        # Stored, so inner.zip itself is 512 MiB: reading it whole costs that much memory.
        with (
            outer.open("inner.zip", "w", force_zip64=True) as spool,
            zipfile.ZipFile(spool, "w") as inner,
            inner.open(zipfile.ZipInfo("huge.dcm"), "w", force_zip64=True) as member,
        ):
            _zeros(member, 512 * 1024**2)
    assert archive.stat().st_size < 4 * 1024**2
    rss, report = _import_measured(_home(tmp_path), archive)
    assert rss <= RSS_BOUND, f"peak RSS {rss / 2**20:.0f} MiB\n{report}"
    assert "1 imported" in report
    assert "inner.zip!huge.dcm: archive member declares" in report, report


@pytest.mark.timeout(300)
def test_dicm_and_zeros_member_is_refused_before_it_is_copied(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("small.dcm", "w") as member:
            member.write(bytes(128) + b"DICM")
            _zeros(member, 8 * 1024**2)  # under the object limit: refused by its header, not its size
        with zf.open("big.dcm", "w", force_zip64=True) as member:
            member.write(bytes(128) + b"DICM")
            _zeros(member, 256 * 1024**2)
    rss, report = _import_measured(_home(tmp_path), archive)
    assert rss <= RSS_BOUND, f"peak RSS {rss / 2**20:.0f} MiB\n{report}"
    assert "small.dcm: DICM marker not followed by File Meta Information" in report, report
    assert "big.dcm: archive member declares" in report, report


@pytest.mark.timeout(300)
def test_sparse_file_is_capped_at_the_largest_object(tmp_path: Path) -> None:
    write_series(tmp_path / "in", 1)
    sparse = tmp_path / "in" / "00001.dcm"
    with sparse.open("r+b") as fh:
        fh.truncate(2 * 1024**3)  # a real header, then 2 GB of holes
    rss, report = _import_measured(_home(tmp_path), tmp_path / "in")
    assert rss <= RSS_BOUND, f"peak RSS {rss / 2**20:.0f} MiB\n{report}"
    assert f"larger than the largest object accepted ({MAX_OBJECT} bytes)" in report, report


def test_deflated_data_set_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    pytest.importorskip(
        "viewer.core.ingest", reason="needs the bounded inflation of viewer/core/ingest.py (issue 14, ingest part)"
    )
    import zlib

    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from tests.reliability.corpus import encode, tiny_instance

    ds = tiny_instance(1, study_uid="2.25.71", series_uid="2.25.72")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    head = encode(ds)
    meta_end = 132 + 12 + int.from_bytes(head[140:144], "little")
    plain = bytearray(encode(tiny_instance(1, study_uid="2.25.71", series_uid="2.25.72")))[meta_end:]
    comp = zlib.compressobj(1, zlib.DEFLATED, -15)
    body = comp.compress(bytes(plain))
    # An OB element declaring 1 GiB, really there once inflated: 1 MB on disk.
    body += comp.compress(b"\x09\x00\x10\x00OB\x00\x00" + (1024**3).to_bytes(4, "little"))
    chunk = bytes(1024**2)
    for _ in range(1024):
        body += comp.compress(chunk)
    body += comp.flush()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bomb.dcm").write_bytes(head[:meta_end] + body)
    rss, report = _import_measured(_home(tmp_path), tmp_path / "in")
    assert rss <= RSS_BOUND, f"peak RSS {rss / 2**20:.0f} MiB\n{report}"
    assert "1 failed" in report, report
