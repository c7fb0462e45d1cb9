"""The ingest room: encoded bytes (or a file) in, a checked and identified index entry out, nothing written.

Every way an object enters the store goes through here: the Storage SCP and C-GET (`check_received`,
`check_received_file`), import and the store's own `add_*` (`check_part10`, `check_file`). What is
refused is a `Refused` subclass whose message is meant for the user (and short enough for a DIMSE Error
Comment once cut to 64 characters); `viewer.net.receive` maps them to C-STORE statuses, the importer to
its report. The store then only stores.

Cost is bounded whatever the input: the fast header scan walks top-level elements in place; sequences
nested deeper than `MAX_SEQUENCE_DEPTH` are refused; a Deflated Explicit VR Little Endian data set is
inflated in steps with a limit on the inflated size (finding 4: 1 MB of deflated zeros is a gigabyte);
a "DICM" marker followed by no file meta is refused from its first bytes (`head_problem`), before
anything is copied or handed to pydicom.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import UID

from viewer.core.errors import StoreError
from viewer.core.header_scan import (
    MAX_SEQUENCE_DEPTH,
    Buffer,
    HeaderScan,
    NestedTooDeep,
    part10_meta,
    scan_dataset,
    scan_file,
    scan_part10,
)
from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from viewer.core.model import IndexEntry, NotIndexable, index_entry_from_dataset
from viewer.core.uids import uid_problem

log = logging.getLogger(__name__)

DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
# What an object may be when nobody configured a limit (LocalNode.max_object_bytes has the same default).
DEFAULT_MAX_OBJECT_BYTES = 4 * 1024**3
_DEFER_BYTES = 4096
_INFLATE_STEP = 1 << 20
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SEQUENCE_DELIMITERS = (b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xff\xfe\xe0\xdd\x00\x00\x00\x00")

__all__ = [
    "MAX_SEQUENCE_DEPTH",
    "Checked",
    "Incomplete",
    "InflatesTooLarge",
    "InvalidUid",
    "NotDicom",
    "PatientConflict",
    "Refused",
    "TooDeep",
    "TooLarge",
    "UidMismatch",
    "Unreadable",
    "check_file",
    "check_part10",
    "check_received",
    "check_received_file",
    "head_problem",
    "part10_header",
]


# ---------------------------------------------------------------------------------------------- refusals
class Refused(StoreError):
    """An object the store will not take; `str()` says why, for the user."""


class NotDicom(Refused):
    """The bytes are not a DICOM object at all (skipped by import, not failed)."""


class Unreadable(Refused):
    """DICOM, but its header cannot be decoded or lacks what the index needs."""


class Incomplete(Refused):
    """The object is cut short (or is a shorter copy of the stored one)."""


class InvalidUid(Refused):
    """A UID that PS3.5 §9.1 forbids."""


class UidMismatch(Refused):
    """The data set's SOP Class / Instance UID is not the one the C-STORE request named."""

    def __init__(self, message: str, *, sop_class: bool) -> None:
        super().__init__(message)
        self.sop_class = sop_class


class TooLarge(Refused):
    """Larger than this workstation accepts."""


class InflatesTooLarge(TooLarge):
    """A deflated data set whose inflated size passes the limit (a decompression bomb)."""


class TooDeep(Refused):
    """Sequences nested deeper than `MAX_SEQUENCE_DEPTH`."""


class PatientConflict(Refused):
    """The instance names another patient than its study's stored row (raised by the store, which holds
    the rows; it is an ingest refusal all the same)."""


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Checked:
    """A checked object: what the store needs to write and index it.

    `chunks` are the bytes to store, in order; None means "the file or bytes given, unchanged" (the usual
    case; a file without preamble or file meta is rewritten as Part 10 and then comes back in `chunks`).
    """

    entry: IndexEntry
    sha256: str
    size: int
    transfer_syntax: str
    has_pixel_data: bool
    chunks: tuple[bytes | bytearray | memoryview, ...] | None = None

    @property
    def sop_instance_uid(self) -> str:
        return self.entry.instance.sop_instance_uid


