"""The local study store: a SQLite index over a folder of content-addressed DICOM files.

Invariants the rest of the app relies on:

* A file is written to a temporary name, made durable, and renamed into place *before* the row that
  points at it is committed. A crash at any point leaves at worst an orphan file (removed by
  `recover`), never a row without its file.
* Stored files are named from the SHA-256 of their bytes, never from a UID or a patient name, so no
  value inside a received object can choose a path.
* `add_indexed(..., sync=False)` (the Storage SCP's default) keeps the write-then-commit order but leaves
  the fsyncs to a group sync of the whole store (`sync_pending`, run within `GROUP_SYNC_S` and when an
  association ends). After a power cut, `recover` checks every row added since the last group sync
  against its file and drops the rows whose file did not reach the disk.
* The same SOP Instance UID arriving again with the same bytes is a duplicate and is skipped; with
  different bytes the newer copy replaces the older one and the replacement is logged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import re
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

from viewer.core.header_scan import HeaderScan, scan_part10
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
# Files up to this size are read whole into memory to be scanned, hashed and written in one pass; larger
# ones are copied in chunks and parsed by pydicom.
_SCAN_LIMIT = 16 << 20

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
    """A copied, hashed and checked object waiting for `StudyStore.commit_prepared`.

    Its file is already at its content-addressed place (`existed`: it was there before, from an identical
    object), so committing is only the index row; until then no row points at it.
    """

    entry: IndexEntry
    path: Path
    sha: str
    size: int
    synced: bool
    existed: bool


@dataclass
class RecoveryReport:
    removed_temp_files: int = 0
    removed_orphan_files: int = 0
    rows_without_file: list[str] = field(default_factory=list)
    # Rows added after the last group sync whose file did not reach the disk whole (power cut): removed.
    rows_lost_unsynced: list[str] = field(default_factory=list)


_UNSAFE_UID_CHARS = re.compile(r"[/\\\x00-\x1f]")


def check_uid(name: str, value: str) -> None:
    """Refuse UIDs that could never be UIDs, whatever they would be used for."""
    if len(value) > 64:
        raise InvalidObjectError(f"{name} is longer than 64 characters")
    if ".." in value or _UNSAFE_UID_CHARS.search(value):
        raise InvalidObjectError(f"{name} contains characters a UID cannot have")


def _wildcard_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class StudyStore:
    """Thread-safe store; one instance per data folder per process."""

    GROUP_SYNC_S = 1.0

    def __init__(self, root: Path | str, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.files_dir = self.root / "files"
        self.tmp_dir = self.files_dir / ".tmp"
        self.db_path = self.root / "index.sqlite3"
        self.durable = durable
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._made_dirs: set[Path] = set()
        self._recent_rows: dict[tuple[str, str], Study | Series] = {}
        if not (self.files_dir / "ff").is_dir():
            for prefix in range(256):
                (self.files_dir / f"{prefix:02x}").mkdir(exist_ok=True)
        self._made_dirs.update(self.files_dir / f"{prefix:02x}" for prefix in range(256))
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._listeners: list[Callable[[StoreEvent], None]] = []
        self._batch_depth = 0
        self._batch_owner: int | None = None
        self._batch_pending = 0
        self._batch_events: list[StoreEvent] = []
        self._batch_unlink: list[Path] = []
        self._batch_release_cache = False
        self._batch_files: list[Path] = []
        self._sync_lock = threading.Lock()
        self._unsynced = False
        self._sync_timer: threading.Timer | None = None
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
    def _conn(self, *, deferred_sync: bool = False) -> sqlite3.Connection:
        """This thread's connection; `deferred_sync` gives one whose commits leave the fsync to `sync_pending`."""
        name = "conn_deferred" if deferred_sync else "conn"
        conn = getattr(self._local, name, None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            full = self.durable and not deferred_sync
            conn.execute("PRAGMA synchronous=FULL" if full else "PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            setattr(self._local, name, conn)
        return conn

    def close(self) -> None:
        # Marking on every clean close keeps the after-a-crash check down to what this session added.
        self.sync_pending(mark_anyway=self._has_sync_mark())
        for name in ("conn", "conn_deferred"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)

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

    def add_indexed(self, data: bytes, entry: IndexEntry, *, source: str = "", sync: bool = True) -> AddResult:
        """Store a whole Part 10 file whose index entry the caller has already read from these bytes.

        The Storage SCP's path: its header scan has checked the data set, so nothing is parsed again. With
        `sync` False the file and row are still written in the safe order, but the fsyncs wait for the
        group sync (`sync_pending`) instead of delaying the caller.
        """
        sync = self._received_sync(sync)
        self._check_entry(entry)
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            _write_chunks(tmp, [data], sync=sync)
            return self._commit(entry, tmp, hashlib.sha256(data).hexdigest(), len(data), source, sync=sync)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _received_sync(self, sync: bool) -> bool:
        return (sync or os.name != "posix") and self.durable  # elsewhere there is no syncfs to defer to

    def incoming(self) -> IncomingFile:
        """A new file in the store's temp folder for an object too large to hold in memory while it arrives."""
        return IncomingFile(self.tmp_dir / f"{uuid.uuid4().hex}.part")

    def add_incoming(
        self, incoming: IncomingFile, scan: HeaderScan | None, *, source: str = "", sync: bool = True
    ) -> AddResult:
        """Store a whole Part 10 file written through `incoming` (see `add_indexed` for `sync`).

        `scan` is the caller's `header_scan.scan_file` of it; without one the file is parsed by pydicom.
        """
        sync = self._received_sync(sync)
        try:
            incoming.close()
            sha, size = incoming.digest.hexdigest(), incoming.size
            if scan is not None:
                if scan.truncation:
                    raise InvalidObjectError(f"file is incomplete: {scan.truncation}")
                self._check_entry(scan.entry)
                entry = scan.entry
            else:
                entry, _, sha, size = self._parse_and_normalise(incoming.path, sha, size)
            if sync:
                with open(incoming.path, "rb+") as fh:
                    os.fsync(fh.fileno())
            return self._commit(entry, incoming.path, sha, size, source, sync=sync)
        finally:
            incoming.discard()

    def sync_pending(self, *, mark_anyway: bool = False) -> None:
        """Make everything added with `sync=False` durable, and record up to when that holds."""
        with self._sync_lock:
            if not self._unsynced and not mark_anyway:
                return
            self._unsynced = False
            timer, self._sync_timer = self._sync_timer, None
        if timer is not None:
            timer.cancel()
        mark = time.time()
        _sync_filesystem_of(self.root)
        conn = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('synced_until', ?)", (repr(mark),))
        finally:
            conn.close()

    def _has_sync_mark(self) -> bool:
        row = self._conn().execute("SELECT 1 FROM meta WHERE key = 'synced_until'").fetchone()
        return row is not None

    def _note_unsynced(self) -> None:
        with self._sync_lock:
            self._unsynced = True
            if self._sync_timer is None:
                timer = threading.Timer(self.GROUP_SYNC_S, self._sync_from_timer)
                timer.daemon = True
                self._sync_timer = timer
                timer.start()

    def _sync_from_timer(self) -> None:
        with self._sync_lock:
            self._sync_timer = None
        try:
            self.sync_pending()
        except (OSError, sqlite3.Error) as exc:
            log.error("group sync of received instances failed: %s", exc)

    def prepare_stream(self, src: BinaryIO, *, will_commit_in_batch: bool = False) -> PreparedObject:
        """First half of an add, safe to run on many threads at once: copy, hash, parse and check.

        Nothing is visible until `commit_prepared` (or the prepared object is discarded). With
        `will_commit_in_batch` the per-file fsync is left to the batch, which syncs before it commits.
        """
        synced = self.durable and not will_commit_in_batch
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            entry, sha, size = self._write_and_index(src, tmp, sync=synced)
            # Moving the file into place here, on the preparing thread, keeps the committing thread to the
            # index alone. A file nobody indexes (a crash, a discard) is an orphan `recover` removes.
            final, existed = self._place(tmp, sha)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return PreparedObject(entry, final, sha, size, synced=synced, existed=existed)

    def commit_prepared(self, prepared: PreparedObject, *, source: str = "") -> AddResult:
        """Second half of an add: index the prepared file (or find it a duplicate)."""
        if self.durable and not prepared.synced and not self._in_own_batch():
            with open(prepared.path, "rb+") as fh:
                os.fsync(fh.fileno())
        return self._commit(
            prepared.entry, prepared.path, prepared.sha, prepared.size, source, placed=True, existed=prepared.existed
        )

    def discard_prepared(self, prepared: PreparedObject) -> None:
        """Drop a prepared object that will not be committed (cancel, disk full)."""
        if not prepared.existed:
            with self._write_lock:
                self._unlink_if_unreferenced(prepared.path)

    def _place(self, tmp: Path, sha: str) -> tuple[Path, bool]:
        """Rename a written temp file to its content-addressed name; True when that name was already there."""
        final = self._final_path(sha)
        existed = final.exists()
        with _full_disk_is_store_full():
            if final.parent not in self._made_dirs:  # a mkdir per file costs more than the insert
                final.parent.mkdir(parents=True, exist_ok=True)
                self._made_dirs.add(final.parent)
            try:
                os.replace(tmp, final)
            except FileNotFoundError:  # the folder was removed behind our back: make it again
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
        return final, existed

    def _add_stream(self, src: BinaryIO, *, source: str) -> AddResult:
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            entry, sha, size = self._write_and_index(src, tmp, sync=None)
            return self._commit(entry, tmp, sha, size, source)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _write_and_index(self, src: BinaryIO, tmp: Path, *, sync: bool | None) -> tuple[IndexEntry, str, int]:
        """Copy `src` to `tmp` and read its index entry; the temp file may be rewritten (see below)."""
        if sync is None:
            sync = self.durable and not self._in_own_batch()
        head = src.read(_SCAN_LIMIT + 1)
        if len(head) <= _SCAN_LIMIT:
            # Whole in memory: one pass for hash and write, and the header scanner instead of pydicom, which
            # costs several times more than reading the file. Anything the scanner declines takes the
            # pydicom path below, from the same bytes.
            scan = scan_part10(head)
            if scan is not None:
                if scan.truncation:
                    raise InvalidObjectError(f"file is incomplete: {scan.truncation}")
                self._check_entry(scan.entry)
                _write_chunks(tmp, [head], sync=sync)
                return scan.entry, hashlib.sha256(head).hexdigest(), len(head)
            src = DicomBytesIO(head)
        else:
            src = ChainedStream(head, src)
        sha, size = self._copy_hashing(src, tmp, sync)
        entry, _, sha, size = self._parse_and_normalise(tmp, sha, size)
        return entry, sha, size

    def _copy_hashing(self, src: BinaryIO, tmp: Path, sync: bool) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0

        def hashed_chunks() -> Iterator[bytes]:
            nonlocal size
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        _write_chunks(tmp, hashed_chunks(), sync=sync)
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
        StudyStore._check_entry(entry)
        return entry

    @staticmethod
    def _check_entry(entry: IndexEntry) -> None:
        for name, value in (
            ("SOP Instance UID", entry.instance.sop_instance_uid),
            ("SOP Class UID", entry.instance.sop_class_uid),
            ("Series Instance UID", entry.series.series_uid),
            ("Study Instance UID", entry.study.study_uid),
        ):
            if not value:
                raise InvalidObjectError(f"missing {name}")
            check_uid(name, value)

    def _final_path(self, sha: str) -> Path:
        # One level of 256 folders, made when the store is opened: creating folders as files arrive cost as
        # much as writing the file. (Stores from before keep their two-level paths; rows hold each path.)
        return self.files_dir / sha[:2] / sha

    def _commit(
        self,
        entry: IndexEntry,
        tmp: Path,
        sha: str,
        size: int,
        source: str,
        *,
        sync: bool | None = None,
        placed: bool = False,
        existed: bool = False,
    ) -> AddResult:
        """Index one object. Its file is at `tmp`, or with `placed` already at its final name (`existed`:
        that name was there before)."""
        inst = entry.instance
        sync = self.durable if sync is None else sync
        deferred = self.durable and not sync and self._batch_depth == 0
        final = self._final_path(sha)
        with self._write_lock:
            conn = self._conn(deferred_sync=deferred)
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
                if placed and not existed and row["file"] != str(final.relative_to(self.files_dir)):
                    self._unlink_if_unreferenced(final)  # the stored copy lives under an older layout's name
                return AddResult(AddStatus.DUPLICATE, *list(result.__dict__.values())[1:])
            if not placed:
                final, existed = self._place(tmp, sha)
            elif not final.exists():
                # Placed before we held the lock, then removed with a study deleted meanwhile that held the
                # same content: the bytes are gone, so this one object has to be imported again.
                raise StoreError("the file was removed while it was being imported; import it again")
            old_file: Path | None = None
            if row is not None:
                old_file = self.files_dir / row["file"]
                log.warning(
                    "instance %s received again with different content; keeping the newer copy",
                    inst.sop_instance_uid,
                )
                result = AddResult(AddStatus.REPLACED, *list(result.__dict__.values())[1:])
            if self._batch_depth == 0:
                if sync:
                    _fsync_dir(final.parent)
                conn.execute("BEGIN IMMEDIATE")
            try:
                self._upsert(conn, entry, final, sha, size, source)
                if self._batch_depth == 0:
                    conn.execute("COMMIT")
            except Exception as exc:
                self._recent_rows.clear()
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
            if deferred:
                self._note_unsynced()
            event = StoreEvent(
                "replaced" if row is not None else "added",
                inst.study_uid,
                inst.series_uid,
                inst.sop_instance_uid,
                source,
            )
            if self._batch_depth:
                self._batch_pending += 1
                if self._batch_release_cache:
                    self._batch_files.append(final)
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
        try:
            self._upsert_rows(conn, entry, final, sha, size, source)
        except sqlite3.IntegrityError:
            # The study or series row we remembered writing was deleted (by another process): write it again.
            self._recent_rows.clear()
            self._upsert_rows(conn, entry, final, sha, size, source)

    def _upsert_rows(
        self, conn: sqlite3.Connection, entry: IndexEntry, final: Path, sha: str, size: int, source: str
    ) -> None:
        st, se, inst = entry.study, entry.series, entry.instance
        now = time.time()
        # Instances of one series arrive together; their study and series rows are written once, not per
        # instance (the same values again would change nothing).
        if self._recent_rows.get(("study", st.study_uid)) != st:
            self._write_study_row(conn, st, now)
            self._remember(("study", st.study_uid), st)
        if self._recent_rows.get(("series", se.series_uid)) != se:
            self._write_series_row(conn, se)
            self._remember(("series", se.series_uid), se)
        self._write_instance_row(conn, inst, final, sha, size, source, now)

    def _remember(self, key: tuple[str, str], row: Study | Series) -> None:
        if len(self._recent_rows) >= 256:
            self._recent_rows.clear()
        self._recent_rows[key] = row

    def _write_study_row(self, conn: sqlite3.Connection, st: Study, now: float) -> None:
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

    def _write_series_row(self, conn: sqlite3.Connection, se: Series) -> None:
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

    def _write_instance_row(
        self, conn: sqlite3.Connection, inst: Instance, final: Path, sha: str, size: int, source: str, now: float
    ) -> None:
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
    def batch(self, *, release_cache: bool = False) -> Iterator[None]:
        """Group many adds into few transactions (bulk import): one sync and commit per 500.

        Pending files are synced before the rows that point at them commit. With `release_cache` (imports)
        the synced files are then dropped from the page cache: a CD's worth of new files should not push
        what the user is viewing out of memory, and writing into pages just freed is several times cheaper
        than into pages the system has never used (on virtual machines above all).
        """
        with self._write_lock:
            conn = self._conn()
            if self._batch_depth == 0:
                conn.execute("BEGIN IMMEDIATE")
                self._batch_owner = threading.get_ident()
                self._batch_release_cache = release_cache
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
        synced = False
        if self.durable and self._batch_pending:
            _sync_filesystem_of(self.root)
            synced = True
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            self._recent_rows.clear()
            raise
        files, self._batch_files = self._batch_files, []
        if synced and self._batch_release_cache:
            _release_page_cache(files)
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
            self._recent_rows.clear()
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
            report.rows_lost_unsynced = self._drop_rows_lost_unsynced(conn, set(missing))
        if self._has_sync_mark():
            self.sync_pending(mark_anyway=True)  # what was just checked need not be checked again
        if report.removed_orphan_files or report.rows_without_file or report.rows_lost_unsynced:
            log.warning(
                "store recovery: %d orphan files removed, %d rows without file, %d instances received just before "
                "a power cut removed (their files did not reach the disk; retrieve them again)",
                report.removed_orphan_files,
                len(report.rows_without_file),
                len(report.rows_lost_unsynced),
            )
        return report

    def _drop_rows_lost_unsynced(self, conn: sqlite3.Connection, missing: set[str]) -> list[str]:
        """Rows added after the last group sync whose file is not whole: a power cut beat the sync."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'synced_until'").fetchone()
        if row is None:
            return []  # nothing was ever added without its own sync
        lost: list[tuple[str, str]] = []
        # Only received instances (Storage SCP, C-GET) are added without their own sync (see `add_indexed`).
        recent = (
            "SELECT sop_instance_uid, file, size, sha256 FROM instances"
            " WHERE added_at >= ? AND (source LIKE 'scp:%' OR source LIKE 'get:%')"
        )
        for r in conn.execute(recent, (float(row[0]),)):
            path = self.files_dir / r["file"]
            if r["sop_instance_uid"] in missing:
                lost.append((r["sop_instance_uid"], r["file"]))
                continue
            try:
                with open(path, "rb") as fh:
                    whole = self._rehash(fh) == (r["sha256"], r["size"])
            except OSError:
                whole = False
            if not whole:
                lost.append((r["sop_instance_uid"], r["file"]))
        if lost:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM instances WHERE sop_instance_uid = ?", [(uid,) for uid, _ in lost])
            conn.execute("COMMIT")
            for _, rel in lost:
                self._unlink_if_unreferenced(self.files_dir / rel)
        return [uid for uid, _ in lost]

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


class IncomingFile:
    """A file being written into the store's temp folder, hashed as it is written (a large object is not
    read back for that); `StudyStore.add_incoming` stores it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        with _full_disk_is_store_full():
            self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115  (closed by close/discard)

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None, "already closed"
        with _full_disk_is_store_full():
            self._file.write(data)
        self.digest.update(data)
        self.size += len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close and remove the temp file (after `add_incoming` has moved it into place, nothing is left)."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class ChainedStream(io.RawIOBase):
    """A read-only stream that replays bytes already read (a sniffed head) before the rest of a stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._rest.read(size - len(data))
            return data
        return self._rest.read(size)

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def _full_disk_is_store_full() -> Iterator[None]:
    """A write that fails for want of space becomes `StoreFullError`, the message the user sees."""
    try:
        yield
    except OSError as exc:
        if _is_disk_full(exc):
            raise StoreFullError("the disk holding the study store is full") from exc
        raise


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


def _write_chunks(path: Path, chunks: Iterable[bytes | memoryview], *, sync: bool) -> None:
    """Write a new file, fsynced when asked; a full disk becomes `StoreFullError`."""
    with _full_disk_is_store_full(), open(path, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
        if sync:
            out.flush()
            os.fsync(out.fileno())


def _release_page_cache(paths: Iterable[Path]) -> None:
    """Drop synced files' pages from the page cache (they are read back from disk when next viewed)."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


_LIBC: object = None


def _sync_filesystem_of(path: Path) -> None:
    """syncfs(2) on the filesystem holding `path` (just that one, unlike sync), else a full sync."""
    global _LIBC
    if os.name == "posix":
        try:
            import ctypes

            if _LIBC is None:
                _LIBC = ctypes.CDLL(None, use_errno=True)
            fd = os.open(path, os.O_RDONLY)
            try:
                if _LIBC.syncfs(fd) == 0:  # type: ignore[attr-defined]
                    return
            finally:
                os.close(fd)
        except (OSError, AttributeError):
            pass
    if hasattr(os, "sync"):
        os.sync()
