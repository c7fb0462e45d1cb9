"""Bounded cost for hostile input (finding 4): a deflate bomb, sequences nested 1,000 deep, "DICM + zeros".

The bomb is sent to the application's own SCP process and its peak memory read from /proc.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from tests.reliability.corpus import encode, tiny_instance
from tests.reliability.test_faults import _app_scp
from tests.support.net import free_port
from viewer.core import ingest
from viewer.core.settings import Settings
from viewer.core.store import StudyStore

REPO = Path(__file__).resolve().parents[2]
SC = "1.2.840.10008.5.1.4.1.1.7"


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in (b"OB", b"OW", b"SQ", b"UN"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode()
    return raw + b"\0" if len(raw) % 2 else raw


def _header_elements(sop_instance: str) -> bytes:
    return b"".join(
        (
            _element(0x00080016, b"UI", _uid(SC)),
            _element(0x00080018, b"UI", _uid(sop_instance)),
            _element(0x00100020, b"LO", b"BOMB"),
            _element(0x0020000D, b"UI", _uid(generate_uid())),
            _element(0x0020000E, b"UI", _uid(generate_uid())),
        )
    )


def _deflate_bomb(sop_instance: str, inflated_bytes: int) -> bytes:
    """A Deflated Explicit VR LE data set: UIDs, then an OB value of `inflated_bytes` zeros (~1 MB deflated
    for 1 GiB)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [deflater.compress(_header_elements(sop_instance))]
    out.append(deflater.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, inflated_bytes)))
    zeros = bytes(1 << 24)
    left = inflated_bytes
    while left:
        step = min(left, len(zeros))
        out.append(deflater.compress(zeros[:step]))
        left -= step
    out.append(deflater.flush())
    return b"".join(out)


def _part10(dataset: bytes, sop_instance: str, transfer_syntax: str) -> bytes:
    return ingest.part10_header(SC, sop_instance, transfer_syntax) + dataset


