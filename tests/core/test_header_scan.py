"""The fast header scan gives pydicom's own IndexEntry, or declines; it never calls a cut file whole."""

from __future__ import annotations

import io
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_charset_files, get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

import viewer.core.header_scan as header_scan
from viewer.core.header_scan import HeaderScan, scan_dataset, scan_file, scan_part10
from viewer.core.ingest import _truncation
from viewer.core.model import IndexEntry, index_entry_from_dataset

pytestmark = pytest.mark.filterwarnings("ignore")  # pydicom warns about the odd values these tests feed it

BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG2000 = "1.2.840.10008.1.2.4.91"


# --- reference: what the store gets from pydicom today ---------------------------------------------


def _reference(data: bytes) -> IndexEntry | None:
    try:
        return index_entry_from_dataset(pydicom.dcmread(io.BytesIO(data)))
    except Exception:
        return None


def _store_truncation(data: bytes) -> str | None:
    """ingest._truncation over the file as the store reads it; None where pydicom cannot read it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.dcm"
        path.write_bytes(data)
        try:
            ds = pydicom.dcmread(path, defer_size=4096)
        except Exception:
            return None
        return _truncation(ds, len(data), data[-8:]) if len(ds) else ""


def _assert_agrees(data: bytes, scan: HeaderScan | None) -> None:
    """A scan that calls the data whole must match pydicom exactly."""
    if scan is None or scan.truncation:
        return
    assert scan.entry == _reference(data)
    assert _store_truncation(data) == ""


# --- test objects --------------------------------------------------------------------------------


def _save(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=transfer_syntax == ImplicitVRLittleEndian)
    return out.getvalue()


def _instance_8x8(transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.StudyDate = ds.SeriesDate = "20240101"
    ds.StudyTime = ds.SeriesTime = "120000"
    ds.AccessionNumber = "A1"
    ds.Modality = "OT"
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.StudyDescription = "Études"
    ds.SeriesDescription = "series"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P1"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.StudyID = "1"
    ds.SeriesNumber = 3
    ds.InstanceNumber = 7
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(64))
    return _save(ds, transfer_syntax)


def _ct_512() -> bytes:
    """CT_small.dcm's header over a 512x512 16-bit image, the size of a real CT slice."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 512
    ds.PixelData = np.arange(512 * 512, dtype=np.int16).tobytes()
    return _save(ds)


def _with_sequences(transfer_syntax: str = ExplicitVRLittleEndian, *, undefined: bool = True) -> bytes:
    """The 8x8 instance with nested (by default undefined-length) sequences before the pixel data."""
    ds = pydicom.dcmread(io.BytesIO(_instance_8x8(transfer_syntax)))
    code = Dataset()
    code.CodeValue = "121071"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Finding"
    text = Dataset()
    text.ValueType = "TEXT"
    text.TextValue = "x" * 33
    text.ConceptNameCodeSequence = Sequence([code])
    container = Dataset()
    container.ValueType = "CONTAINER"
    container.ContentSequence = Sequence([text, Dataset()])
    ds.ContentSequence = Sequence([container, text])
    ds.ReferencedSeriesSequence = Sequence([])
    ds.add_new(0x00091010, "LO", "PRIVATE")
    if undefined:
        for elem in (
            ds["ContentSequence"],
            container["ContentSequence"],
            text["ConceptNameCodeSequence"],
            ds["ReferencedSeriesSequence"],
        ):
            elem.is_undefined_length = True
            for item in elem.value:
                item.is_undefined_length_sequence_item = True
    return _save(ds, transfer_syntax)


_LONG_VRS = ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")


def _element(tag: int, vr: str, value: bytes, *, implicit: bool) -> bytes:
    group, elem = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack("<HHI", group, elem, len(value)) + value
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def _part10(dataset: bytes, transfer_syntax: str) -> bytes:
    ts = transfer_syntax.encode()
    ts += b"\0" * (len(ts) % 2)
    meta = _element(0x00020001, "OB", b"\0\1", implicit=False) + _element(0x00020010, "UI", ts, implicit=False)
    group_length = _element(0x00020000, "UL", struct.pack("<I", len(meta)), implicit=False)
    return bytes(128) + b"DICM" + group_length + meta + dataset


def _bundled_files() -> list[Path]:
    names = {Path(p) for p in get_testdata_files()} | {Path(p) for p in get_charset_files()}
    return sorted(p for p in names if p.is_file())


# --- equivalence over pydicom's own test files -----------------------------------------------------


