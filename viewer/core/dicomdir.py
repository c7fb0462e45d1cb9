"""Reading a DICOMDIR (PS3.10 media directory) the way CDs are found in the wild.

Referenced File IDs are matched against the files actually present case-insensitively and ignoring ISO 9660
version suffixes (``IM000001;1``, ``IM000001.;1``), because burners, operating systems and copy tools all
change those. The directory records are read raw (no `FileSet` validation), so a DICOMDIR with odd offsets
or record order still yields its references; one that cannot be read at all is reported, and the importer
then relies on its recursive scan of the folder.

A damaged DICOMDIR (cut short, or garbled) often still parses: pydicom stops quietly at the end of the
bytes and returns the records it got. So the readable part is checked against what the DICOMDIR itself
promises (PS3.3 F.3.2): every record offset (first and last root record, next record, lower-level
entity) must land on a record that was read, every record needs a Directory Record Type, and reading
must not have hit the end of the file or a VR mismatch. Any failure is listed in `damage`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

log = logging.getLogger(__name__)

DICOMDIR_NAME = "DICOMDIR"


def normalise_component(name: str) -> str:
    """Compare file name components as an ISO 9660 reader would: no version suffix, no trailing dot, any case."""
    return name.split(";", 1)[0].rstrip(".").upper()


def is_dicomdir_name(name: str) -> bool:
    return normalise_component(name) == DICOMDIR_NAME


@dataclass
class DicomdirContents:
    dicomdir: Path
    root: Path
    referenced: list[Path] = field(default_factory=list)  # resolved files that exist
    missing: list[str] = field(default_factory=list)  # Referenced File IDs with no file behind them
    record_count: int = 0
    error: str = ""  # why the DICOMDIR could not be read ('' when it could)
    damage: list[str] = field(default_factory=list)  # why what was read cannot be the whole DICOMDIR


class TreeIndex:
    """The files under a folder, looked up by a case- and version-insensitive relative path."""

    def __init__(self, root: Path, files: Iterable[Path] | None = None) -> None:
        self.root = root
        self._by_key: dict[tuple[str, ...], Path] = {}
        for path in files if files is not None else _walk_files(root):
            try:
                rel = path.relative_to(root)
            except ValueError:
                continue
            self._by_key.setdefault(tuple(normalise_component(p) for p in rel.parts), path)

    def find(self, components: Iterable[str]) -> Path | None:
        return self._by_key.get(tuple(normalise_component(c) for c in components if c not in ("", ".")))


def _walk_files(root: Path) -> Iterable[Path]:
    for folder, _dirs, names in os.walk(root):
        for name in names:
            yield Path(folder) / name


def _file_id_components(value: object) -> list[str]:
    if isinstance(value, str):
        # A single-valued ID may still hold backslash-separated components if it was written as one string.
        return [p for p in value.replace("/", "\\").split("\\") if p]
    return [str(p).strip() for p in value if str(p).strip()]  # type: ignore[attr-defined]


def read_dicomdir(dicomdir: Path, index: TreeIndex | None = None) -> DicomdirContents:
    """The files a DICOMDIR references, resolved against the folder it sits in."""
    root = dicomdir.parent
    contents = DicomdirContents(dicomdir=dicomdir, root=root)
    reading = _ReadProblems()
    pydicom_log = logging.getLogger("pydicom")
    pydicom_log.addHandler(reading)
    try:
        ds = pydicom.dcmread(dicomdir, force=True)
        records = ds.get("DirectoryRecordSequence")
        if records is None:
            raise ValueError("no Directory Record Sequence")
        contents.damage.extend(reading.problems)
        contents.damage.extend(_offset_damage(ds, records))
    except Exception as exc:
        contents.error = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("a DICOMDIR is unreadable (%s); scanning the folder instead", type(exc).__name__)
        return contents
    finally:
        pydicom_log.removeHandler(reading)
    index = index or TreeIndex(root)
    seen: set[Path] = set()
    for record in records:
        contents.record_count += 1
        try:
            file_id = record.get("ReferencedFileID")
        except Exception as exc:  # a damaged record: note it, keep the rest
            contents.damage.append(f"record {contents.record_count} unreadable ({type(exc).__name__})")
            continue
        if not file_id:
            continue
        components = _file_id_components(file_id)
        if not components:
            continue
        found = index.find(components)
        if found is None:
            contents.missing.append("/".join(components))
        elif found not in seen:
            seen.add(found)
            contents.referenced.append(found)
    return contents


class _ReadProblems(logging.Handler):
    """What pydicom says while reading (it logs, then warns, the same text): the end of the file reached
    inside an element, or a VR that is not where it should be, both mean the bytes are not whole."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "in file" in text:  # pydicom appends the file name to an end-of-file message
            text = text.split(" in file", 1)[0]
        if len(self.problems) < 5:
            self.problems.append(f"reading: {text[:160]}")


# PS3.3 F.3.2.1: byte offsets of directory records, counted as pydicom counts `seq_item_tell` (its own
# FileSet resolves them the same way).
_ROOT_OFFSETS = (0x00041200, 0x00041202)  # first / last record of the root directory entity
_RECORD_OFFSETS = (0x00041400, 0x00041420)  # next record / first record of the lower-level entity


def _offset_damage(ds: pydicom.Dataset, records: Iterable[pydicom.Dataset]) -> list[str]:
    starts: set[int] = set()
    records = list(records)
    for record in records:
        tell = getattr(record, "seq_item_tell", None)
        if tell is not None:
            starts.add(int(tell))
    damage: list[str] = []
    dangling = 0
    for tag in _ROOT_OFFSETS:
        value = ds.get(tag)
        offset = int(value.value) if value is not None and value.value else 0
        if records and offset and offset not in starts:
            dangling += 1
    untyped = 0
    for record in records:
        for tag in _RECORD_OFFSETS:
            try:
                value = record.get(tag)
                offset = int(value.value) if value is not None and value.value else 0
            except Exception:
                dangling += 1
                continue
            if offset and offset not in starts:
                dangling += 1
        try:
            if not str(record.get("DirectoryRecordType", "") or "").strip():
                untyped += 1
        except Exception:
            untyped += 1
    if dangling:
        damage.append(f"{dangling} record offsets point to no record (records lost or moved)")
    if untyped:
        damage.append(f"{untyped} records without a Directory Record Type")
    return damage