def test_deflate_bomb_is_refused_within_the_limit_in_ingest() -> None:
    uid = generate_uid()
    bomb = _deflate_bomb(uid, 256 << 20)
    assert len(bomb) < 1 << 20
    with pytest.raises(ingest.InflatesTooLarge):
        ingest.check_received(bomb, transfer_syntax=DeflatedExplicitVRLittleEndian, max_bytes=16 << 20)
    with pytest.raises(ingest.InflatesTooLarge):
        ingest.check_part10(_part10(bomb, uid, DeflatedExplicitVRLittleEndian), max_bytes=16 << 20)
    # Within the limit a deflated object is identified by the header scan over the inflated bytes.
    small = _deflate_bomb(uid, 4096)
    checked = ingest.check_received(small, transfer_syntax=DeflatedExplicitVRLittleEndian, max_bytes=16 << 20)
    assert checked.sop_instance_uid == uid and checked.transfer_syntax == DeflatedExplicitVRLittleEndian
    assert checked.has_pixel_data
    # Cut short, it is incomplete rather than identified.
    with pytest.raises(ingest.Incomplete):
        ingest.check_received(small[: len(small) // 2], transfer_syntax=DeflatedExplicitVRLittleEndian)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.network
@pytest.mark.timeout(180)
def test_deflate_bomb_over_the_network_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    """Finding 4: 1 MB of deflated C-STORE cost 2.1 GB; now peak RSS <= max object size + 256 MiB, and A700."""
    from pynetdicom import AE

    home = tmp_path / "home"
    home.mkdir()
    settings = Settings()
    limit = 64 << 20
    settings.local.max_object_bytes = limit
    settings.save(home / "settings.json")
    uid = generate_uid()
    bomb_file = tmp_path / "bomb.dcm"
    bomb_file.write_bytes(_part10(_deflate_bomb(uid, 1 << 30), uid, DeflatedExplicitVRLittleEndian))
    assert bomb_file.stat().st_size < 2 << 20
    port = free_port()
    with _app_scp(home, port) as app:
        ae = AE(ae_title="BOMBER")
        ae.add_requested_context(SC, [DeflatedExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", port, ae_title="LIGHTBOX")
        assert assoc.is_established
        try:
            rsp = assoc.send_c_store(bomb_file)
        finally:
            assoc.release()
        peak = _peak_rss_kib(app.pid) * 1024
    assert rsp is not None and rsp.Status == 0xA700, rsp
    assert "inflates" in str(rsp.get("ErrorComment", ""))
    assert peak <= limit + (256 << 20), f"SCP peak RSS {peak >> 20} MiB"
    store = StudyStore(home / "store")
    assert store.instance(uid) is None
    assert list(store.tmp_dir.iterdir()) == []
    store.close()


def _nested(depth: int, sop_instance: str) -> bytes:
    """A Part 10 file whose data set holds `depth` levels of defined-length sequences."""
    content = b""
    for _ in range(depth):
        item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(content)) + content
        content = _element(0x0040A730, b"SQ", item)
    return _part10(_header_elements(sop_instance) + content, sop_instance, "1.2.840.10008.1.2.1")


def test_sequences_nested_too_deep_are_refused_on_both_paths(tmp_path: Path) -> None:
    uid = generate_uid()
    with pytest.raises(ingest.TooDeep, match="nested deeper than 32"):
        ingest.check_part10(_nested(1000, uid))
    # The pydicom path (what the header scan declines, here a bare data set received in big endian would be
    # the usual case) applies the same limit: a trailing odd element makes the scan decline.
    declined = _nested(ingest.MAX_SEQUENCE_DEPTH + 1, uid) + _element(0x7FE00010, b"OB", b"\x00\x00")[:-2]
    with pytest.raises((ingest.TooDeep, ingest.Incomplete)):
        ingest.check_part10(declined)
    assert ingest.check_part10(_nested(ingest.MAX_SEQUENCE_DEPTH, uid)).sop_instance_uid == uid


def test_pydicom_path_depth_check(tmp_path: Path) -> None:
    """What the scan declines (a big-endian file) is read by pydicom and held to the same depth limit."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRBigEndian

    ds = tiny_instance(1, study_uid=generate_uid(prefix=None), series_uid=generate_uid(prefix=None))
    inner = Dataset()
    for _ in range(ingest.MAX_SEQUENCE_DEPTH + 1):
        outer = Dataset()
        outer.ContentSequence = Sequence([inner])
        inner = outer
    ds.ContentSequence = inner.ContentSequence
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    path = tmp_path / "deep_be.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ingest.TooDeep):
        ingest.check_part10(path.read_bytes())


def test_dicm_followed_by_zeros_is_refused_from_its_first_bytes(tmp_path: Path) -> None:
    zeros = bytes(128) + b"DICM" + bytes(8 << 20)
    assert ingest.head_problem(zeros[:140])
    with pytest.raises(ingest.Refused, match="no file meta"):
        ingest.check_part10(zeros)
    store = StudyStore(tmp_path / "store")
    with pytest.raises(ingest.Refused):
        store.add_bytes(zeros)
    assert store.counts()["instances"] == 0 and list(store.tmp_dir.iterdir()) == []
    store.close()


def test_cli_import_reports_deep_nesting_and_dicm_zeros_as_failed(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "deep.dcm").write_bytes(_nested(1000, generate_uid()))
    (folder / "zeros.dcm").write_bytes(bytes(128) + b"DICM" + bytes(1 << 20))
    (folder / "good.dcm").write_bytes(
        encode(tiny_instance(1, study_uid=generate_uid(prefix=None), series_uid=generate_uid(prefix=None)))
    )
    run = subprocess.run(
        [sys.executable, "-m", "viewer", "--home", str(tmp_path / "home"), "import", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 imported" in run.stdout
    assert "deep.dcm: sequences nested deeper than 32 levels" in run.stdout
    assert "zeros.dcm: DICM marker not followed by File Meta Information" in run.stdout


def _undefined_length_nesting_implicit_vr(depth: int) -> bytes:
    """`depth` levels of undefined-length sequences and items, implicit VR (as a bare data set sends them)."""
    opening = b"\x40\x00\x30\xa7\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return opening * depth + closing * depth


def test_undefined_length_nesting_thousands_deep_is_refused_as_too_deep_not_as_a_crash() -> None:
    """pydicom finds the end of undefined-length sequences by recursion: 3,000 levels exhausted Python's
    stack and the refusal read "RecursionError" (file without preamble) or "cannot be decoded" (C-STORE)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = tiny_instance(1, study_uid=generate_uid(prefix=None), series_uid=generate_uid(prefix=None))
    bare = DicomBytesIO()
    bare.is_little_endian, bare.is_implicit_VR = True, True
    write_dataset(bare, ds)
    hostile = bare.getvalue() + _undefined_length_nesting_implicit_vr(3000)
    with pytest.raises(ingest.TooDeep, match="nested deeper than 32"):
        ingest.check_part10(hostile)
    with pytest.raises(ingest.TooDeep, match="nested deeper than 32"):
        ingest.check_received(
            hostile,
            transfer_syntax="1.2.840.10008.1.2",
            affected_sop_class=ds.SOPClassUID,
            affected_sop_instance=ds.SOPInstanceUID,
            source_ae="HOSTILE",
            max_bytes=None,
        )