def test_bundled_files_give_pydicoms_entry() -> None:
    scanned, declined, eligible, eligible_scanned = 0, [], 0, 0
    for path in _bundled_files():
        data = path.read_bytes()
        try:
            scan = scan_part10(data)
        except Exception as exc:  # pragma: no cover - reported with the file's name
            pytest.fail(f"{path.name}: scan raised {exc!r}")
        reference = _reference(data)
        if scan is None:
            declined.append(path.name)
        else:
            scanned += 1
            assert reference is not None, f"{path.name}: pydicom cannot index it, the scan did"
            assert scan.entry == reference, path.name
            ds = pydicom.dcmread(path, stop_before_pixels=False)
            assert scan.has_pixel_data == any(t in ds for t in (0x7FE00010, 0x7FE00008, 0x7FE00009)), path.name
            # Both rules look at the same file the same way.
            assert bool(scan.truncation) == bool(_store_truncation(data)), (path.name, scan.truncation)
        if reference is not None and data[128:132] == b"DICM":
            ts = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.get("TransferSyntaxUID", ""))
            if ts not in ("", BIG_ENDIAN, DEFLATED):
                eligible += 1
                eligible_scanned += scan is not None
    print(f"\nheader scan: {scanned} scanned, {len(declined)} declined", end="; ")
    print(f"little-endian Part 10 files scanned: {eligible_scanned}/{eligible}")
    # The one LE file declined today is SC_rgb_jpeg.dcm, whose data set is implicit VR under a JPEG syntax.
    assert eligible > 100
    assert eligible_scanned >= 0.95 * eligible


def test_charset_files_use_pydicoms_conversion() -> None:
    names = {"chrH31.dcm": "Yamada^Tarou=山田^太郎=やまだ^たろう", "chrX2.dcm": "Wang^XiaoDong=王^小东"}
    for name, patient_name in names.items():
        data = Path(get_charset_files(name)[0]).read_bytes()
        scan = scan_part10(data)
        assert scan is not None
        assert scan.entry.study.patient_name == patient_name == _reference(data).study.patient_name


# --- fast decoding equals pydicom's conversion --------------------------------------------------------


def test_utf8_person_name_groups_decode_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = pydicom.dcmread(io.BytesIO(_instance_8x8()))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.ReferringPhysicianName = "Doe^John=="
    ds.StudyDescription = "Über\\zwei  "
    data = _save(ds)

    def no_slow(*args: object) -> None:
        raise AssertionError("expected the direct decode")

    monkeypatch.setattr(header_scan, "_entry_slow", no_slow)
    scan = scan_part10(data)
    assert scan is not None
    assert scan.entry == _reference(data)
    assert scan.entry.study.patient_name == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert scan.entry.study.referring_physician == "Doe^John"


