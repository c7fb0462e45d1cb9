"""A fast top-level header scan that yields the same `IndexEntry` as pydicom, or declines.

Import and the Storage SCP need only ~25 attributes of each instance plus a check that the encoded data
set is whole. `pydicom.dcmread` + `index_entry_from_dataset` builds and converts every element to get
there; this module walks the encoded elements with `struct.unpack_from` over the bytes already in memory,
copies out the wanted values only, and decodes those directly.

It handles little-endian data sets that are not deflated (implicit VR, explicit VR and the encapsulated
transfer syntaxes, whose headers are explicit VR LE) and *declines* (returns None) whenever the bytes
are anything pydicom might read differently from a plain walk: out-of-order or duplicate tags, unknown
or switched VRs, stray delimiters, sequences with odd items, transfer syntaxes it does not know, and so
on. The caller then falls back to pydicom. Values whose conversion is not a plain decode (character
sets other than none / ISO_IR 6 / ISO_IR 100 / ISO_IR 192, escape sequences, odd IS values, unexpected
VRs) are converted by pydicom itself from the raw bytes, so the entry is always pydicom's.

`truncation` follows `viewer.core.ingest._truncation`: a value running past the end of the data, bytes
after the last element that cannot form an element, or an undefined-length last element that does not
end with its sequence delimiter. It is stricter in one place: a data set cut inside an undefined-length
sequence is reported (pydicom raises on those instead).

Measured on the shared 2-core development VM (Python 3.11, pydicom 3.0.2; best of 15 runs, data already
in memory; dcmread + index_entry_from_dataset reads from a BytesIO):

    file                                     scan_part10    dcmread + index_entry_from_dataset
    8x8 instance, explicit or implicit VR       ~48 us         ~800 us
    MR_small.dcm (9.8 KB)                       ~59 us         ~830 us
    CT_small.dcm (39 KB, 258 elements)         ~125 us        ~1280 us
    CT_small header over 512x512x16 bit        ~130 us        ~1280 us
    JPEG2000.dcm (sequences, encapsulated)     ~105 us        ~1220 us

The walk costs ~0.35 us per top-level element; building the four frozen model records is ~10 us of
the rest, as it is on the pydicom path.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import config as _config
from pydicom import hooks as _hooks
from pydicom import uid as _uid
from pydicom.datadict import DicomDictionary, dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

from viewer.core.model import (
    IndexEntry,
    Instance,
    Series,
    Study,
    document_kind,
    index_entry_from_dataset,
)

Buffer = bytes | bytearray | memoryview | mmap.mmap


@dataclass(frozen=True)
class HeaderScan:
    """What the index needs from one encoded instance."""

    entry: IndexEntry
    has_pixel_data: bool  # (7FE0,0010), (7FE0,0008) or (7FE0,0009) present at top level
    truncation: str  # "" when the encoded data set looks whole, else a short reason


_IMPLICIT_VR_LE = "1.2.840.10008.1.2"

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_ITEM_BYTES = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER_BYTES = b"\xfe\xff\xdd\xe0"
# Sequences nested deeper than this are refused (`NestedTooDeep`), not declined: pydicom would read them,
# and every later recursive walk (export, de-identification, the tag browser) would pay for them. Real
# objects stay far below: enhanced multi-frame functional groups nest 3-4 levels, RT structure sets 4,
# SR content trees rarely 10. 32 leaves room for deep SR trees while keeping pydicom's recursive readers
# and writers (several Python frames per level) far from the interpreter's recursion limit.
MAX_SEQUENCE_DEPTH = 32
# A sequence value shorter than this cannot hold MAX_SEQUENCE_DEPTH + 1 levels (each level costs an element
# header and an item header, 16 bytes at least), so top-level sequences below it are skipped unwalked.
_DEEP_BYTES = 16 * (MAX_SEQUENCE_DEPTH + 1)
_MAP_ABOVE = 1 << 20  # scan_file maps files from this size on
# A wanted value longer than this is not a plausible header value; pydicom is left to make sense of it.
_MAX_WANTED_LENGTH = 65536

_EXPLICIT_HEADER = struct.Struct("<HHHH")  # group, element, VR as a little-endian int, 16-bit length
_IMPLICIT_HEADER = struct.Struct("<HHI")
_U32 = struct.Struct("<I")


def _vr_code(vr: str) -> int:
    return ord(vr[0]) | ord(vr[1]) << 8


# pydicom's own sets (PS3.5 7.1.2): OB, OD, OF, OL, OV, OW, SQ, SV, UC, UN, UR, UT, UV have two reserved
# bytes and a 32-bit length in explicit VR, the other standard VRs a 16-bit length.
_LONG_VRS = frozenset(_vr_code(vr) for vr in EXPLICIT_VR_LENGTH_32)
_SHORT_VRS = frozenset(_vr_code(vr) for vr in STANDARD_VR - EXPLICIT_VR_LENGTH_32)
# Explicit VR header length by VR code (0: a VR pydicom does not read as written); a table lookup is
# the cheapest test in the hot loop.
_HEADER_LENGTHS = bytes(12 if code in _LONG_VRS else 8 if code in _SHORT_VRS else 0 for code in range(65536))
_SQ = _vr_code("SQ")
_CS = _vr_code("CS")
_UN = _vr_code("UN")

# How each wanted value is converted (see `_fast_values`); the numeric kinds come last.
_CHARSET, _UI, _STR, _TXT, _PN, _DS, _IS, _US = range(8)

_WANTED: dict[int, tuple[int, int]] = {
    0x00080005: (_CHARSET, _vr_code("CS")),  # SpecificCharacterSet
    0x00080016: (_UI, _vr_code("UI")),  # SOPClassUID
    0x00080018: (_UI, _vr_code("UI")),  # SOPInstanceUID
    0x00080020: (_STR, _vr_code("DA")),  # StudyDate
    0x00080021: (_STR, _vr_code("DA")),  # SeriesDate
    0x00080030: (_STR, _vr_code("TM")),  # StudyTime
    0x00080031: (_STR, _vr_code("TM")),  # SeriesTime
    0x00080050: (_TXT, _vr_code("SH")),  # AccessionNumber
    0x00080060: (_STR, _vr_code("CS")),  # Modality
    0x00080090: (_PN, _vr_code("PN")),  # ReferringPhysicianName
    0x00081030: (_TXT, _vr_code("LO")),  # StudyDescription
    0x0008103E: (_TXT, _vr_code("LO")),  # SeriesDescription
    0x00100010: (_PN, _vr_code("PN")),  # PatientName
    0x00100020: (_TXT, _vr_code("LO")),  # PatientID
    0x00100030: (_STR, _vr_code("DA")),  # PatientBirthDate
    0x00100040: (_STR, _vr_code("CS")),  # PatientSex
    0x00180015: (_STR, _vr_code("CS")),  # BodyPartExamined
    0x0020000D: (_UI, _vr_code("UI")),  # StudyInstanceUID
    0x0020000E: (_UI, _vr_code("UI")),  # SeriesInstanceUID
    0x00200010: (_TXT, _vr_code("SH")),  # StudyID
    0x00200011: (_IS, _vr_code("IS")),  # SeriesNumber
    0x00200013: (_IS, _vr_code("IS")),  # InstanceNumber
    0x00200032: (_DS, _vr_code("DS")),  # ImagePositionPatient (stacks are sorted by it before loading)
    0x00200037: (_DS, _vr_code("DS")),  # ImageOrientationPatient
    0x00280008: (_IS, _vr_code("IS")),  # NumberOfFrames
    0x00280010: (_US, _vr_code("US")),  # Rows
    0x00280011: (_US, _vr_code("US")),  # Columns
}
_PIXEL_DATA_TAGS = frozenset((0x7FE00008, 0x7FE00009, 0x7FE00010))
# Public tags whose dictionary VR is SQ: how an implicit VR (or explicit UN) sequence is recognised.
_SQ_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")
# One membership test per element during the walk covers both.
_NOTED = frozenset(_WANTED) | _PIXEL_DATA_TAGS

# Charset values (padding stripped) whose text decodes with one plain codec, as pydicom maps them.
_PLAIN_CHARSETS = {b"": "latin-1", b"ISO_IR 6": "latin-1", b"ISO_IR 100": "latin-1", b"ISO_IR 192": "utf-8"}
# What IS values `int()` takes exactly as pydicom's IS does; anything else goes through pydicom.
_PLAIN_IS = re.compile(r"[+-]?[0-9]{1,9}")


class NestedTooDeep(ValueError):
    """Sequences nested deeper than `MAX_SEQUENCE_DEPTH`: refused, whatever else the data set holds."""


class _Decline(Exception):
    """Something pydicom may read differently from a plain walk: leave the file to pydicom."""


class _Cut(Exception):
    """The data ends inside an undefined-length value."""


class _Slow(Exception):
    """A wanted value whose conversion is not a plain decode: let pydicom convert it."""


def _tag_str(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


# --- transfer syntaxes -------------------------------------------------------------------------------

_TS_KINDS: dict[str, bool | None] = {}


def _is_implicit(transfer_syntax: str) -> bool | None:
    """True for implicit VR LE, False for a data set in explicit VR LE, None for anything declined."""
    try:
        return _TS_KINDS[transfer_syntax]
    except KeyError:
        pass
    kind: bool | None = None
    if transfer_syntax == _IMPLICIT_VR_LE:
        kind = True
    elif transfer_syntax in _uid.PrivateTransferSyntaxes:
        # pydicom reads these with their registered encoding; not worth mirroring.
        return None
    else:
        ts = _uid.UID(transfer_syntax, validation_mode=_config.IGNORE)
        if (
            ts.is_transfer_syntax
            and ts == transfer_syntax  # no padding: the caller's string goes into the entry as it is
            and transfer_syntax.startswith("1.2.840.10008.1.2.")
            and ts.is_little_endian
            and not ts.is_implicit_VR
            # The JPIP *Deflate syntaxes deflate the data set too; MIME / XML encodings are no data set.
            and not (
                ts.is_deflated or ts.keyword.endswith("Deflate") or transfer_syntax.startswith("1.2.840.10008.1.2.6.")
            )
        ):
            kind = False
    if len(_TS_KINDS) < 256:  # bounded: the UID comes from the peer
        _TS_KINDS[transfer_syntax] = kind
    return kind


# --- element walks -----------------------------------------------------------------------------------


def _too_deep(depth: int) -> NestedTooDeep:
    return NestedTooDeep(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")


def _sequence(buf: Buffer, pos: int, end: int, implicit: bool, depth: int) -> int:
    """Walk an undefined-length sequence's items from `pos` (`depth`: its nesting level, 1 at top level);
    return the offset after its delimiter."""
    if depth > MAX_SEQUENCE_DEPTH:
        raise _too_deep(depth)
    header = _IMPLICIT_HEADER.unpack_from
    while True:
        if end - pos < 8:
            raise _Cut
        group, elem, length = header(buf, pos)
        tag = group << 16 | elem
        pos += 8
        if tag == _SEQUENCE_DELIMITER:
            if length:
                raise _Decline
            return pos
        if tag != _ITEM:
            raise _Decline  # pydicom would read it as an item anyway
        # pydicom decides per item whether an explicit VR sequence switched to implicit (PS3.5 6.2.2).
        item_implicit = implicit or (end - pos >= 6 and not (0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B))
        if length == _UNDEFINED:
            pos = _elements(buf, pos, end, item_implicit, depth, delimited=True)
        else:
            item_end = pos + length
            if item_end > end:
                raise _Decline  # pydicom reads such an item to its first item delimiter, wherever that is
            # pydicom parses a defined-length item element by element; they must fill the item exactly.
            try:
                filled = _elements(buf, pos, item_end, item_implicit, depth, delimited=False)
            except _Cut:
                raise _Decline from None
            if filled != item_end:
                raise _Decline
            pos = item_end


def _defined_sequence(buf: Buffer, pos: int, end: int, implicit: bool, depth: int) -> None:
    """Walk a defined-length sequence value buf[pos:end] for its nesting depth only (pydicom reads these
    lazily, so nothing else about them matters here); anything odd declines the scan to pydicom, which then
    checks the depth itself."""
    if depth > MAX_SEQUENCE_DEPTH:
        raise _too_deep(depth)
    header = _IMPLICIT_HEADER.unpack_from
    while end - pos >= 8:
        group, elem, length = header(buf, pos)
        pos += 8
        if (group << 16 | elem) != _ITEM:
            raise _Decline
        item_implicit = implicit or (end - pos >= 6 and not (0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B))
        try:
            if length == _UNDEFINED:
                pos = _elements(buf, pos, end, item_implicit, depth, delimited=True)
            else:
                item_end = pos + length
                if item_end > end or _elements(buf, pos, item_end, item_implicit, depth, delimited=False) != item_end:
                    raise _Decline
                pos = item_end
        except _Cut:
            raise _Decline from None
    if pos != end:
        raise _Decline


def _encapsulated(buf: Buffer, pos: int, end: int) -> int:
    """Walk an undefined-length non-sequence value (encapsulated pixel data) as pydicom first tries to."""
    u32 = _U32.unpack_from
    start = pos
    while True:
        if end - pos < 8:
            if end - pos >= 4 and buf[pos : pos + 4] == _SEQUENCE_DELIMITER_BYTES:
                raise _Cut  # pydicom takes the delimiter without its length; the store's rule calls it cut
            # pydicom then searches the bytes for a delimiter; if there is one, it reads on from there.
            rest = buf[start:end]
            if (rest if isinstance(rest, bytes) else bytes(rest)).find(_SEQUENCE_DELIMITER_BYTES) >= 0:
                raise _Decline
            raise _Cut
        tag = buf[pos : pos + 4]
        if tag == _ITEM_BYTES:
            pos += 8 + u32(buf, pos + 4)[0]
        elif tag == _SEQUENCE_DELIMITER_BYTES:
            if u32(buf, pos + 4)[0]:
                raise _Decline
            return pos + 8
        else:
            raise _Decline  # pydicom falls back to a byte search for the delimiter


def _undefined_is_sequence(buf: Buffer, pos: int, end: int, tag: int, vr: int | None) -> bool:
    """Whether pydicom reads an undefined-length element as a sequence (value starts at `pos`)."""
    if vr is not None:  # explicit VR; UN is read as a sequence (PS3.5 6.2.2), `_scan` checks pydicom agrees
        return vr in (_SQ, _UN)
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        if end - pos < 4:
            raise _Cut from None
        return buf[pos : pos + 4] == _ITEM_BYTES


def _elements(buf: Buffer, pos: int, end: int, implicit: bool, depth: int, *, delimited: bool) -> int:
    """Walk the elements of a sequence item at nesting level `depth` (to its delimiter, or to `end`);
    return where it stops."""
    explicit_header = _EXPLICIT_HEADER.unpack_from
    implicit_header = _IMPLICIT_HEADER.unpack_from
    u32 = _U32.unpack_from
    while True:
        if end - pos < 8:
            if delimited:
                raise _Cut
            return pos
        if implicit:
            group, elem, length = implicit_header(buf, pos)
            vr = None
            value = pos + 8
        else:
            group, elem, vr, length = explicit_header(buf, pos)
            value = pos + 8
        tag = group << 16 | elem
        if group == 0xFFFE:
            # pydicom ends an item at its delimiter whatever follows; anything else here it misreads.
            if tag == _ITEM_DELIMITER and delimited and u32(buf, pos + 4)[0] == 0:
                return pos + 8
            raise _Decline
        if vr is not None:
            if vr in _LONG_VRS:
                if end - pos < 12:
                    raise _Cut if delimited else _Decline
                length = u32(buf, pos + 8)[0]
                value = pos + 12
            elif vr not in _SHORT_VRS:
                raise _Decline
        if length == _UNDEFINED:
            if _undefined_is_sequence(buf, value, end, tag, vr):
                pos = _sequence(buf, value, end, implicit, depth + 1)
            else:
                pos = _encapsulated(buf, value, end)
        else:
            pos = value + length
            if pos > end:
                raise _Cut if delimited else _Decline
            if length >= 8 and (vr == _SQ if vr is not None and vr != _UN else tag in _SQ_TAGS):
                _defined_sequence(buf, value, pos, implicit, depth + 1)


# A wanted value as the walk found it: (VR as a little-endian int or -1 in implicit VR, the raw value
# (short if the data is cut), its encoded length, its offset).
_Raw = tuple[int, bytes, int, int]


def _undefined(buf: Buffer, value: int, end: int, tag: int, vr: int | None, implicit: bool) -> tuple[int, int]:
    """Walk a top-level undefined-length value: (offset after it, 1 if encapsulated or 2 if a sequence)."""
    if _undefined_is_sequence(buf, value, end, tag, vr):
        return _sequence(buf, value, end, implicit, 1), 2
    return _encapsulated(buf, value, end), 1


def _top_level(buf: Buffer, pos: int, end: int, implicit: bool, wanted: dict[int, _Raw]) -> tuple[str, bool]:
    """Walk the top-level elements from `pos` to `end`, keeping the wanted raw values.

    Returns (truncation reason or "", whether pixel data was seen); raises `_Decline`. This loop is the
    hot path: the checks a value running past the end needs are left until after it.
    """
    if end - pos < 8:
        return "", False
    if (buf[pos] | buf[pos + 1] << 8) < 3:
        raise _Decline  # a command set (0000) or stray meta (0002): pydicom reads those separately
    if implicit and 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B:
        raise _Decline  # pydicom would switch to explicit VR here
    noted = _NOTED
    previous = -1  # ascending tags make the last element pydicom's last one (no duplicates)
    undefined_tag, undefined_kind = -1, 0  # the last undefined-length element and how it was walked
    has_pixels = False
    length = 0
    last8 = end - 8
    if implicit:
        implicit_header = _IMPLICIT_HEADER.unpack_from
        while pos <= last8:
            group, elem, length = implicit_header(buf, pos)
            tag = group << 16 | elem
            # Delimiters at top level would end pydicom's data set early.
            if not previous < tag < 0xFFFE0000:
                raise _Decline
            previous = tag
            value = pos + 8
            if length == _UNDEFINED:
                try:
                    pos, undefined_kind = _undefined(buf, value, end, tag, None, True)
                except _Cut:
                    reason = f"{_tag_str(tag)} does not end with its sequence delimiter"
                    return reason, has_pixels or tag in _PIXEL_DATA_TAGS
                undefined_tag = tag
                has_pixels = has_pixels or tag in _PIXEL_DATA_TAGS
                continue
            pos = value + length
            if tag in noted:
                if tag in _PIXEL_DATA_TAGS:
                    has_pixels = True
                elif length > _MAX_WANTED_LENGTH:
                    raise _Decline
                else:
                    wanted[tag] = (-1, buf[value:pos], length, value)
            elif length >= _DEEP_BYTES and pos <= end and tag in _SQ_TAGS:
                _defined_sequence(buf, value, pos, True, 1)
    else:
        explicit_header = _EXPLICIT_HEADER.unpack_from
        u32 = _U32.unpack_from
        header_lengths = _HEADER_LENGTHS
        while pos <= last8:
            group, elem, vr, length = explicit_header(buf, pos)
            tag = group << 16 | elem
            if not previous < tag < 0xFFFE0000:
                raise _Decline
            header_length = header_lengths[vr]
            if header_length == 12:
                if pos + 12 > end:
                    break
                length = u32(buf, pos + 8)[0]
                if length == _UNDEFINED:
                    previous = tag
                    try:
                        pos, undefined_kind = _undefined(buf, pos + 12, end, tag, vr, False)
                    except _Cut:
                        reason = f"{_tag_str(tag)} does not end with its sequence delimiter"
                        return reason, has_pixels or tag in _PIXEL_DATA_TAGS
                    undefined_tag = tag
                    has_pixels = has_pixels or tag in _PIXEL_DATA_TAGS
                    continue
                if (
                    length >= _DEEP_BYTES
                    and (vr == _SQ or (vr == _UN and tag in _SQ_TAGS))
                    and pos + 12 + length <= end
                ):
                    _defined_sequence(buf, pos + 12, pos + 12 + length, False, 1)
            elif not header_length:
                raise _Decline  # pydicom guesses implicit VR for this element, or a 16-bit length
            previous = tag
            value = pos + header_length
            pos = value + length
            if tag in noted:
                if tag in _PIXEL_DATA_TAGS:
                    has_pixels = True
                elif length > _MAX_WANTED_LENGTH:
                    raise _Decline
                else:
                    wanted[tag] = (vr, buf[value:pos], length, value)
    if pos > end:  # only the last element can run past the end: the loop stops there
        return f"{_tag_str(previous)} needs {length} bytes but the file ends {pos - end} early", has_pixels
    if pos == end or previous < 0:
        return "", has_pixels
    if previous == undefined_tag:
        if undefined_kind == 2:
            raise _Decline  # ingest._truncation does not look past an undefined-length sequence; don't guess
        return f"{_tag_str(previous)} does not end with its sequence delimiter", has_pixels
    return f"{end - pos} bytes after {_tag_str(previous)} could not be parsed", has_pixels


# --- value conversion --------------------------------------------------------------------------------


def _fast_ok() -> bool:
    """Whether pydicom is configured as the plain decodes below assume."""
    return (
        _config.settings.reading_validation_mode != _config.RAISE
        and not _config.datetime_conversion
        and not _config.use_IS_numpy
        and _config.data_element_callback is None
        and _config.replace_un_with_known_vr
        and _hooks.hooks.raw_element_vr is _hooks.raw_element_vr
        and _hooks.hooks.raw_element_value is _hooks.raw_element_value
    )


def _decode_direct(raw: bytes, codec: str) -> str:
    """Text in a single-byte or UTF-8 character set; ISO 2022 escapes or bad bytes go to pydicom instead."""
    if b"\x1b" in raw:
        raise _Slow  # ISO 2022 escape sequences
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise _Slow from None


def _fast_values(wanted: dict[int, _Raw], implicit: bool) -> tuple[dict[int, Any], dict[int, int | None]]:
    """(text, numbers): the wanted values as pydicom + the model's `_text` / `_int` give them.

    Raises `_Slow` where the direct decode might differ from pydicom's conversion.
    """
    codec = "latin-1"
    charset = wanted.get(0x00080005)
    if charset is not None:
        if not implicit and charset[0] != _CS:
            raise _Slow
        plain = _PLAIN_CHARSETS.get(bytes(charset[1]).rstrip(b" \0"))
        if plain is None:
            raise _Slow
        codec = plain
    wanted_kinds = _WANTED
    out: dict[int, Any] = {}  # text, or a tuple of floats for DS
    numbers: dict[int, int | None] = {}
    for tag, (vr, raw, length, _) in wanted.items():
        kind, expected_vr = wanted_kinds[tag]
        # pydicom reads an explicit UN of a public tag as the dictionary VR (replace_un_with_known_vr).
        if vr != expected_vr and not implicit and not (vr == _UN and length < 0xFFFF):
            raise _Slow
        if type(raw) is not bytes:
            raw = bytes(raw)  # a memoryview or bytearray slice
        if length == 0:
            if kind >= _IS:
                numbers[tag] = None
            else:
                out[tag] = () if kind == _DS else ""
        elif kind == _STR:
            # CS, DA, TM: pydicom decodes these as ASCII-ish whatever the character set.
            s = raw.decode("latin-1").rstrip(" \0")
            out[tag] = s if "\\" in s else s.strip()
        elif kind == _UI:
            s = raw.decode("latin-1").rstrip("\0 ")
            out[tag] = "\\".join(v.strip() for v in s.split("\\")) if "\\" in s else s.strip()
        elif kind == _TXT:
            s = _decode_direct(raw, codec)
            if "\\" in s:
                out[tag] = "\\".join(v.rstrip("\0 ") for v in s.split("\\"))
            else:
                out[tag] = s.rstrip("\0 ").strip()
        elif kind == _PN:
            s = _decode_direct(raw.rstrip(b"\0 "), codec)
            # str(PersonName) drops empty trailing component groups, i.e. trailing '='.
            if "\\" in s:
                out[tag] = "\\".join(v.rstrip("=") for v in s.split("\\"))
            else:
                out[tag] = s.rstrip("=").strip()
        elif kind == _DS:
            try:  # as the model's `_floats` over pydicom's DS values; anything float() refuses goes to pydicom
                out[tag] = tuple(float(v.strip(" \0")) for v in raw.decode("latin-1").split("\\"))
            except ValueError:
                raise _Slow from None
        elif kind == _IS:
            s = raw.decode("latin-1").rstrip(" \0")
            if "\\" in s:
                raise _Slow
            s = s.strip()
            if not s:
                numbers[tag] = None
            elif _PLAIN_IS.fullmatch(s):
                numbers[tag] = int(s)
            else:
                raise _Slow  # floats, huge or odd numbers: IS() has its own rules
        elif kind == _US:
            if length != 2 or len(raw) != 2:
                raise _Slow
            numbers[tag] = raw[0] | raw[1] << 8
    return out, numbers


def _entry_fast(texts: dict[int, Any], numbers: dict[int, int | None], transfer_syntax: str) -> IndexEntry | None:
    # An absent value is "" / None, as the model's `_text` / `_int` give it.
    get, number = texts.get, numbers.get
    study_uid = get(0x0020000D, "")
    series_uid = get(0x0020000E, "")
    sop_class = get(0x00080016, "")
    sop_instance = get(0x00080018, "")
    if not (study_uid and series_uid and sop_class and sop_instance):
        return None  # index_entry_from_dataset raises NotIndexable; let the caller's pydicom path say so
    study = Study(
        study_uid=study_uid,
        patient_id=get(0x00100020, ""),
        patient_name=get(0x00100010, ""),
        birth_date=get(0x00100030, ""),
        sex=get(0x00100040, ""),
        accession_number=get(0x00080050, ""),
        study_id=get(0x00200010, ""),
        study_date=get(0x00080020, ""),
        study_time=get(0x00080030, ""),
        study_description=get(0x00081030, ""),
        referring_physician=get(0x00080090, ""),
    )
    series = Series(
        series_uid=series_uid,
        study_uid=study_uid,
        modality=get(0x00080060, ""),
        series_number=number(0x00200011),
        series_description=get(0x0008103E, ""),
        body_part=get(0x00180015, ""),
        series_date=get(0x00080021, ""),
        series_time=get(0x00080031, ""),
        kind=document_kind(sop_class),
    )
    instance = Instance(
        sop_instance_uid=sop_instance,
        series_uid=series_uid,
        study_uid=study_uid,
        sop_class_uid=sop_class,
        instance_number=number(0x00200013),
        transfer_syntax=transfer_syntax,
        frames=number(0x00280008) or 1,
        rows=number(0x00280010) or 0,
        columns=number(0x00280011) or 0,
        image_position=get(0x00200032, ()),
        image_orientation=get(0x00200037, ()),
    )
    return IndexEntry(study=study, series=series, instance=instance)


def _entry_slow(wanted: dict[int, _Raw], implicit: bool, transfer_syntax: str) -> IndexEntry | None:
    """The entry pydicom itself converts from the raw elements its reader would have produced."""
    elements: dict[BaseTag, RawDataElement] = {}
    for tag, (vr, raw, length, offset) in wanted.items():
        vr_str = None if implicit else chr(vr & 0xFF) + chr(vr >> 8)
        elements[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr_str, length, bytes(raw), offset, implicit, True)
    try:
        return index_entry_from_dataset(Dataset(elements), transfer_syntax)
    except Exception:
        return None  # NotIndexable, or pydicom cannot convert a value either: its own path reports it


# --- entry points ------------------------------------------------------------------------------------


def _scan(buf: Buffer, offset: int, implicit: bool, transfer_syntax: str) -> HeaderScan | None:
    if not _config.settings.infer_sq_for_un_vr:
        return None  # pydicom would then read undefined-length UN by dictionary VR or byte search
    wanted: dict[int, _Raw] = {}
    try:
        truncation, has_pixels = _top_level(buf, offset, len(buf), implicit, wanted)
    except (_Decline, _Cut, struct.error, IndexError):
        return None
    entry: IndexEntry | None
    try:
        if not _fast_ok():
            raise _Slow
        entry = _entry_fast(*_fast_values(wanted, implicit), transfer_syntax)
    except _Slow:
        entry = _entry_slow(wanted, implicit, transfer_syntax)
    if entry is None:
        return None
    return HeaderScan(entry=entry, has_pixel_data=has_pixels, truncation=truncation)


def _as_bytes_buffer(data: Buffer) -> Buffer:
    if isinstance(data, memoryview) and (data.format != "B" or data.ndim != 1):
        return data.cast("B")
    return data


def scan_dataset(data: Buffer, *, offset: int, transfer_syntax: str) -> HeaderScan | None:
    """Scan the encoded data set data[offset:] (no file meta) in the given transfer syntax."""
    implicit = _is_implicit(transfer_syntax)
    if implicit is None or offset < 0:
        return None
    try:
        buf = _as_bytes_buffer(data)
    except (TypeError, ValueError):
        return None
    return _scan(buf, offset, implicit, transfer_syntax)


def _meta_transfer_syntax(buf: Buffer, end: int) -> tuple[str, int] | None:
    """(Transfer Syntax UID as pydicom reads it, offset of the data set) from the group 0002 meta at 132."""
    explicit_header = _EXPLICIT_HEADER.unpack_from
    u32 = _U32.unpack_from
    pos = 132
    ts: str | None = None
    while end - pos >= 8:
        group, elem, vr, length = explicit_header(buf, pos)
        if group != 2:
            break
        if vr in _LONG_VRS:
            if end - pos < 12:
                return None
            length = u32(buf, pos + 8)[0]
            value = pos + 12
        elif vr in _SHORT_VRS:
            value = pos + 8
        else:
            return None  # pydicom retries the meta as implicit VR
        if length == _UNDEFINED or value + length > end:
            return None
        if elem == 0x0010:
            if vr != _vr_code("UI"):
                return None
            # As pydicom's UI conversion: padding stripped, then UID() strips whitespace.
            text = bytes(buf[value : value + length]).decode("latin-1").rstrip("\0 ")
            if "\\" in text:
                return None
            ts = text.strip()
        pos = value + length
    if not ts:
        return None
    return ts, pos


def part10_meta(data: Buffer) -> tuple[str, int] | None:
    """(Transfer Syntax UID, offset of the data set) of a Part 10 file in memory; None if its meta is not
    plain explicit VR little endian after a preamble and 'DICM'."""
    try:
        buf = _as_bytes_buffer(data)
        if len(buf) < 132 or buf[128:132] != b"DICM":
            return None
        return _meta_transfer_syntax(buf, len(buf))
    except (TypeError, ValueError, struct.error, IndexError):
        return None


def scan_part10(data: Buffer) -> HeaderScan | None:
    """A whole Part 10 file in memory: 128-byte preamble + 'DICM' + group 0002 meta (explicit VR LE) + data set.

    Returns None if there is no preamble/DICM, the meta is malformed, or the transfer syntax is not handled.
    """
    try:
        buf = _as_bytes_buffer(data)
    except (TypeError, ValueError):
        return None
    end = len(buf)
    if end < 132 or buf[128:132] != b"DICM":
        return None
    try:
        meta = _meta_transfer_syntax(buf, end)
    except (struct.error, IndexError):
        return None
    if meta is None:
        return None
    transfer_syntax, offset = meta
    implicit = _is_implicit(transfer_syntax)
    if implicit is None:
        return None
    return _scan(buf, offset, implicit, transfer_syntax)


def scan_file(path: Path | str) -> HeaderScan | None:
    """`scan_part10` over a file; large files are mapped rather than read, as only headers are touched."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        if size < _MAP_ABOVE:
            return scan_part10(fh.read())
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return scan_part10(mapped)
