"""The local study store: a SQLite index over a folder of content-addressed DICOM files.

Invariants the rest of the app relies on:

* A file is written to a temporary name, made durable, and renamed into place *before* the row that
  points at it is committed. A crash at any point leaves at worst an orphan file (removed by
  `recover`), never a row without its file.
* Stored files are named from the SHA-256 of their bytes, never from a UID or a patient name, so no
  value inside a received object can choose a path.
* The same SOP Instance UID arriving again with the same bytes is a duplicate and is skipped; with
  different bytes the newer copy replaces the older one and the replacement is logged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: recovery then relies on `min_age_s` alone
    fcntl = None  # type: ignore[assignment]

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite

from viewer.core.model import (
    IndexEntry,
    Instance,
    NotIndexable,
    Patient,
    Series,
    Study,
    document_kind,
    index_entry_from_dataset,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_CHUNK = 1 << 20
_DEFER_BYTES = 4096
_DEFLATED = "1.2.840.10008.1.2.1.99"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT '',
    accession_number TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    study_description TEXT NOT NULL DEFAULT '',
    referring_physician TEXT NOT NULL DEFAULT '',
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_id);
CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES studies(study_uid) ON DELETE CASCADE,
    modality TEXT NOT NULL DEFAULT '',
    series_number INTEGER,
    series_description TEXT NOT NULL DEFAULT '',
    body_part TEXT NOT NULL DEFAULT '',
    series_date TEXT NOT NULL DEFAULT '',
    series_time TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'image'
);
CREATE INDEX IF NOT EXISTS series_study ON series(study_uid);
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL REFERENCES series(series_uid) ON DELETE CASCADE,
    study_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    instance_number INTEGER,
    transfer_syntax TEXT NOT NULL DEFAULT '',
    frames INTEGER NOT NULL DEFAULT 1,
    rows INTEGER NOT NULL DEFAULT 0,
    columns INTEGER NOT NULL DEFAULT 0,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_uid);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE INDEX IF NOT EXISTS instances_sha ON instances(sha256);
"""