# Character sets the scan decodes directly, then ones it leaves to pydicom.
_PLAIN_CHARSETS = [None, b"", b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 100 ", b"ISO_IR 192"]
_ODD_CHARSETS = [b"ISO_IR 144", b"ISO 2022 IR 100", b"\\ISO 2022 IR 87", b"ISO 2022 IR 13\\ISO 2022 IR 87"]
_ODD_CHARSETS += [b"GB18030", b"nonsense", b" ISO_IR 100"]
# Text a direct decode must treat exactly as pydicom: padding, separators, whitespace str.strip() knows.
_PLAIN_TEXT = [b"A", b"b", b"7", b" ", b"\0", b"\\", b"=", b"^", b"\t", b"\n", b"-", b"."]
_PLAIN_TEXT += ["é".encode("latin-1"), "é".encode(), "山田".encode(), "\xa0".encode(), "\x85".encode("latin-1")]
_ODD_TEXT = [b"\x1b$B", b"\x1b(B", b"\xe9", b"\xff\xfe", "たろう".encode("iso2022_jp")]
_plain_text = st.lists(st.sampled_from(_PLAIN_TEXT), max_size=8).map(b"".join)
_odd_text = st.lists(st.sampled_from(_PLAIN_TEXT + _ODD_TEXT) | st.binary(max_size=3), max_size=6).map(b"".join)
_plain_uid = st.tuples(
    st.sampled_from([b"", b" "]),
    st.sampled_from([b"1.2.3", b"1.2.840.10008.5.1.4.1.1.88.11", b"1.2\\3.4", b"1.2.840.10008.5.1.4.1.1.104.1"]),
    st.sampled_from([b"", b"\0", b" ", b" \0"]),
).map(b"".join)
_plain_is = st.tuples(
    st.sampled_from([b"", b" ", b"\t"]),
    st.sampled_from([b"", b"+", b"-"]),
    st.integers(0, 999_999_999).map(lambda n: str(n).encode()),
    st.sampled_from([b"", b" ", b"\0"]),
).map(b"".join) | st.sampled_from([b"", b"  "])
_odd_is = st.sampled_from([b"1.0", b"1.5", b"abc", b"1\\2", b"99999999999", b"1e3", b"inf", b"nan", b"1_0", b"\0"])
_plain_us = st.sampled_from([b"\0\2", b"\x00\x01", b"\xff\xff", b""])
_odd_us = st.sampled_from([b"\1", b"\1\2\3\4", b"\1\2\3"])
_WANTED_VRS = {tag: vr for tag, (_, vr) in header_scan._WANTED.items()}
_PLAIN = {"UI": _plain_uid, "IS": _plain_is, "US": _plain_us}
_ODD = {"UI": _odd_text, "IS": _odd_is | _odd_text, "US": _odd_us}


def _vr_name(code: int) -> str:
    return chr(code & 0xFF) + chr(code >> 8)


@st.composite
def _datasets(draw: st.DrawFn) -> tuple[bytes, str]:
    """A data set of the wanted elements; half the examples hold only values the scan decodes itself."""
    implicit = draw(st.booleans())
    odd = draw(st.booleans())
    elements: list[bytes] = []
    charset = draw(st.sampled_from(_PLAIN_CHARSETS + (_ODD_CHARSETS if odd else [])))
    for tag in sorted(_WANTED_VRS):
        vr = _vr_name(_WANTED_VRS[tag])
        if tag == 0x00080005:
            if charset is not None:
                elements.append(_element(tag, "CS", charset, implicit=implicit))
            continue
        if vr != "UI" and not draw(st.integers(0, 5)):
            continue  # absent
        unusual = odd and not draw(st.integers(0, 7))
        value = draw((_ODD if unusual else _PLAIN).get(vr, _odd_text if unusual else _plain_text))
        if not implicit and draw(st.integers(0, 7)) == 0:
            # Written with another VR: UN is read by its dictionary VR, others by the VR as written.
            vr = draw(st.sampled_from(["UN", "LO", "SH", "SS", "UT"] if unusual else ["UN"]))
        elements.append(_element(tag, vr, value, implicit=implicit))
    return b"".join(elements), ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_datasets())
def test_values_decode_as_pydicom_converts_them(case: tuple[bytes, str]) -> None:
    dataset, ts = case
    data = _part10(dataset, ts)
    scan = scan_part10(data)
    reference = _reference(data)
    if scan is None:
        return
    assert reference is not None
    assert scan.entry == reference
    assert scan.truncation == ""
    # The same data set without the file meta, as the Storage SCP receives it.
    again = scan_dataset(memoryview(data), offset=len(data) - len(dataset), transfer_syntax=ts)
    assert again == scan


def test_datetime_conversion_config_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydicom.config, "datetime_conversion", True)
    data = _instance_8x8()
    scan = scan_part10(data)
    assert scan is not None and scan.entry == _reference(data)


# --- the objects the store sees most ------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        _instance_8x8,
        lambda: _instance_8x8(ImplicitVRLittleEndian),
        _ct_512,
        _with_sequences,
        lambda: _with_sequences(ImplicitVRLittleEndian),
        lambda: _with_sequences(undefined=False),
    ],
    ids=["8x8", "8x8-implicit", "ct-512", "sequences", "sequences-implicit", "sequences-defined"],
)
def test_common_objects(make: object, tmp_path: Path) -> None:
    data = make()  # type: ignore[operator]
    scan = scan_part10(data)
    assert scan is not None
    assert scan.entry == _reference(data)
    assert scan.has_pixel_data and scan.truncation == ""
    path = tmp_path / "f.dcm"
    path.write_bytes(data)
    assert scan_file(path) == scan
    assert scan_part10(memoryview(data)) == scan
    assert scan_part10(bytearray(data)) == scan


def test_large_files_are_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(header_scan, "_MAP_ABOVE", 1024)
    data = _ct_512()
    path = tmp_path / "ct.dcm"
    path.write_bytes(data)
    scan = scan_file(path)
    assert scan is not None and scan.entry.instance.rows == 512 and scan.truncation == ""
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: _pixel_value(data) + 1000])
    assert scan_file(cut).truncation == f"(7FE0,0010) needs 524288 bytes but the file ends {524288 - 1000} early"


def test_encapsulated_pixel_data() -> None:
    data = Path(get_testdata_file("JPEG2000.dcm")).read_bytes()
    scan = scan_part10(data)
    assert scan is not None and scan.has_pixel_data and scan.truncation == ""
    assert scan.entry.instance.transfer_syntax == JPEG2000 == _reference(data).instance.transfer_syntax


