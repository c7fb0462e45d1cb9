"""Reading a DICOMDIR (PS3.10 media directory) the way CDs are found in the wild.

Referenced File IDs are matched against the files actually present case-insensitively and ignoring ISO 9660
version suffixes (``IM000001;1``, ``IM000001.;1``), because burners, operating systems and copy tools all
change those. The directory records are read raw (no `FileSet` validation), so a DICOMDIR with odd offsets
or record order still yields its references; one that cannot be read at all is reported, and the importer
then relies on its recursive scan of the folder.
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
    try:
        ds = pydicom.dcmread(dicomdir, force=True)
        records = ds.get("DirectoryRecordSequence")
        if records is None:
            raise ValueError("no Directory Record Sequence")
    except Exception as exc:
        contents.error = f"{type(exc).__name__}: {exc}"
        log.warning("DICOMDIR %s is unreadable (%s); scanning the folder instead", dicomdir, contents.error)
        return contents
    index = index or TreeIndex(root)
    seen: set[Path] = set()
    for record in records:
        contents.record_count += 1
        try:
            file_id = record.get("ReferencedFileID")
        except Exception as exc:  # a damaged record: note it, keep the rest
            log.warning("DICOMDIR %s: unreadable record (%s)", dicomdir, exc)
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