class AddStatus(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"


@dataclass(frozen=True)
class AddResult:
    status: AddStatus
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    sop_class_uid: str
    path: Path


class StoreError(Exception):
    """Base of what the store refuses; the message is meant for the user."""


class NotDicomError(StoreError):
    """The bytes are not a DICOM object at all."""


class InvalidObjectError(StoreError):
    """A DICOM object that cannot be indexed (missing UIDs, a UID that is not a UID, unreadable header)."""


class StoreFullError(StoreError):
    """The disk holding the store is full; nothing was changed."""


@dataclass(frozen=True)
class StoreEvent:
    kind: str  # "added", "replaced" or "deleted"
    study_uid: str
    series_uid: str = ""
    sop_instance_uid: str = ""
    source: str = ""  # what the add was called with ("scp:AE", "file:name"), so listeners can tell apart


@dataclass
class StudyQuery:
    """Browser search: every field is optional; text fields match case-insensitively with * and ?."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    date_from: str = ""  # YYYYMMDD
    date_to: str = ""
    modality: str = ""
    text: str = ""  # free text over name, ID, accession and description


@dataclass
class PreparedObject:
    """A copied, hashed and checked object waiting in the temp folder for `StudyStore.commit_prepared`."""

    entry: IndexEntry
    tmp: Path
    sha: str
    size: int
    synced: bool

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


@dataclass
class RecoveryReport:
    removed_temp_files: int = 0
    removed_orphan_files: int = 0
    rows_without_file: list[str] = field(default_factory=list)


_UNSAFE_UID_CHARS = set("/\\\x00") | {chr(c) for c in range(32)}


def check_uid(name: str, value: str) -> None:
    """Refuse UIDs that could never be UIDs, whatever they would be used for."""
    if len(value) > 64:
        raise InvalidObjectError(f"{name} is longer than 64 characters")
    if ".." in value or any(ch in _UNSAFE_UID_CHARS for ch in value):
        raise InvalidObjectError(f"{name} contains characters a UID cannot have")


def _wildcard_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class StudyStore:
    """Thread-safe store; one instance per data folder per process."""

    def __init__(self, root: Path | str, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.files_dir = self.root / "files"
        self.tmp_dir = self.files_dir / ".tmp"
        self.db_path = self.root / "index.sqlite3"
        self.durable = durable
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._made_dirs: set[Path] = set()
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._listeners: list[Callable[[StoreEvent], None]] = []
        self._batch_depth = 0
        self._batch_owner: int | None = None
        self._batch_pending = 0
        self._batch_events: list[StoreEvent] = []
        self._batch_unlink: list[Path] = []
        # Every process with the store open holds a shared lock on this file for as long as it has it open,
        # so `recover` can tell whether anyone else might be writing temp files right now.
        self._open_lock_fd = _hold_shared_lock(self.root / ".open.lock")
        if self._open_lock_fd is not None:
            weakref.finalize(self, os.close, self._open_lock_fd)
        with self._write_lock:
            conn = self._conn()
            conn.executescript(SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.commit()

    # ----------------------------------------------------------------- connections and events
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL" if self.durable else "PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def subscribe(self, listener: Callable[[StoreEvent], None]) -> Callable[[], None]:
        """Call `listener` (from the writing thread) after each change; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, events: Iterable[StoreEvent]) -> None:
        for event in events:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # a broken listener must not undo a stored instance
                    log.exception("store listener failed")

    def _in_own_batch(self) -> bool:
        return self._batch_depth > 0 and self._batch_owner == threading.get_ident()

    # ----------------------------------------------------------------- adding
    def add_file(self, path: Path | str, *, source: str = "") -> AddResult:
        """Copy a DICOM file into the store (the source is never modified or moved)."""
        with open(path, "rb") as src:
            return self._add_stream(src, source=source or f"file:{Path(path).name}")

    def add_bytes(self, data: bytes, *, source: str = "") -> AddResult:
        """Store an encoded DICOM file (preamble + meta, or a bare dataset that gets a meta added)."""
        return self._add_stream(DicomBytesIO(data), source=source)

    def add_stream(self, src: BinaryIO, *, source: str = "") -> AddResult:
        """Store an encoded DICOM file read from an open binary stream (e.g. a ZIP member), without buffering it."""
        return self._add_stream(src, source=source)

    def add_dataset(self, ds: Dataset, *, source: str = "") -> AddResult:
        """Encode and store a dataset (its `file_meta` must name the transfer syntax it is encoded in)."""
        buffer = DicomBytesIO()
        _ensure_meta(ds)
        dcmwrite(buffer, ds, enforce_file_format=True)
        return self.add_bytes(buffer.getvalue(), source=source)

    @classmethod
    def preparer(cls, root: Path | str, *, durable: bool = True) -> StudyStore:
        """A store handle for `prepare_stream` alone (e.g. in an import worker process).

        It touches neither the index nor its lock, so it can run while another process holds a write
        transaction; the prepared objects are committed by a full `StudyStore` on the same root.
        """
        handle = cls.__new__(cls)
        handle.root = Path(root)
        handle.files_dir = handle.root / "files"
        handle.tmp_dir = handle.files_dir / ".tmp"
        handle.durable = durable
        handle._batch_depth = 0
        handle._batch_owner = None
        return handle

    def prepare_stream(self, src: BinaryIO, *, will_commit_in_batch: bool = False) -> PreparedObject:
        """First half of an add, safe to run on many threads at once: copy, hash, parse and check.

        Nothing is visible until `commit_prepared` (or the prepared object is discarded). With
        `will_commit_in_batch` the per-file fsync is left to the batch, which syncs before it commits.
        """
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            sha, size = self._copy_hashing(src, tmp, sync=self.durable and not will_commit_in_batch)
            entry, tmp, sha, size = self._parse_and_normalise(tmp, sha, size)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return PreparedObject(entry, tmp, sha, size, synced=self.durable and not will_commit_in_batch)

    def commit_prepared(self, prepared: PreparedObject, *, source: str = "") -> AddResult:
        """Second half of an add: move the prepared file into place and index it (or find it a duplicate)."""
        try:
            if self.durable and not prepared.synced and not self._in_own_batch():
                with open(prepared.tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
            return self._commit(prepared.entry, prepared.tmp, prepared.sha, prepared.size, source)
        finally:
            prepared.discard()

    def _add_stream(self, src: BinaryIO, *, source: str) -> AddResult:
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            sha, size = self._copy_hashing(src, tmp)
            entry, tmp, sha, size = self._parse_and_normalise(tmp, sha, size)
            return self._commit(entry, tmp, sha, size, source)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _copy_hashing(self, src: BinaryIO, tmp: Path, sync: bool | None = None) -> tuple[str, int]:
        if sync is None:
            sync = self.durable and not self._in_own_batch()
        digest = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                if sync:
                    out.flush()
                    os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFullError("the disk holding the study store is full") from exc
            raise
        return digest.hexdigest(), size

    def _parse_and_normalise(self, tmp: Path, sha: str, size: int) -> tuple[IndexEntry, Path, str, int]:
        """Read the header from the temp copy; rewrite files that lack the preamble or file meta."""
        with open(tmp, "rb") as fh:
            has_preamble = fh.read(132)[128:132] == b"DICM"
        try:
            # Large values are deferred (seeked over, not read) so the whole element structure is walked
            # cheaply; that is what lets a file cut short inside its pixel data be told from a whole one.
            ds = pydicom.dcmread(tmp, force=not has_preamble, defer_size=_DEFER_BYTES)
        except InvalidDicomError as exc:
            raise NotDicomError(f"not a DICOM file ({exc})") from exc
        except Exception as exc:
            raise (InvalidObjectError if has_preamble else NotDicomError)(
                f"unreadable DICOM header: {type(exc).__name__}: {exc}"
            ) from exc
        if not has_preamble and len(ds) == 0:
            raise NotDicomError("not a DICOM file")
        # In a deflated file the offsets pydicom records are into the inflated stream, not the file.
        deflated = str(ds.file_meta.get("TransferSyntaxUID", "")) == _DEFLATED
        truncation = _truncation(ds, tmp, size) if len(ds) and not deflated else ""
        if truncation and (has_preamble or len(ds) > 3):
            raise InvalidObjectError(f"file is incomplete: {truncation}")
        entry = self._index(ds, has_preamble)
        if has_preamble and "TransferSyntaxUID" in ds.file_meta:
            return entry, tmp, sha, size
        # Preamble-less or meta-less files (old CDs, raw dumps) are rewritten as proper Part 10 files.
        try:
            full = pydicom.dcmread(tmp, force=True)
            _ensure_meta(full)
            normalised = tmp.with_suffix(".norm")
            dcmwrite(normalised, full, enforce_file_format=True)
        except Exception as exc:
            raise InvalidObjectError(f"cannot rewrite as a DICOM file: {type(exc).__name__}: {exc}") from exc
        tmp.unlink()
        os.replace(normalised, tmp)
        with open(tmp, "rb") as fh:
            sha, size = self._rehash(fh)
        return self._index(pydicom.dcmread(tmp, stop_before_pixels=True), True), tmp, sha, size

    @staticmethod
    def _rehash(fh: BinaryIO) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    @staticmethod
    def _index(ds: Dataset, has_preamble: bool) -> IndexEntry:
        try:
            entry = index_entry_from_dataset(ds)
        except NotIndexable as exc:
            kind = InvalidObjectError if has_preamble or len(ds) > 3 else NotDicomError
            raise kind(str(exc)) from exc
        except Exception as exc:
            raise InvalidObjectError(f"unreadable attribute: {type(exc).__name__}: {exc}") from exc
        for name, value in (
            ("SOP Instance UID", entry.instance.sop_instance_uid),
            ("SOP Class UID", entry.instance.sop_class_uid),
            ("Series Instance UID", entry.series.series_uid),
            ("Study Instance UID", entry.study.study_uid),
        ):
            check_uid(name, value)
        return entry

    def _final_path(self, sha: str) -> Path:
        return self.files_dir / sha[:2] / sha[2:4] / sha

    def _commit(self, entry: IndexEntry, tmp: Path, sha: str, size: int, source: str) -> AddResult:
        inst = entry.instance
        final = self._final_path(sha)
        with self._write_lock:
            conn = self._conn()
            row = conn.execute(
                "SELECT sha256, file FROM instances WHERE sop_instance_uid = ?", (inst.sop_instance_uid,)
            ).fetchone()
            result = AddResult(
                AddStatus.ADDED,
                inst.sop_instance_uid,
                inst.series_uid,
                inst.study_uid,
                inst.sop_class_uid,
                final,
            )
            if row is not None and row["sha256"] == sha:
                return AddResult(AddStatus.DUPLICATE, *list(result.__dict__.values())[1:])
            existed = final.exists()
            try:
                if final.parent not in self._made_dirs:  # a mkdir per file costs more than the insert
                    final.parent.mkdir(parents=True, exist_ok=True)
                    self._made_dirs.add(final.parent)
                try:
                    os.replace(tmp, final)
                except FileNotFoundError:  # the folder was removed behind our back: make it again
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, final)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreFullError("the disk holding the study store is full") from exc
                raise
            old_file: Path | None = None
            if row is not None:
                old_file = self.files_dir / row["file"]
                log.warning(
                    "instance %s received again with different content; keeping the newer copy",
                    inst.sop_instance_uid,
                )
                result = AddResult(AddStatus.REPLACED, *list(result.__dict__.values())[1:])
            if self._batch_depth == 0:
                if self.durable:
                    _fsync_dir(final.parent)
                conn.execute("BEGIN IMMEDIATE")
            try:
                self._upsert(conn, entry, final, sha, size, source)
                if self._batch_depth == 0:
                    conn.execute("COMMIT")
            except Exception as exc:
                if self._batch_depth == 0:
                    # A failed COMMIT (disk full while SQLite grows its log) must not leave the transaction
                    # open, or every later add on this connection fails; the file goes with its row.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    if not existed:
                        self._unlink_if_unreferenced(final)
                if _is_disk_full(exc):
                    raise StoreFullError("the disk holding the study store is full") from exc
                raise
            event = StoreEvent(
                "replaced" if row is not None else "added",
                inst.study_uid,
                inst.series_uid,
                inst.sop_instance_uid,
                source,
            )
            if self._batch_depth:
                self._batch_pending += 1
                self._batch_events.append(event)
                if old_file is not None and old_file != final:
                    self._batch_unlink.append(old_file)
                if self._batch_pending >= 500:
                    self._flush_batch(conn)
                return result
        if old_file is not None and old_file != final:
            self._unlink_if_unreferenced(old_file)
        self._emit([event])
        return result

    def _upsert(
        self, conn: sqlite3.Connection, entry: IndexEntry, final: Path, sha: str, size: int, source: str
    ) -> None:
        st, se, inst = entry.study, entry.series, entry.instance
        now = time.time()
        conn.execute(
            """INSERT INTO studies(study_uid, patient_id, patient_name, birth_date, sex, accession_number,
                   study_id, study_date, study_time, study_description, referring_physician, added_at)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(study_uid) DO UPDATE SET
                   patient_id = CASE WHEN excluded.patient_id != '' THEN excluded.patient_id ELSE patient_id END,
                   patient_name = CASE WHEN excluded.patient_name != '' THEN excluded.patient_name
                                       ELSE patient_name END,
                   birth_date = CASE WHEN excluded.birth_date != '' THEN excluded.birth_date ELSE birth_date END,
                   sex = CASE WHEN excluded.sex != '' THEN excluded.sex ELSE sex END,
                   accession_number = CASE WHEN excluded.accession_number != '' THEN excluded.accession_number
                                           ELSE accession_number END,
                   study_date = CASE WHEN excluded.study_date != '' THEN excluded.study_date ELSE study_date END,
                   study_time = CASE WHEN excluded.study_time != '' THEN excluded.study_time ELSE study_time END,
                   study_description = CASE WHEN excluded.study_description != ''
                                            THEN excluded.study_description ELSE study_description END""",
            (
                st.study_uid,
                st.patient_id,
                st.patient_name,
                st.birth_date,
                st.sex,
                st.accession_number,
                st.study_id,
                st.study_date,
                st.study_time,
                st.study_description,
                st.referring_physician,
                now,
            ),
        )
        conn.execute(
            """INSERT INTO series(series_uid, study_uid, modality, series_number, series_description, body_part,
                   series_date, series_time, kind)
               VALUES (?,?,?,?,?,?,?,?,?)
               ON CONFLICT(series_uid) DO UPDATE SET
                   modality = CASE WHEN excluded.modality != '' THEN excluded.modality ELSE modality END,
                   series_description = CASE WHEN excluded.series_description != ''
                                             THEN excluded.series_description ELSE series_description END""",
            (
                se.series_uid,
                se.study_uid,
                se.modality,
                se.series_number,
                se.series_description,
                se.body_part,
                se.series_date,
                se.series_time,
                se.kind,
            ),
        )
        conn.execute(
            """INSERT OR REPLACE INTO instances(sop_instance_uid, series_uid, study_uid, sop_class_uid,
                   instance_number, transfer_syntax, frames, rows, columns, file, size, sha256, source, added_at)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (
                inst.sop_instance_uid,
                inst.series_uid,
                inst.study_uid,
                inst.sop_class_uid,
                inst.instance_number,
                inst.transfer_syntax,
                inst.frames,
                inst.rows,
                inst.columns,
                str(final.relative_to(self.files_dir)),
                size,
                sha,
                source,
                now,
            ),
        )

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group many adds into few transactions (bulk import): one directory sync and commit per 500.

        Durability is kept: pending files are synced before the rows that point at them commit.
        """
        with self._write_lock:
            conn = self._conn()
            if self._batch_depth == 0:
                conn.execute("BEGIN IMMEDIATE")
                self._batch_owner = threading.get_ident()
            self._batch_depth += 1
            try:
                yield
            except BaseException:
                self._batch_depth -= 1
                if self._batch_depth == 0:
                    self._flush_batch(conn, begin_again=False)
                raise
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self._flush_batch(conn, begin_again=False)

    def _flush_batch(self, conn: sqlite3.Connection, *, begin_again: bool = True) -> None:
        if self.durable and self._batch_pending:
            _sync_filesystem()
        conn.execute("COMMIT")
        events, self._batch_events = self._batch_events, []
        unlink, self._batch_unlink = self._batch_unlink, []
        self._batch_pending = 0
        if begin_again:
            conn.execute("BEGIN IMMEDIATE")
        for path in unlink:
            self._unlink_if_unreferenced(path)
        self._emit(events)

    def _unlink_if_unreferenced(self, path: Path) -> None:
        rel = str(path.relative_to(self.files_dir))
        if self._conn().execute("SELECT 1 FROM instances WHERE file = ? LIMIT 1", (rel,)).fetchone() is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # ----------------------------------------------------------------- reading
    def patients(self) -> list[Patient]:
        rows = (
            self._conn()
            .execute(
                """SELECT patient_id, patient_name, MAX(birth_date) AS birth_date, MAX(sex) AS sex,
                      COUNT(*) AS n FROM studies GROUP BY patient_id, patient_name ORDER BY patient_name"""
            )
            .fetchall()
        )
        return [Patient(r["patient_id"], r["patient_name"], r["birth_date"], r["sex"], r["n"]) for r in rows]

    _STUDY_SELECT = """
        SELECT s.*,
            (SELECT GROUP_CONCAT(DISTINCT modality) FROM series WHERE series.study_uid = s.study_uid)
                AS modalities,
            (SELECT COUNT(*) FROM series WHERE series.study_uid = s.study_uid) AS series_count,
            (SELECT COUNT(*) FROM instances WHERE instances.study_uid = s.study_uid) AS instance_count
        FROM studies s"""

    def studies(self, query: StudyQuery | None = None) -> list[Study]:
        where, args = [], []
        q = query or StudyQuery()
        for column, value in (
            ("s.patient_name", q.patient_name),
            ("s.patient_id", q.patient_id),
            ("s.accession_number", q.accession_number),
        ):
            if value:
                pattern = _wildcard_to_like(value)
                if "*" not in value and "?" not in value:
                    pattern = f"%{pattern}%"
                where.append(f"{column} LIKE ? ESCAPE '\\'")
                args.append(pattern)
        if q.text:
            pattern = f"%{_wildcard_to_like(q.text)}%"
            where.append(
                "(s.patient_name LIKE ? ESCAPE '\\' OR s.patient_id LIKE ? ESCAPE '\\' "
                "OR s.accession_number LIKE ? ESCAPE '\\' OR s.study_description LIKE ? ESCAPE '\\')"
            )
            args.extend([pattern] * 4)
        if q.date_from:
            where.append("s.study_date >= ?")
            args.append(q.date_from)
        if q.date_to:
            where.append("s.study_date != '' AND s.study_date <= ?")
            args.append(q.date_to)
        if q.modality:
            where.append("EXISTS (SELECT 1 FROM series WHERE series.study_uid = s.study_uid AND series.modality = ?)")
            args.append(q.modality.upper())
        sql = self._STUDY_SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY s.study_date DESC, s.study_time DESC, s.patient_name"
        return [_study_from_row(r) for r in self._conn().execute(sql, args).fetchall()]

    def study(self, study_uid: str) -> Study | None:
        row = self._conn().execute(self._STUDY_SELECT + " WHERE s.study_uid = ?", (study_uid,)).fetchone()
        return _study_from_row(row) if row else None

    def series_for_study(self, study_uid: str) -> list[Series]:
        rows = (
            self._conn()
            .execute(
                """SELECT se.*, (SELECT COUNT(*) FROM instances i WHERE i.series_uid = se.series_uid) AS n
               FROM series se WHERE se.study_uid = ?
               ORDER BY se.series_number IS NULL, se.series_number, se.series_description""",
                (study_uid,),
            )
            .fetchall()
        )
        return [_series_from_row(r) for r in rows]

    def series(self, series_uid: str) -> Series | None:
        row = (
            self._conn()
            .execute(
                """SELECT se.*, (SELECT COUNT(*) FROM instances i WHERE i.series_uid = se.series_uid) AS n
               FROM series se WHERE se.series_uid = ?""",
                (series_uid,),
            )
            .fetchone()
        )
        return _series_from_row(row) if row else None

    def instances_for_series(self, series_uid: str) -> list[Instance]:
        rows = (
            self._conn()
            .execute(
                """SELECT * FROM instances WHERE series_uid = ?
               ORDER BY instance_number IS NULL, instance_number, sop_instance_uid""",
                (series_uid,),
            )
            .fetchall()
        )
        return [self._instance_from_row(r) for r in rows]

    def instances_for_study(self, study_uid: str) -> list[Instance]:
        rows = (
            self._conn()
            .execute(
                """SELECT * FROM instances WHERE study_uid = ?
               ORDER BY series_uid, instance_number IS NULL, instance_number, sop_instance_uid""",
                (study_uid,),
            )
            .fetchall()
        )
        return [self._instance_from_row(r) for r in rows]

    def instance(self, sop_instance_uid: str) -> Instance | None:
        row = self._conn().execute("SELECT * FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)).fetchone()
        return self._instance_from_row(row) if row else None

    def instances_of_class(self, sop_class_prefix: str, study_uid: str | None = None) -> list[Instance]:
        sql = "SELECT * FROM instances WHERE sop_class_uid LIKE ?"
        args: list[str] = [sop_class_prefix + "%"]
        if study_uid:
            sql += " AND study_uid = ?"
            args.append(study_uid)
        return [self._instance_from_row(r) for r in self._conn().execute(sql + " ORDER BY added_at", args)]

    def counts(self) -> dict[str, int]:
        conn = self._conn()
        return {
            "studies": conn.execute("SELECT COUNT(*) FROM studies").fetchone()[0],
            "series": conn.execute("SELECT COUNT(*) FROM series").fetchone()[0],
            "instances": conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0],
        }

    def _instance_from_row(self, r: sqlite3.Row) -> Instance:
        return Instance(
            sop_instance_uid=r["sop_instance_uid"],
            series_uid=r["series_uid"],
            study_uid=r["study_uid"],
            sop_class_uid=r["sop_class_uid"],
            instance_number=r["instance_number"],
            transfer_syntax=r["transfer_syntax"],
            frames=r["frames"],
            rows=r["rows"],
            columns=r["columns"],
            path=str(self.files_dir / r["file"]),
            size=r["size"],
            sha256=r["sha256"],
        )

    # ----------------------------------------------------------------- deleting and recovery
    def delete_study(self, study_uid: str) -> int:
        """Remove a study's rows, then its files; returns the number of instances removed."""
        with self._write_lock:
            conn = self._conn()
            files = [r["file"] for r in conn.execute("SELECT file FROM instances WHERE study_uid = ?", (study_uid,))]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM instances WHERE study_uid = ?", (study_uid,))
            conn.execute("DELETE FROM series WHERE study_uid = ?", (study_uid,))
            conn.execute("DELETE FROM studies WHERE study_uid = ?", (study_uid,))
            conn.execute("COMMIT")
            for rel in files:
                self._unlink_if_unreferenced(self.files_dir / rel)
        self._emit([StoreEvent("deleted", study_uid)])
        return len(files)

    def recover(self, *, min_age_s: float = 0.0) -> RecoveryReport:
        """Clean up after a crash: temp files, files no row points at, and rows whose file is gone.

        `min_age_s` spares files younger than that, in case another process is writing right now; when no
        other process has the store open (after a crash, at start-up) there is nobody to spare and every
        leftover goes.
        """
        if min_age_s > 0 and self._only_process():
            min_age_s = 0.0
        report = RecoveryReport()
        now = time.time()
        with self._write_lock:
            for tmp in self.tmp_dir.iterdir():
                if now - tmp.stat().st_mtime >= min_age_s:
                    tmp.unlink(missing_ok=True)
                    report.removed_temp_files += 1
            conn = self._conn()
            referenced = {r[0] for r in conn.execute("SELECT file FROM instances")}
            for sub in self.files_dir.iterdir():
                if sub == self.tmp_dir or not sub.is_dir():
                    continue
                for path in sub.rglob("*"):
                    if not path.is_file():
                        continue
                    rel = str(path.relative_to(self.files_dir))
                    if rel not in referenced and now - path.stat().st_mtime >= min_age_s:
                        path.unlink(missing_ok=True)
                        report.removed_orphan_files += 1
            missing = [
                r["sop_instance_uid"]
                for r in conn.execute("SELECT sop_instance_uid, file FROM instances")
                if not (self.files_dir / r["file"]).is_file()
            ]
            report.rows_without_file = missing
        if report.removed_orphan_files or report.rows_without_file:
            log.warning(
                "store recovery: %d orphan files removed, %d rows without file",
                report.removed_orphan_files,
                len(report.rows_without_file),
            )
        return report

    def _only_process(self) -> bool:
        """True when no other process holds the store's open-lock (always False where locks are unavailable)."""
        fd = self._open_lock_fd
        if fd is None or fcntl is None:
            return False
        with self._write_lock:
            fcntl.flock(fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except OSError:
                alone = False
            fcntl.flock(fd, fcntl.LOCK_SH)
        return alone

    def integrity_problems(self) -> list[str]:
        """SQLite's own integrity check plus the store's invariants; empty when all is well."""
        conn = self._conn()
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        for r in conn.execute("SELECT sop_instance_uid, file FROM instances"):
            if not (self.files_dir / r["file"]).is_file():
                problems.append(f"instance {r['sop_instance_uid']} has no file")
        orphans = conn.execute(
            "SELECT COUNT(*) FROM series WHERE study_uid NOT IN (SELECT study_uid FROM studies)"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} series without a study")
        return problems

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free


def _study_from_row(r: sqlite3.Row) -> Study:
    return Study(
        study_uid=r["study_uid"],
        patient_id=r["patient_id"],
        patient_name=r["patient_name"],
        birth_date=r["birth_date"],
        sex=r["sex"],
        accession_number=r["accession_number"],
        study_id=r["study_id"],
        study_date=r["study_date"],
        study_time=r["study_time"],
        study_description=r["study_description"],
        referring_physician=r["referring_physician"],
        modalities=tuple(m for m in (r["modalities"] or "").split(",") if m),
        series_count=r["series_count"],
        instance_count=r["instance_count"],
    )


def _series_from_row(r: sqlite3.Row) -> Series:
    return Series(
        series_uid=r["series_uid"],
        study_uid=r["study_uid"],
        modality=r["modality"],
        series_number=r["series_number"],
        series_description=r["series_description"],
        body_part=r["body_part"],
        series_date=r["series_date"],
        series_time=r["series_time"],
        instance_count=r["n"],
        kind=r["kind"] or document_kind(""),
    )


def _ensure_meta(ds: Dataset) -> None:
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
    from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

    meta.setdefault("ImplementationClassUID", IMPLEMENTATION_CLASS_UID)
    meta.setdefault("ImplementationVersionName", IMPLEMENTATION_VERSION_NAME)


_UNDEFINED_LENGTH = 0xFFFFFFFF
_SEQUENCE_DELIMITERS = (b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xff\xfe\xe0\xdd\x00\x00\x00\x00")


def _truncation(ds: Dataset, path: Path, file_size: int) -> str:
    """Why a parsed file looks cut short ('' when it looks whole).

    pydicom reads a cut file quietly: a value cut short is returned short, an element header cut in half
    ends the dataset, an undefined-length item runs to the end of the file. So the raw elements' offsets
    are checked against the file's size, and a last undefined-length element against its delimiter.
    (Warnings are not captured: `warnings.catch_warnings` is not thread-safe, and the store is used from
    several threads.)
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
    with open(path, "rb") as fh:
        fh.seek(max(file_size - 8, 0))
        if fh.read(8) not in _SEQUENCE_DELIMITERS:
            return f"{last.tag} does not end with its sequence delimiter"
    return ""


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == 13 or "disk is full" in str(exc)  # SQLITE_FULL
    return False


def _hold_shared_lock(path: Path) -> int | None:
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        return None
    return fd


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_filesystem() -> None:
    if hasattr(os, "sync"):
        os.sync()