def test_declined_transfer_syntaxes_and_forms() -> None:
    data = _instance_8x8()
    assert scan_part10(data[128:]) is None  # no preamble
    for ts in (BIG_ENDIAN, DEFLATED, "1.2.840.10008.1.2.4.95", "1.2.3.4", ""):
        assert scan_dataset(data, offset=0, transfer_syntax=ts) is None
    assert scan_part10(Path(get_testdata_file("MR_small_bigendian.dcm")).read_bytes()) is None
    assert scan_part10(Path(get_testdata_file("image_dfl.dcm")).read_bytes()) is None
    # A data set encoded implicitly under an explicit syntax: pydicom guesses, so the scan declines.
    assert scan_part10(Path(get_testdata_file("SC_rgb_jpeg.dcm")).read_bytes()) is None
    missing_uid = _part10(_element(0x00080016, "UI", b"1.2.3\0", implicit=False), ExplicitVRLittleEndian)
    assert scan_part10(missing_uid) is None


@pytest.mark.parametrize(
    ("transfer_syntax", "implicit"),
    [
        ("1.2.840.10008.1.2", True),
        ("1.2.840.10008.1.2.1", False),
        ("1.2.840.10008.1.2.1.98", False),  # encapsulated uncompressed
        ("1.2.840.10008.1.2.4.50", False),  # JPEG baseline
        ("1.2.840.10008.1.2.4.80", False),  # JPEG-LS
        ("1.2.840.10008.1.2.4.90", False),  # JPEG 2000
        ("1.2.840.10008.1.2.4.102.1", False),  # MPEG-4, fragmentable
        ("1.2.840.10008.1.2.4.201", False),  # HTJ2K
        ("1.2.840.10008.1.2.5", False),  # RLE
        (DEFLATED, None),
        (BIG_ENDIAN, None),
        ("1.2.840.10008.1.2.4.95", None),  # JPIP referenced deflate: the data set is deflated
        ("1.2.840.10008.1.2.4.205", None),
        ("1.2.840.10008.1.2.6.1", None),  # MIME encapsulation
        ("1.2.840.10008.1.20", None),  # Papyrus 3 implicit
        ("1.2.840.10008.1.2.1 ", None),
        ("1.2.3", None),
        ("", None),
    ],
)
def test_transfer_syntaxes(transfer_syntax: str, implicit: bool | None) -> None:
    assert header_scan._is_implicit(transfer_syntax) is implicit


def test_vr_sets_match_the_standard() -> None:
    """PS3.5 7.1.2; the scan takes them from pydicom so its reader and the walk always agree."""
    long_vrs = {header_scan._vr_code(vr) for vr in _LONG_VRS}
    assert long_vrs == header_scan._LONG_VRS
    assert len(header_scan._SHORT_VRS) == 21 and not header_scan._SHORT_VRS & long_vrs


def test_tags_out_of_order_are_declined() -> None:
    elements = [
        _element(0x00080018, "UI", b"1.2.4\0", implicit=False),
        _element(0x00080016, "UI", b"1.2.3\0", implicit=False),
        _element(0x0020000D, "UI", b"1.2.5\0", implicit=False),
        _element(0x0020000E, "UI", b"1.2.6\0", implicit=False),
    ]
    assert scan_part10(_part10(b"".join(elements), ExplicitVRLittleEndian)) is None
    in_order = [elements[1], elements[0], *elements[2:]]
    assert scan_part10(_part10(b"".join(in_order), ExplicitVRLittleEndian)) is not None


def _nested_sequences(depth: int, *, defined: bool = False) -> bytes:
    """UIDs, then `depth` levels of undefined-length (or defined-length) sequences and items."""
    content = b""
    for _ in range(depth):
        if defined:
            item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(content)) + content
            content = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, len(item)) + item
            continue
        item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + content + b"\xfe\xff\x0d\xe0" + bytes(4)
        content = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + item + b"\xfe\xff\xdd\xe0" + bytes(4)
    uids = b"".join(
        _element(tag, "UI", b"1.2.%d\0" % n, implicit=False)
        for n, tag in enumerate((0x00080016, 0x00080018, 0x0020000D, 0x0020000E))
    )
    return _part10(uids + content, ExplicitVRLittleEndian)


@pytest.mark.parametrize("defined", [False, True])
def test_nesting_depth_is_bounded(defined: bool) -> None:
    limit = header_scan.MAX_SEQUENCE_DEPTH
    for depth in (10, limit):
        shallow = _nested_sequences(depth, defined=defined)
        scan = scan_part10(shallow)
        assert scan is not None and scan.entry == _reference(shallow) and scan.truncation == ""
    # Deeper is refused outright (finding 4: 1,000 defined-length levels imported, then export never ended).
    for depth in (limit + 1, 1000):
        with pytest.raises(header_scan.NestedTooDeep):
            scan_part10(_nested_sequences(depth, defined=defined))