# ---------------------------------------------------------------------------------------------- cheap first looks
def head_problem(head: bytes) -> str:
    """Why the first bytes of a file cannot start a usable DICOM object ('' when they can).

    Cheap enough for discovery: a "DICM" marker must be followed by a group 0002 file meta element, and a
    data set must not start with zeros (pydicom would read a run of zero-length (0000,0000) elements at
    ~0.45 s/MiB before giving up).
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        if len(head) >= 140 and head[132:134] != b"\x02\x00":
            return "DICM marker but no file meta information after it (not a usable DICOM file)"
        return ""
    if len(head) >= 8 and head[:8] == bytes(8):
        return "no DICOM header (the file starts with zeros)"
    return ""


# ---------------------------------------------------------------------------------------------- entry points
def check_part10(data: bytes | bytearray, *, max_bytes: int | None = None) -> Checked:
    """A whole file in memory: Part 10, or a bare data set (old CDs, raw dumps) that is rewritten as one."""
    _check_size(len(data), max_bytes)
    problem = head_problem(bytes(data[:140]))
    if problem:
        raise NotDicom(problem) if data[128:132] != b"DICM" else Unreadable(problem)
    scan = _scan(scan_part10, data)
    if scan is not None:
        return _from_scan(scan, hashlib.sha256(data).hexdigest(), len(data))
    deflated = _deflated_part10(data, max_bytes)
    if deflated is not None:
        return _from_scan_or_pydicom(deflated, data, hashlib.sha256(data).hexdigest(), len(data))
    return _pydicom_checked(lambda: DicomBytesIO(bytes(data)), data, len(data), None)


def check_file(path: Path | str, *, sha256: str, size: int, max_bytes: int | None = None) -> Checked:
    """A file already on disk (a large import copied into the store's temp folder), hashed by the caller."""
    _check_size(size, max_bytes)
    with open(path, "rb") as fh:
        head = fh.read(140)
    problem = head_problem(head)
    if problem:
        raise NotDicom(problem) if head[128:132] != b"DICM" else Unreadable(problem)
    scan = _scan(scan_file, path)
    if scan is not None:
        return _from_scan(scan, sha256, size)
    if _names_deflated(head, path):
        data = Path(path).read_bytes()  # a deflated file is read whole: its data set has to be inflated anyway
        deflated = _deflated_part10(data, max_bytes)
        if deflated is not None:
            return _from_scan_or_pydicom(deflated, data, sha256, size)
    return _pydicom_checked(lambda: open(path, "rb"), None, size, sha256, path=Path(path))


def check_received(
    dataset: bytes,
    *,
    transfer_syntax: str,
    affected_sop_class: str = "",
    affected_sop_instance: str = "",
    source_ae: str = "",
    max_bytes: int | None = None,
) -> Checked:
    """A data set received over the network (C-STORE), in `transfer_syntax`: checked against the request's
    UIDs and given the file meta it is stored with (`chunks` is that header + the data set as received)."""
    _check_size(len(dataset), max_bytes)
    if transfer_syntax == DEFLATED:
        inflated = _inflate(memoryview(dataset), _limit(max_bytes))
        scan = _scan(scan_dataset, inflated, offset=0, transfer_syntax=EXPLICIT_VR_LE)
        if scan is None:
            ds = _read_bare(inflated, implicit=False, little=True)
            scan = _scan_from_pydicom(ds, len(inflated), bytes(inflated[-8:]), DEFLATED)
        else:
            scan = _with_syntax(scan, DEFLATED)
        del inflated
    else:
        scan = _scan(scan_dataset, dataset, offset=0, transfer_syntax=transfer_syntax)
        if scan is None:
            syntax = UID(transfer_syntax)
            known = syntax.is_transfer_syntax
            ds = _read_bare(
                dataset,
                implicit=syntax.is_implicit_VR if known else True,
                little=syntax.is_little_endian if known else True,
            )
            scan = _scan_from_pydicom(ds, len(dataset), dataset[-8:], transfer_syntax)
    checked = _from_scan(scan, "", 0)
    _check_affected(checked, affected_sop_class, affected_sop_instance)
    header = part10_header(checked.entry.instance.sop_class_uid, checked.sop_instance_uid, transfer_syntax, source_ae)
    digest = hashlib.sha256(header)
    digest.update(dataset)
    return replace(checked, sha256=digest.hexdigest(), size=len(header) + len(dataset), chunks=(header, dataset))


def check_received_file(
    path: Path | str,
    *,
    sha256: str,
    size: int,
    affected_sop_class: str = "",
    affected_sop_instance: str = "",
    max_bytes: int | None = None,
) -> Checked:
    """A large received object already written whole (header from `part10_header` + data set) to `path`."""
    checked = check_file(path, sha256=sha256, size=size, max_bytes=max_bytes)
    if checked.chunks is not None:
        raise Unreadable("received data set cannot be stored as it is")
    _check_affected(checked, affected_sop_class, affected_sop_instance)
    return checked


def request_uid_problem(sop_class: str, sop_instance: str) -> str:
    """Why a C-STORE request's Affected SOP Class / Instance UIDs cannot name a stored file ('' if they can)."""
    return uid_problem(sop_class, "Affected SOP Class UID") or uid_problem(sop_instance, "Affected SOP Instance UID")


# ---------------------------------------------------------------------------------------------- checks
def _limit(max_bytes: int | None) -> int:
    return max_bytes if max_bytes else DEFAULT_MAX_OBJECT_BYTES


def _check_size(size: int, max_bytes: int | None) -> None:
    if size > _limit(max_bytes):
        raise TooLarge("object larger than this workstation accepts")


def _scan(scanner: Callable[..., HeaderScan | None], *args: object, **kwargs: object) -> HeaderScan | None:
    try:
        return scanner(*args, **kwargs)
    except NestedTooDeep as exc:
        raise TooDeep(str(exc)) from None


def check_entry(entry: IndexEntry) -> None:
    """Refuse an entry whose UIDs are missing or not UIDs (PS3.5 §9.1)."""
    for name, value in (
        ("SOP Instance UID", entry.instance.sop_instance_uid),
        ("SOP Class UID", entry.instance.sop_class_uid),
        ("Series Instance UID", entry.series.series_uid),
        ("Study Instance UID", entry.study.study_uid),
    ):
        if not value:
            raise Unreadable(f"missing {name}")
        problem = uid_problem(value, name)
        if problem:
            raise InvalidUid(problem)


def _from_scan(scan: HeaderScan, sha256: str, size: int) -> Checked:
    if scan.truncation:
        raise Incomplete(f"file is incomplete: {scan.truncation}")
    check_entry(scan.entry)
    return Checked(scan.entry, sha256, size, scan.entry.instance.transfer_syntax, scan.has_pixel_data)


def _check_affected(checked: Checked, affected_class: str, affected_instance: str) -> None:
    inst = checked.entry.instance
    if affected_class and inst.sop_class_uid != affected_class:
        raise UidMismatch("SOP Class UID differs from the request", sop_class=True)
    if affected_instance and inst.sop_instance_uid != affected_instance:
        raise UidMismatch("SOP Instance UID differs from the request", sop_class=False)


def _with_syntax(scan: HeaderScan, transfer_syntax: str) -> HeaderScan:
    instance = replace(scan.entry.instance, transfer_syntax=transfer_syntax)
    return replace(scan, entry=replace(scan.entry, instance=instance))


# ---------------------------------------------------------------------------------------------- deflate
def _inflate(data: Buffer, limit: int) -> bytearray:
    """Inflate a deflated data set (PS3.5 A.5: raw deflate, no zlib header) in steps, refusing as soon as the
    output would pass `limit`: memory stays within the limit whatever the compression ratio."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    pending: Buffer = data
    try:
        while True:
            piece = inflater.decompress(pending, _INFLATE_STEP)
            out += piece
            if len(out) > limit:
                raise InflatesTooLarge(f"deflated data set inflates beyond {limit} bytes")
            pending = inflater.unconsumed_tail
            if inflater.eof or (not piece and not pending):
                break
    except zlib.error as exc:
        raise Unreadable(f"deflated data set cannot be inflated: {exc}") from None
    if not inflater.eof:
        raise Incomplete("deflated data set ends before its end marker")
    return out


def _names_deflated(head: bytes, path: Path | str) -> bool:
    with open(path, "rb") as fh:
        start = fh.read(4096)
    return DEFLATED.encode() in start[:4096] and head[128:132] == b"DICM"


@dataclass(frozen=True)
class _Inflated:
    data: bytearray
    transfer_syntax: str


def _deflated_part10(data: Buffer, max_bytes: int | None) -> _Inflated | None:
    """The inflated data set of a Deflated Explicit VR LE Part 10 file (None when it is not one)."""
    meta = part10_meta(data)
    if meta is None:
        if len(data) >= 132 and data[128:132] == b"DICM" and DEFLATED.encode() in bytes(data[132:4096]):
            # pydicom would inflate it whole, without a limit: refuse instead of guessing at the meta.
            raise Unreadable("deflated object with a file meta this workstation cannot read")
        return None
    transfer_syntax, offset = meta
    if transfer_syntax != DEFLATED:
        return None
    return _Inflated(_inflate(memoryview(data)[offset:], _limit(max_bytes)), DEFLATED)


def _from_scan_or_pydicom(inflated: _Inflated, data: Buffer, sha256: str, size: int) -> Checked:
    scan = _scan(scan_dataset, inflated.data, offset=0, transfer_syntax=EXPLICIT_VR_LE)
    if scan is None:
        ds = _read_bare(inflated.data, implicit=False, little=True)
        scan = _scan_from_pydicom(ds, len(inflated.data), bytes(inflated.data[-8:]), DEFLATED)
    else:
        scan = _with_syntax(scan, DEFLATED)
    return _from_scan(scan, sha256, size)


# ---------------------------------------------------------------------------------------------- pydicom path
def _read_bare(data: Buffer, *, implicit: bool, little: bool) -> Dataset:
    """A bare data set (no meta) read by pydicom, large values deferred."""
    try:
        return read_dataset(io.BytesIO(data), implicit, little, defer_size=_DEFER_BYTES)
    except RecursionError:
        # pydicom parses undefined-length sequences recursively to find their end: only nesting gets here.
        raise _too_deep() from None
    except Exception as exc:
        log.info("received a data set that cannot be decoded: %s", type(exc).__name__)
        raise Unreadable("data set cannot be decoded") from None


def _scan_from_pydicom(ds: Dataset, size: int, tail: bytes, transfer_syntax: str) -> HeaderScan:
    if not len(ds):
        raise Unreadable("data set cannot be decoded")
    truncation = _truncation(ds, size, tail)
    _check_depth(ds)
    entry = _index(ds, True, transfer_syntax)
    return HeaderScan(entry=entry, has_pixel_data=any(tag in ds for tag in _PIXEL_TAGS), truncation=truncation)


def _pydicom_checked(
    opener: Callable[[], BinaryIO], data: Buffer | None, size: int, sha256: str | None, *, path: Path | None = None
) -> Checked:
    """What the header scan declined (big endian, odd encodings, no preamble): pydicom reads it."""
    with opener() as fh:
        head = fh.read(132)
        has_preamble = head[128:132] == b"DICM"
        fh.seek(max(size - 8, 0))
        tail = fh.read(8)
        fh.seek(0)
        try:
            # Large values are deferred (seeked over, not read) so the whole element structure is walked
            # cheaply; that is what lets a file cut short inside its pixel data be told from a whole one.
            ds = pydicom.dcmread(fh, force=not has_preamble, defer_size=_DEFER_BYTES)
        except InvalidDicomError as exc:
            raise NotDicom(f"not a DICOM file ({exc})") from exc
        except RecursionError:
            raise _too_deep() from None  # as in `_read_bare`
        except Exception as exc:
            raise (Unreadable if has_preamble else NotDicom)(
                f"unreadable DICOM header: {type(exc).__name__}: {exc}"
            ) from exc
        if not has_preamble and len(ds) == 0:
            raise NotDicom("not a DICOM file")
        truncation = _truncation(ds, size, tail) if len(ds) else ""
        if truncation and (has_preamble or len(ds) > 3):
            raise Incomplete(f"file is incomplete: {truncation}")
        _check_depth(ds)
        entry = _index(ds, has_preamble)
        pixels = any(tag in ds for tag in _PIXEL_TAGS)
        if has_preamble and "TransferSyntaxUID" in ds.file_meta:
            if sha256 is None:
                assert data is not None
                sha256 = hashlib.sha256(data).hexdigest()
            return Checked(entry, sha256, size, entry.instance.transfer_syntax, pixels)
        # Preamble-less or meta-less files (old CDs, raw dumps) are rewritten as proper Part 10 files.
        fh.seek(0)
        try:
            full = pydicom.dcmread(fh, force=True)
            ensure_meta(full)
            buffer = DicomBytesIO()
            dcmwrite(buffer, full, enforce_file_format=True)
        except Exception as exc:
            raise Unreadable(f"cannot rewrite as a DICOM file: {type(exc).__name__}: {exc}") from exc
    normalised = buffer.getvalue()
    entry = _index(pydicom.dcmread(DicomBytesIO(normalised), stop_before_pixels=True), True)
    transfer_syntax = entry.instance.transfer_syntax
    return Checked(
        entry, hashlib.sha256(normalised).hexdigest(), len(normalised), transfer_syntax, pixels, (normalised,)
    )


def _index(ds: Dataset, has_preamble: bool, transfer_syntax: str = "") -> IndexEntry:
    try:
        entry = index_entry_from_dataset(ds, transfer_syntax)
    except NotIndexable as exc:
        kind = Unreadable if has_preamble or len(ds) > 3 else NotDicom
        raise kind(str(exc)) from exc
    except Exception as exc:
        raise Unreadable(f"unreadable attribute: {type(exc).__name__}: {exc}") from exc
    check_entry(entry)
    return entry


def _too_deep() -> TooDeep:
    return TooDeep(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")


def _check_depth(ds: Dataset, depth: int = 1) -> None:
    """Refuse sequences nested deeper than MAX_SEQUENCE_DEPTH (the header scan's rule, for what pydicom read).

    Only sequence elements are converted, level by level; it stops at the limit, so a hostile object costs
    at most MAX_SEQUENCE_DEPTH levels of parsing here.
    """
    for elem in list(ds._dict.values()):
        vr = getattr(elem, "VR", None)
        if vr not in ("SQ", None, "UN"):
            continue
        if vr != "SQ":
            try:
                if dictionary_VR(elem.tag) != "SQ" and getattr(elem, "length", 0) != _UNDEFINED_LENGTH:
                    continue
            except KeyError:
                if getattr(elem, "length", 0) != _UNDEFINED_LENGTH:
                    continue
        try:
            value = ds[elem.tag].value
        except Exception as exc:
            raise Unreadable(f"unreadable sequence {elem.tag}: {type(exc).__name__}") from None
        if not isinstance(value, Sequence) or not len(value):
            continue
        if depth > MAX_SEQUENCE_DEPTH:
            raise _too_deep()
        for item in value:
            _check_depth(item, depth + 1)


def _truncation(ds: Dataset, file_size: int, tail: bytes) -> str:
    """Why a parsed file looks cut short ('' when it looks whole).

    pydicom reads a cut file quietly: a value cut short is returned short, an element header cut in half
    ends the dataset, an undefined-length item runs to the end of the file. So the raw elements' offsets
    are checked against the file's size, and a last undefined-length element against its delimiter
    (`tail`: the file's last 8 bytes). (Warnings are not captured: `warnings.catch_warnings` is not
    thread-safe, and ingest runs on several threads.)
    """
    for elem in ds._dict.values():  # raw, possibly deferred elements: never converted here
        value_tell = getattr(elem, "value_tell", None)
        length = getattr(elem, "length", _UNDEFINED_LENGTH)
        if value_tell is not None and length != _UNDEFINED_LENGTH and value_tell + length > file_size:
            return f"{elem.tag} needs {length} bytes but the file ends {value_tell + length - file_size} early"
    # Insertion order is file order (max() over tags costs more than the whole check).
    last = next(reversed(ds._dict.values())) if ds._dict else None
    last_tell, last_length = getattr(last, "value_tell", None), getattr(last, "length", _UNDEFINED_LENGTH)
    if last_tell is None:
        return ""
    if last_length != _UNDEFINED_LENGTH:
        if last_tell + last_length < file_size:
            return f"{file_size - last_tell - last_length} bytes after {last.tag} could not be parsed"
        return ""
    # An undefined-length last element (encapsulated pixel data, a sequence) must end with its delimiter.
    if bytes(tail) not in _SEQUENCE_DELIMITERS:
        return f"{last.tag} does not end with its sequence delimiter"
    return ""


def is_cut_copy(stored: Path | str, new: Path | str) -> bool:
    """Whether `new` holds a prefix of the data set stored in `stored` (a copy cut short, at an element
    boundary, which looks whole on its own: finding 3). Compared after each file's meta group, which the
    sender or this workstation may have written differently."""
    try:
        with open(stored, "rb") as a, open(new, "rb") as b:
            old_data, new_data = a.read(), b.read()
    except OSError:
        return False
    old_meta, new_meta = part10_meta(old_data), part10_meta(new_data)
    old_set = old_data[old_meta[1] :] if old_meta else old_data
    new_set = new_data[new_meta[1] :] if new_meta else new_data
    return len(new_set) < len(old_set) and old_set.startswith(new_set)


# ---------------------------------------------------------------------------------------------- file meta
def ensure_meta(ds: Dataset) -> None:
    """Give a dataset read without a file meta (or with a partial one) the meta a Part 10 file needs."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        implicit = getattr(ds, "is_implicit_VR", None)
        if implicit is None:
            implicit = getattr(ds, "original_encoding", (True, True))[0]
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit in (True, None) else ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.setdefault("ImplementationClassUID", IMPLEMENTATION_CLASS_UID)
    meta.setdefault("ImplementationVersionName", IMPLEMENTATION_VERSION_NAME)


def _meta_element(group_element: int, vr: bytes, value: bytes) -> bytes:
    tag = struct.pack("<HH", group_element >> 16, group_element & 0xFFFF)
    if vr == b"OB":
        return tag + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _uid_bytes(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _text_bytes(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    return raw + b" " if len(raw) % 2 else raw


def part10_header(sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str = "") -> bytes:
    """Preamble, DICM prefix and file meta: what goes before a received data set in its stored file."""
    return b"\x00" * 128 + b"DICM" + encode_file_meta(sop_class, sop_instance, transfer_syntax, source_ae)


def encode_file_meta(sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str = "") -> bytes:
    """The Part 10 file meta group (explicit VR little endian) for a received data set.

    Encoded directly rather than through pydicom's writer, which costs about as much as the rest of a
    small instance's bookkeeping; the bytes are the same (a test compares them). The UIDs were checked by
    the caller.
    """
    body = b"".join(
        (
            _meta_element(0x00020001, b"OB", b"\x00\x01"),
            _meta_element(0x00020002, b"UI", _uid_bytes(sop_class)),
            _meta_element(0x00020003, b"UI", _uid_bytes(sop_instance)),
            _meta_element(0x00020010, b"UI", _uid_bytes(transfer_syntax)),
            _meta_element(0x00020012, b"UI", _uid_bytes(IMPLEMENTATION_CLASS_UID)),
            _meta_element(0x00020013, b"SH", _text_bytes(IMPLEMENTATION_VERSION_NAME)),
            _meta_element(0x00020016, b"AE", _text_bytes(source_ae[:16])) if source_ae else b"",
        )
    )
    return _meta_element(0x00020000, b"UL", struct.pack("<I", len(body))) + body