# --- truncation ----------------------------------------------------------------------------------


def _not_whole(scan: HeaderScan | None) -> bool:
    return scan is None or bool(scan.truncation)


def _pixel_value(data: bytes) -> int:
    """Offset of the (explicit VR OW/OB) pixel data value."""
    return data.rindex(b"\xe0\x7f\x10\x00") + 12


def test_cut_inside_pixel_data() -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    pixels = _pixel_value(data)
    for cut in (pixels, pixels + 1, pixels + 100, pixels + 32767):
        scan = scan_part10(data[:cut])
        assert scan is not None
        assert scan.truncation == f"(7FE0,0010) needs 32768 bytes but the file ends {pixels + 32768 - cut} early"
        assert scan.entry == _reference(data)
    # Cut after the pixel data, inside the trailing padding element.
    assert _not_whole(scan_part10(data[:-1]))
    # Cut inside the header of the pixel data element.
    for cut in (pixels - 5, pixels - 1):
        scan = scan_part10(data[:cut])
        assert scan is not None and scan.truncation.endswith("could not be parsed")


def test_cut_inside_a_header_value() -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    at = data.index(b"CompressedSamples^CT1") + 5
    scan = scan_part10(data[:at])
    assert _not_whole(scan)


def test_cut_inside_encapsulated_pixel_data() -> None:
    data = Path(get_testdata_file("JPEG2000.dcm")).read_bytes()
    pixels = _pixel_value(data)
    for cut in (pixels, pixels + 4, pixels + 8, pixels + 100, len(data) - 8, len(data) - 4, len(data) - 1):
        scan = scan_part10(data[:cut])
        assert scan is not None
        assert scan.truncation == "(7FE0,0010) does not end with its sequence delimiter"


def _cuts(data: bytes, start: int) -> Iterator[tuple[int, bytes]]:
    for cut in range(start, len(data)):
        yield cut, data[:cut]


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_every_cut_of_a_file_with_sequences(transfer_syntax: str) -> None:
    """No cut copy is called whole unless the store's own rule calls it whole too."""
    data = _with_sequences(transfer_syntax)
    sequence_start = data.index(b"\x40\x00\x30\xa7")  # (0040,A730) ContentSequence
    pixel_data_start = data.rindex(b"\xe0\x7f\x10\x00")  # (7FE0,0010), the element after it
    whole = 0
    for cut, part in _cuts(data, 132):
        scan = scan_part10(part)
        if sequence_start < cut < len(data) and cut != pixel_data_start:
            # Inside the sequence or the pixel data element: not a boundary between top-level elements.
            assert _not_whole(scan), cut
            if scan is not None and cut >= pixel_data_start + 12:  # past the pixel data header
                assert scan.has_pixel_data, cut
        if scan is not None and not scan.truncation:
            whole += 1
            _assert_agrees(part, scan)
    assert whole > 10  # cuts at element boundaries before the sequences do look whole


# --- hostile input -------------------------------------------------------------------------------

_SOURCES = {
    "8x8": _instance_8x8(),
    "sequences": _with_sequences(),
    "sequences-implicit": _with_sequences(ImplicitVRLittleEndian),
    "jpeg2000": Path(get_testdata_file("JPEG2000.dcm")).read_bytes(),
}
_mutation = st.tuples(
    st.sampled_from(["set", "insert", "delete", "cut", "length"]),
    st.floats(0, 1, exclude_max=True),
    st.binary(min_size=1, max_size=8),
    st.sampled_from([0, 1, 2, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 12]),
)


def _mutate(data: bytes, mutations: list[tuple[str, float, bytes, int]]) -> bytes:
    out = bytearray(data)
    for op, where, payload, number in mutations:
        pos = 128 + int(where * max(len(out) - 128, 1))
        if op == "set":
            out[pos : pos + len(payload)] = payload
        elif op == "insert":
            out[pos:pos] = payload
        elif op == "delete":
            del out[pos : pos + len(payload)]
        elif op == "cut":
            del out[pos:]
        else:
            out[pos : pos + 4] = number.to_bytes(4, "little")
    return bytes(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_SOURCES)), st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_files_never_raise_and_whole_means_whole(source: str, mutations: list) -> None:
    data = _mutate(_SOURCES[source], mutations)
    _assert_agrees(data, scan_part10(data))
