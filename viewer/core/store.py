"""The local study store: a SQLite index over a folder of content-addressed DICOM files.

`StudyStore` is the facade: connections, locks, transactions, the order of writes, recovery. The rows and
the schema are `viewer.core.catalog`'s; the file primitives (private files, syncs, temp files made ahead,
the journal) are `viewer.core.blobs`'s; what may enter is `viewer.core.ingest`'s.

Invariants the rest of the app relies on:

* A file is written to a temporary name, made durable, and renamed into place *before* the row that
  points at it is committed. A crash at any point leaves at worst an orphan file (removed by
  `recover`), never a row without its file.
* Stored files are named from the SHA-256 of their bytes, never from a UID or a patient name, so no
  value inside a received object can choose a path.
* `add_checked(..., sync=False)` (the Storage SCP's default) keeps the write-then-commit order but leaves
  the fsyncs to a group sync of the whole store (`sync_pending`, run within `GROUP_SYNC_S` and when an
  association ends); such rows are marked `unsynced`. After a power cut, `recover` checks every marked row
  added since the last group sync against its file and drops the rows whose file did not reach the disk.
* Rows for objects added that way are committed in groups (`GROUP_COMMIT_MAX` or `GROUP_COMMIT_S`, and
  before an association's release is answered): one SQLite transaction per instance cost as much as the
  rest of storing it. Each grouped file is listed in this process's journal (`journal/`) before the add
  returns, so an instance answered Success survives the process being killed before its group commits:
  `recover` indexes what a journal lists and no row points at (after checking the bytes against the name).
* Recovery runs only in a process that holds the store exclusively (an OS lock on `.open.lock`, which every
  open store holds shared): never while another Lightbox process may be writing.
* What enters is checked by `viewer.core.ingest` (refusals are `ingest.Refused`); the store only stores.
* The same SOP Instance UID arriving again with the same bytes is a duplicate and is skipped. With
  different bytes the stored copy is kept (`AddStatus.KEPT`, as Orthanc does by default) unless the caller
  passes `replace=True` (a peer allowed to send corrections); a replaced copy is moved under `replaced/`
  with a row in the `replaced` table, never deleted. A copy that is the stored one cut short never
  replaces it, and an instance naming another patient than its study's row is refused.
* Everything under the store's root is readable by the user alone (0700 folders, 0600 files), whatever
  the umask: it is patient data.
"""

from __future__ import annotations

import contextlib
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

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite

from viewer.core import catalog, ingest
from viewer.core.blobs import (
    FILE_MODE,
    ChainedStream,
    IncomingFile,
    Journal,
    SpareFiles,
    StoreFullError,
    close_quietly,
    fsync_dir,
    full_disk_is_store_full,
    hold_shared_lock,
    is_disk_full,
    private_dir,
    private_file,
    release_page_cache,
    sync_filesystem_of,
    write_chunks,
    write_chunks_to,
)
from viewer.core.catalog import StudyQuery
from viewer.core.errors import StoreError
from viewer.core.ingest import Checked, PatientConflict, Refused
from viewer.core.model import (
    IndexEntry,
    Instance,
    Patient,
    Series,
    Study,
)
from viewer.core.uids import uid_problem

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Files up to this size are read whole into memory to be checked, hashed and written in one pass; larger
# ones are copied in chunks, then checked from the copy.
_SCAN_LIMIT = 16 << 20

class AddStatus(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"  # the same bytes were already stored
    REPLACED = "replaced"  # a correction replaced the stored copy (kept under replaced/)
    KEPT = "kept"  # different bytes under a stored SOP Instance UID: the stored copy was kept


@dataclass(frozen=True)
class AddResult:
    status: AddStatus
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    sop_class_uid: str
    path: Path


# What ingest refuses, under the names the store's callers have always caught.
NotDicomError = ingest.NotDicom
InvalidObjectError = ingest.Refused


@dataclass(frozen=True)
class StoreEvent:
    kind: str  # "added", "replaced" or "deleted"
    study_uid: str
    series_uid: str = ""
    sop_instance_uid: str = ""
    source: str = ""  # what the add was called with ("scp:AE", "file:name"), so listeners can tell apart


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


@dataclass(frozen=True)
class _GroupedAdd:
    """An object whose file is in place and listed in the journal, its row waiting for the group commit."""

    entry: IndexEntry
    final: Path
    sha: str
    size: int
    source: str


@dataclass
class RecoveryReport:
    removed_temp_files: int = 0
    removed_orphan_files: int = 0
    rows_without_file: list[str] = field(default_factory=list)
    # Rows added after the last group sync whose file did not reach the disk whole (power cut): removed.
    rows_lost_unsynced: list[str] = field(default_factory=list)
    # Another Lightbox process had the store open: nothing was looked at (it may be writing right now).
    skipped: bool = False
    replaced_files_restored: int = 0
    # Objects answered Success whose group commit a killed process never made, indexed from its journal.
    indexed_from_journal: int = 0


def check_uid(name: str, value: str) -> None:
    """Refuse what PS3.5 §9.1 says can never be a UID (`viewer.core.uids`)."""
    problem = uid_problem(value, name)
    if problem:
        raise ingest.InvalidUid(problem)


class StudyStore:
    """Thread-safe store; one instance per data folder per process."""

    GROUP_SYNC_S = 1.0
    GROUP_COMMIT_S = 0.05
    GROUP_COMMIT_MAX = 64

    def __init__(self, root: Path | str, *, durable: bool = True, max_object_bytes: int | None = None) -> None:
        self.root = Path(root)
        # The largest object taken in, checked after a deflated data set is inflated too (None: ingest's default).
        self.max_object_bytes = max_object_bytes
        self.files_dir = self.root / "files"
        self.tmp_dir = self.files_dir / ".tmp"
        self.spare_dir = self.files_dir / ".spare"  # `SpareFiles`: temp files made ahead, in subfolders
        self.replaced_dir = self.root / "replaced"
        self.journal_dir = self.root / "journal"
        self.db_path = self.root / "index.sqlite3"
        self.durable = durable
        for folder in (self.root, self.files_dir, self.tmp_dir, self.spare_dir, self.replaced_dir, self.journal_dir):
            private_dir(folder)
        self._made_dirs: set[str] = set()
        # The hot path (one received instance) works on strings: pathlib's parsing cost more than the rename.
        self._files_s = os.fspath(self.files_dir)
        self._tmp_s = os.fspath(self.tmp_dir)
        self._spare_files = SpareFiles(os.fspath(self.spare_dir))
        self._recent_rows: dict[tuple[str, str], Study | Series] = {}
        if not (self.files_dir / "ff").is_dir() or (self.files_dir / "ff").stat().st_mode & 0o077:
            for prefix in range(256):
                private_dir(self.files_dir / f"{prefix:02x}")
        self._made_dirs.update(f"{prefix:02x}" for prefix in range(256))
        # SQLite gives its -wal and -shm files the database file's permissions: create that one private.
        private_file(self.db_path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._listeners: list[Callable[[StoreEvent], None]] = []
        self._batch_depth = 0
        self._batch_owner: int | None = None
        self._batch_pending = 0
        self._batch_events: list[StoreEvent] = []
        self._batch_retire: list[tuple[Path, str]] = []
        self._batch_new_files: list[Path] = []
        self._batch_release_cache = False
        self._batch_files: list[Path] = []
        self._sync_lock = threading.Lock()
        self._unsynced = False
        self._sync_timer: threading.Timer | None = None
        # Grouped index commits (see the module docstring); all under `_write_lock`.
        self._group: list[_GroupedAdd] = []
        self._group_by_uid: dict[str, _GroupedAdd] = {}
        self._group_studies: dict[str, Study] = {}
        self._group_series: dict[str, Series] = {}
        self._group_timer: threading.Timer | None = None
        self._group_conn: sqlite3.Connection | None = None  # whichever thread commits a group uses this one
        self._journal = Journal(
            os.path.join(os.fspath(self.journal_dir), f"{os.getpid()}-{uuid.uuid4().hex[:12]}.journal")
        )
        # Every process with the store open holds a shared lock on this file for as long as it has it open,
        # so `recover` can tell whether anyone else might be writing temp files right now.
        self._open_lock_fd = hold_shared_lock(self.root / ".open.lock")
        self._lock_finalizer = (
            weakref.finalize(self, close_quietly, self._open_lock_fd) if self._open_lock_fd is not None else None
        )
        with self._write_lock:
            catalog.create_or_migrate(self._conn())
        for name in ("index.sqlite3-wal", "index.sqlite3-shm"):
            with contextlib.suppress(OSError):
                os.chmod(self.root / name, FILE_MODE)  # made by an older version under the umask

    # ----------------------------------------------------------------- connections and events
    def _conn(self, *, deferred_sync: bool = False) -> sqlite3.Connection:
        """This thread's connection; `deferred_sync` gives one whose commits leave the fsync to `sync_pending`."""
        name = "conn_deferred" if deferred_sync else "conn"
        conn = getattr(self._local, name, None)
        if conn is None:
            conn = self._new_connection(deferred_sync=deferred_sync)
            setattr(self._local, name, conn)
        return conn

    def _new_connection(self, *, deferred_sync: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        full = self.durable and not deferred_sync
        conn.execute("PRAGMA synchronous=FULL" if full else "PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def release_spare_files(self) -> None:
        """Remove the temp files made ahead for received objects (a Storage SCP stopping; see `SpareFiles`)."""
        self._spare_files.release()

    def close(self) -> None:
        self._spare_files.close()
        # Marking on every clean close keeps the after-a-crash check down to what this session added.
        self.sync_pending(mark_anyway=self._has_sync_mark())
        self._close_journal()
        for name in ("conn", "conn_deferred"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)
        # Closed is closed: another process may now hold the store alone (and recover it).
        self._open_lock_fd = None
        if self._lock_finalizer is not None:
            self._lock_finalizer()  # closes the lock's file once (and never again at garbage collection)

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
    def add_file(self, path: Path | str, *, source: str = "", replace: bool = False) -> AddResult:
        """Copy a DICOM file into the store (the source is never modified or moved)."""
        with open(path, "rb") as src:
            return self._add_stream(src, source=source or f"file:{Path(path).name}", replace=replace)

    def add_bytes(self, data: bytes, *, source: str = "", replace: bool = False) -> AddResult:
        """Store an encoded DICOM file (preamble + meta, or a bare dataset that gets a meta added)."""
        checked = ingest.check_part10(data, max_bytes=self.max_object_bytes)
        return self.add_checked(checked, data, source=source, replace=replace)

    def add_stream(self, src: BinaryIO, *, source: str = "", replace: bool = False) -> AddResult:
        """Store an encoded DICOM file read from an open binary stream (e.g. a ZIP member), without buffering it."""
        return self._add_stream(src, source=source, replace=replace)

    def add_dataset(self, ds: Dataset, *, source: str = "", replace: bool = False) -> AddResult:
        """Encode and store a dataset (its `file_meta` must name the transfer syntax it is encoded in)."""
        buffer = DicomBytesIO()
        ingest.ensure_meta(ds)
        dcmwrite(buffer, ds, enforce_file_format=True)
        return self.add_bytes(buffer.getvalue(), source=source, replace=replace)

    def add_indexed(self, data: bytes, entry: IndexEntry, *, source: str = "", sync: bool = True) -> AddResult:
        """Store a whole Part 10 file whose index entry the caller has already read from these bytes."""
        ingest.check_entry(entry)
        checked = Checked(entry, hashlib.sha256(data).hexdigest(), len(data), entry.instance.transfer_syntax, True)
        return self.add_checked(checked, data, source=source, sync=sync)

    def add_checked(
        self,
        checked: Checked,
        data: bytes | bytearray | memoryview | None = None,
        *,
        source: str = "",
        sync: bool = True,
        replace: bool = False,
    ) -> AddResult:
        """Store an object `viewer.core.ingest` checked: its `chunks`, else `data` (the bytes it checked).

        The Storage SCP's path: nothing is parsed again. With `sync` False the file and row are still
        written in the safe order, but the fsyncs wait for the group sync (`sync_pending`) instead of
        delaying the caller; the row is marked `unsynced` until then.
        """
        sync = self._received_sync(sync)
        chunks = checked.chunks if checked.chunks is not None else (data,)
        assert all(chunk is not None for chunk in chunks), "no bytes to store"
        tmp, fd = self._spare_files.take()
        moved = False
        try:
            write_chunks_to(fd, chunks, sync=sync)  # type: ignore[arg-type]
            result = self._commit(checked, tmp, source, sync=sync, replace=replace, grouped=True)
            # Added or replaced: the temp file was renamed into place (no unlink that can only fail).
            moved = result.status in (AddStatus.ADDED, AddStatus.REPLACED)
            return result
        finally:
            if not moved:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _received_sync(self, sync: bool) -> bool:
        return (sync or os.name != "posix") and self.durable  # elsewhere there is no syncfs to defer to

    def incoming(self) -> IncomingFile:
        """A new file in the store's temp folder for an object too large to hold in memory while it arrives."""
        return IncomingFile(self.tmp_dir / f"{uuid.uuid4().hex}.part")

    def add_incoming(
        self, incoming: IncomingFile, checked: Checked, *, source: str = "", sync: bool = True, replace: bool = False
    ) -> AddResult:
        """Store a whole Part 10 file written through `incoming` and checked by `ingest.check_received_file`
        (see `add_checked` for `sync`)."""
        sync = self._received_sync(sync)
        try:
            incoming.close()
            if sync:
                with open(incoming.path, "rb+") as fh:
                    os.fsync(fh.fileno())
            return self._commit(checked, incoming.path, source, sync=sync, replace=replace)
        finally:
            incoming.discard()

    def sync_pending(self, *, mark_anyway: bool = False) -> None:
        """Make everything added with `sync=False` durable, and record up to when that holds."""
        self.commit_received()
        with self._sync_lock:
            if not self._unsynced and not mark_anyway:
                return
            self._unsynced = False
            timer, self._sync_timer = self._sync_timer, None
        if timer is not None:
            timer.cancel()
        mark = time.time()
        sync_filesystem_of(self.root)
        conn = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('synced_until', ?)", (repr(mark),))
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            # The files are synced; only the mark is missing, so recovery checks a few more rows. Safe.
            log.warning("disk full: could not record the group sync mark")
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
        """First half of an add, safe to run on many threads at once: check, copy and hash.

        Nothing is visible until `commit_prepared` (or the prepared object is discarded). With
        `will_commit_in_batch` the per-file fsync is left to the batch, which syncs before it commits.
        """
        synced = self.durable and not will_commit_in_batch
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            checked = self._write_checked(src, tmp, sync=synced)
            # Moving the file into place here, on the preparing thread, keeps the committing thread to the
            # index alone. A file nobody indexes (a crash, a discard) is an orphan `recover` removes.
            final, existed = self._place(tmp, checked.sha256)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return PreparedObject(checked.entry, final, checked.sha256, checked.size, synced=synced, existed=existed)

    def commit_prepared(self, prepared: PreparedObject, *, source: str = "", replace: bool = False) -> AddResult:
        """Second half of an add: index the prepared file (or find it a duplicate, or keep the stored copy)."""
        if self.durable and not prepared.synced and not self._in_own_batch():
            with open(prepared.path, "rb+") as fh:
                os.fsync(fh.fileno())
        checked = Checked(prepared.entry, prepared.sha, prepared.size, prepared.entry.instance.transfer_syntax, True)
        try:
            return self._commit(checked, prepared.path, source, placed=True, existed=prepared.existed, replace=replace)
        except Refused:
            self.discard_prepared(prepared)
            raise

    def discard_prepared(self, prepared: PreparedObject) -> None:
        """Drop a prepared object that will not be committed (cancel, disk full)."""
        if not prepared.existed:
            with self._write_lock:
                self._unlink_if_unreferenced(prepared.path)

    def _place(self, tmp: Path | str, sha: str, final: Path | None = None) -> tuple[Path, bool]:
        """Rename a written temp file to its content-addressed name; True when that name was already there."""
        final = final or self._final_path(sha)
        final_s = os.path.join(self._files_s, sha[:2], sha)
        existed = os.path.exists(final_s)
        with full_disk_is_store_full():
            if sha[:2] not in self._made_dirs:  # a mkdir per file costs more than the insert
                private_dir(final.parent)
                self._made_dirs.add(sha[:2])
            try:
                os.replace(tmp, final_s)
            except FileNotFoundError:  # the folder was removed behind our back: make it again
                private_dir(final.parent)
                os.replace(tmp, final_s)
        return final, existed

    def _add_stream(self, src: BinaryIO, *, source: str, replace: bool = False) -> AddResult:
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            checked = self._write_checked(src, tmp, sync=None)
            return self._commit(checked, tmp, source, replace=replace)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _write_checked(self, src: BinaryIO, tmp: Path, *, sync: bool | None) -> Checked:
        """Check `src` (`viewer.core.ingest`) and write what is to be stored to `tmp`: one read, one hash pass,
        one write. A small object is checked before anything is written; a large one is copied, then checked
        from the copy (and refused from its first bytes when those cannot start a DICOM object)."""
        if sync is None:
            sync = self.durable and not self._in_own_batch()
        head = src.read(_SCAN_LIMIT + 1)
        if len(head) <= _SCAN_LIMIT:
            checked = ingest.check_part10(head, max_bytes=self.max_object_bytes)
            write_chunks(tmp, checked.chunks or (head,), sync=sync)
            return checked
        problem = ingest.head_problem(head[:140])
        if problem:
            raise (ingest.Unreadable if head[128:132] == b"DICM" else ingest.NotDicom)(problem)
        sha, size = self._copy_hashing(ChainedStream(head, src), tmp, sync)
        del head
        checked = ingest.check_file(tmp, sha256=sha, size=size, max_bytes=self.max_object_bytes)
        if checked.chunks is not None:  # rewritten as Part 10 (no preamble or no meta)
            write_chunks(tmp, checked.chunks, sync=sync)
        return checked

    def _copy_hashing(self, src: BinaryIO, tmp: Path, sync: bool) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0

        def hashed_chunks() -> Iterator[bytes]:
            nonlocal size
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        write_chunks(tmp, hashed_chunks(), sync=sync)
        return digest.hexdigest(), size

    @staticmethod
    def _rehash(fh: BinaryIO) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    @staticmethod
    def _check_entry(entry: IndexEntry) -> None:
        ingest.check_entry(entry)

    def _final_path(self, sha: str) -> Path:
        # One level of 256 folders, made when the store is opened: creating folders as files arrive cost as
        # much as writing the file. (Stores from before keep their two-level paths; rows hold each path.)
        return Path(os.path.join(self._files_s, sha[:2], sha))

    @staticmethod
    def _final_rel(sha: str) -> str:
        """`_final_path` relative to files/, as rows hold it (what str(path.relative_to(files_dir)) gives)."""
        return os.path.join(sha[:2], sha)

    def _commit(
        self,
        checked: Checked,
        tmp: Path | str,
        source: str,
        *,
        sync: bool | None = None,
        placed: bool = False,
        existed: bool = False,
        replace: bool = False,
        grouped: bool = False,
    ) -> AddResult:
        """Index one object. Its file is at `tmp`, or with `placed` already at its final name (`existed`:
        that name was there before). `replace`: a different copy under a stored SOP Instance UID replaces
        the stored one (a correction); without it the stored copy is kept."""
        entry, sha, size = checked.entry, checked.sha256, checked.size
        inst = entry.instance
        sync = self.durable if sync is None else sync
        deferred = self.durable and not sync and self._batch_depth == 0
        final = self._final_path(sha)
        with self._write_lock:
            if grouped and deferred and not placed and not replace:
                grouped_result = self._add_to_group(checked, tmp, source, final)
                if grouped_result is not None:
                    return grouped_result
            # Everything below writes or decides on committed rows: the group goes first.
            self._flush_group()
            conn = self._conn(deferred_sync=deferred)
            row = conn.execute(
                "SELECT sha256, file, size, source FROM instances WHERE sop_instance_uid = ?", (inst.sop_instance_uid,)
            ).fetchone()
            fields = (inst.sop_instance_uid, inst.series_uid, inst.study_uid, inst.sop_class_uid, final)
            if row is not None and row["sha256"] == sha:
                if placed and not existed and row["file"] != self._final_rel(sha):
                    self._unlink_if_unreferenced(final)  # the stored copy lives under an older layout's name
                return AddResult(AddStatus.DUPLICATE, *fields)
            if row is not None:
                # Finding 3: a copy cut at an element boundary looks whole on its own; it never replaces.
                if ingest.is_cut_copy(self.files_dir / row["file"], final if placed else tmp):
                    raise ingest.Incomplete("a cut-short copy of the stored instance; the stored copy is kept")
                if not replace:
                    # Finding 2: any peer could overwrite a stored instance. The stored copy is the one the
                    # reading room may already have reported on; it stays, as Orthanc keeps it by default.
                    log.warning(
                        "instance %s arrived again with different content from %s; the stored copy is kept",
                        inst.sop_instance_uid,
                        source.split(":", 1)[0] or "a caller",
                    )
                    if placed and not existed:
                        self._unlink_if_unreferenced(final)
                    return AddResult(AddStatus.KEPT, *fields)
            self._check_patient(conn, entry.study)
            if not placed:
                final, existed = self._place(tmp, sha)
            elif not final.exists():
                # Placed before we held the lock, then removed with a study deleted meanwhile that held the
                # same content: the bytes are gone, so this one object has to be imported again.
                raise StoreError("the file was removed while it was being imported; import it again")
            result = AddResult(AddStatus.ADDED, *fields)
            retired: tuple[Path, str] | None = None
            if row is not None:
                retired = (self.files_dir / row["file"], row["sha256"])
                log.warning(
                    "instance %s replaced by a correction; the previous copy is kept under replaced/",
                    inst.sop_instance_uid,
                )
                result = AddResult(AddStatus.REPLACED, *fields)
            if self._batch_depth == 0:
                if sync:
                    fsync_dir(final.parent)
                conn.execute("BEGIN IMMEDIATE")
            try:
                self._upsert(conn, entry, final, sha, size, source, deferred)
                if row is not None:
                    conn.execute(
                        """INSERT INTO replaced(sop_instance_uid, study_uid, file, original_file, sha256, size,
                               source, replaced_by, replaced_at) VALUES (?,?,?,?,?,?,?,?,?)""",
                        (
                            inst.sop_instance_uid,
                            inst.study_uid,
                            f"replaced/{row['sha256']}",
                            row["file"],
                            row["sha256"],
                            row["size"],
                            row["source"],
                            source,
                            time.time(),
                        ),
                    )
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
                if is_disk_full(exc):
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
                if not existed:
                    self._batch_new_files.append(final)
                self._batch_events.append(event)
                if retired is not None:
                    self._batch_retire.append(retired)
                if self._batch_pending >= 500:
                    self._flush_batch(conn)
                return result
        if retired is not None:
            self._retire(*retired)
        self._emit([event])
        return result

    # ----------------------------------------------------------------- grouped index commits
    def _add_to_group(self, checked: Checked, tmp: Path | str, source: str, final: Path) -> AddResult | None:
        """Place a received object and queue its row for the group commit; None when the ordinary path must
        decide (its UID or its study or series rows differ from what is stored or queued)."""
        entry, sha = checked.entry, checked.sha256
        inst, st, se = entry.instance, entry.study, entry.series
        fields = (inst.sop_instance_uid, inst.series_uid, inst.study_uid, inst.sop_class_uid, final)
        queued = self._group_by_uid.get(inst.sop_instance_uid)
        if queued is not None:
            return AddResult(AddStatus.DUPLICATE, *fields) if queued.sha == sha else None
        if self._group_studies.get(st.study_uid, st) != st or self._group_series.get(se.series_uid, se) != se:
            return None
        if len(self._group) >= self.GROUP_COMMIT_MAX:
            self._flush_group()  # a failure here refuses this object before anything of it is written
        conn = self._conn(deferred_sync=True)
        if conn.execute(
            "SELECT 1 FROM instances WHERE sop_instance_uid = ?", (inst.sop_instance_uid,)
        ).fetchone():
            return None
        if st.study_uid not in self._group_studies:
            self._check_patient(conn, st)
        self._place(tmp, sha, final)
        add = _GroupedAdd(entry, final, sha, checked.size, source)
        self._journal_line(add)
        self._group.append(add)
        self._group_by_uid[inst.sop_instance_uid] = add
        self._group_studies[st.study_uid] = st
        self._group_series[se.series_uid] = se
        self._note_unsynced()
        if self._group_timer is None:
            self._schedule_group_commit(self.GROUP_COMMIT_S)
        return AddResult(AddStatus.ADDED, *fields)

    def _schedule_group_commit(self, delay: float) -> None:
        timer = threading.Timer(delay, self._commit_group_from_timer)
        timer.daemon = True
        self._group_timer = timer
        timer.start()

    def _commit_group_from_timer(self) -> None:
        with self._write_lock:
            self._group_timer = None
        self.commit_received()

    def commit_received(self) -> None:
        """Commit the rows of received objects waiting for their group (before an association's release is
        answered, and by every writer). Failures are logged: the files stay listed in the journal, and the
        next commit or recovery indexes them."""
        try:
            self._flush_group()
        except (OSError, sqlite3.Error, StoreError) as exc:
            log.error("could not index received instances (they stay in the journal): %s", exc)
            with self._write_lock:
                if self._group and self._group_timer is None:
                    self._schedule_group_commit(self.GROUP_SYNC_S)

    def _flush_group(self) -> None:
        events: list[StoreEvent] = []
        with self._write_lock:
            if not self._group:
                return
            timer, self._group_timer = self._group_timer, None
            if timer is not None:
                timer.cancel()
            if self._group_conn is None:
                self._group_conn = self._new_connection(deferred_sync=True)
            conn = self._group_conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                for add in self._group:
                    self._upsert(conn, add.entry, add.final, add.sha, add.size, add.source, True)
                conn.execute("COMMIT")
            except Exception as exc:
                # The senders have their Success: nothing is removed. The rows wait for the next try.
                self._recent_rows.clear()
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if is_disk_full(exc):
                    raise StoreFullError("the disk holding the study store is full") from exc
                raise
            added, self._group = self._group, []
            self._group_by_uid.clear()
            self._group_studies.clear()
            self._group_series.clear()
            self._journal.clear()
            for add in added:
                inst = add.entry.instance
                events.append(StoreEvent("added", inst.study_uid, inst.series_uid, inst.sop_instance_uid, add.source))
        self._emit(events)

    def _journal_line(self, add: _GroupedAdd) -> None:
        source = add.source.replace("\t", " ").replace("\n", " ").replace("\r", " ")
        line = f"{self._final_rel(add.sha)}\t{source}\n".encode("utf-8", "replace")
        if not self._journal.append(line):
            self._flush_group()  # full: commit what it lists, then it starts again
            if not self._journal.append(line):
                raise StoreError("a received object's journal line does not fit the journal")

    def _close_journal(self) -> None:
        with self._write_lock:
            timer, self._group_timer = self._group_timer, None
            if timer is not None:
                timer.cancel()  # a retry after a failed commit: what it would commit stays in the journal
            if self._group_conn is not None:
                self._group_conn.close()
                self._group_conn = None
            self._journal.close()

    def _index_journals(self) -> int:
        """Recovery: index what a killed process answered Success for but never committed (its journal)."""
        indexed = 0
        conn = self._conn()
        for journal in sorted(self.journal_dir.glob("*.journal")):
            if os.fspath(journal) == self._journal.path:
                continue  # this process's own, committed just before
            try:
                lines = Journal.read_lines(journal)
            except OSError as exc:
                log.error("could not read a store journal: %s", exc)
                continue
            for line in lines:
                rel, _, source = line.partition("\t")
                path = self.files_dir / rel
                sha = path.name
                if not rel or ".." in Path(rel).parts or not path.is_file():
                    continue
                if conn.execute("SELECT 1 FROM instances WHERE file = ? LIMIT 1", (rel,)).fetchone():
                    continue
                try:
                    with open(path, "rb") as fh:
                        actual, size = self._rehash(fh)
                    if actual != sha:
                        continue  # cut short by a power cut: the orphan scan removes it
                    checked = ingest.check_file(path, sha256=sha, size=size, max_bytes=self.max_object_bytes)
                    result = self._commit(checked, path, source, placed=True, existed=True)
                except (OSError, Refused, StoreError) as exc:
                    log.warning("a journalled received file could not be indexed: %s", exc)
                    continue
                if result.status is AddStatus.ADDED:
                    indexed += 1
            journal.unlink(missing_ok=True)
        return indexed

    def _check_patient(self, conn: sqlite3.Connection, st: Study) -> None:
        """Refuse an instance whose patient contradicts its study's stored row (finding 2: a new instance with
        another patient's name or ID in an existing Study Instance UID relabelled the study). Only asked when
        the study row is not the one this store just wrote (the common case costs no query)."""
        if self._recent_rows.get(("study", st.study_uid)) == st or not (st.patient_id or st.patient_name):
            return
        row = conn.execute(
            "SELECT patient_id, patient_name FROM studies WHERE study_uid = ?", (st.study_uid,)
        ).fetchone()
        if row is None:
            return
        for label, new, old in (("Patient ID", st.patient_id, row[0]), ("Patient's Name", st.patient_name, row[1])):
            if new and old and _same_person_text(new) != _same_person_text(old):
                # The message names no value: it reaches logs and the sender's Error Comment.
                raise PatientConflict(f"{label} differs from the stored study with this Study Instance UID")

    def _retire(self, path: Path, sha: str) -> None:
        """Move a replaced copy under replaced/ (its row in `replaced` says what it was)."""
        target = self.replaced_dir / sha
        rel = str(path.relative_to(self.files_dir))
        still_used = self._conn().execute("SELECT 1 FROM instances WHERE file = ? LIMIT 1", (rel,)).fetchone()
        try:
            if still_used is not None:
                shutil.copyfile(path, target)
                os.chmod(target, FILE_MODE)
            else:
                os.replace(path, target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("could not move a replaced copy under replaced/: %s (recovery will retry)", exc)

    def _upsert(
        self,
        conn: sqlite3.Connection,
        entry: IndexEntry,
        final: Path,
        sha: str,
        size: int,
        source: str,
        unsynced: bool = False,
    ) -> None:
        try:
            self._upsert_rows(conn, entry, final, sha, size, source, unsynced)
        except sqlite3.IntegrityError:
            # The study or series row we remembered writing was deleted (by another process): write it again.
            self._recent_rows.clear()
            self._upsert_rows(conn, entry, final, sha, size, source, unsynced)

    def _upsert_rows(
        self,
        conn: sqlite3.Connection,
        entry: IndexEntry,
        final: Path,
        sha: str,
        size: int,
        source: str,
        unsynced: bool,
    ) -> None:
        st, se, inst = entry.study, entry.series, entry.instance
        now = time.time()
        # Instances of one series arrive together; their study and series rows are written once, not per
        # instance (the same values again would change nothing).
        if self._recent_rows.get(("study", st.study_uid)) != st:
            catalog.write_study_row(conn, st, now)
            self._remember(("study", st.study_uid), st)
        if self._recent_rows.get(("series", se.series_uid)) != se:
            catalog.write_series_row(conn, se)
            self._remember(("series", se.series_uid), se)
        file = self._final_rel(sha) if final.name == sha else str(final.relative_to(self.files_dir))
        catalog.write_instance_row(conn, inst, file, sha, size, source, now, unsynced)

    def _remember(self, key: tuple[str, str], row: Study | Series) -> None:
        if len(self._recent_rows) >= 256:
            self._recent_rows.clear()
        self._recent_rows[key] = row

    @contextlib.contextmanager
    def batch(self, *, release_cache: bool = False) -> Iterator[None]:
        """Group many adds into few transactions (bulk import): one sync and commit per 500.

        Pending files are synced before the rows that point at them commit. With `release_cache` (imports)
        the synced files are then dropped from the page cache: a CD's worth of new files should not push
        what the user is viewing out of memory, and writing into pages just freed is several times cheaper
        than into pages the system has never used (on virtual machines above all).
        """
        with self._write_lock:
            self._flush_group()
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
            sync_filesystem_of(self.root)
            synced = True
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # Everything since the last flush is undone (a full disk as SQLite grows its log is the usual
            # cause): its files go with its rows, and the caller learns that the whole group was lost.
            self._recent_rows.clear()
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            new_files, self._batch_new_files = self._batch_new_files, []
            for path in new_files:
                self._unlink_if_unreferenced(path)
            self._batch_files, self._batch_events, self._batch_retire = [], [], []
            self._batch_pending = 0
            if begin_again:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("BEGIN IMMEDIATE")
            if is_disk_full(exc):
                full = StoreFullError("the disk holding the study store is full")
                full.rolled_back = True
                raise full from exc
            raise
        files, self._batch_files = self._batch_files, []
        if synced and self._batch_release_cache:
            release_page_cache(files)
        events, self._batch_events = self._batch_events, []
        retire, self._batch_retire = self._batch_retire, []
        self._batch_new_files = []
        self._batch_pending = 0
        if begin_again:
            conn.execute("BEGIN IMMEDIATE")
        for path, sha in retire:
            self._retire(path, sha)
        self._emit(events)

    def _unlink_if_unreferenced(self, path: Path) -> None:
        if any(add.final == path for add in self._group):
            return  # a queued row points at it
        rel = str(path.relative_to(self.files_dir))
        if self._conn().execute("SELECT 1 FROM instances WHERE file = ? LIMIT 1", (rel,)).fetchone() is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # ----------------------------------------------------------------- reading
    def patients(self) -> list[Patient]:
        return catalog.patients(self._conn())

    def studies(self, query: StudyQuery | None = None) -> list[Study]:
        return catalog.studies(self._conn(), query)

    def study(self, study_uid: str) -> Study | None:
        return catalog.study(self._conn(), study_uid)

    def series_for_study(self, study_uid: str) -> list[Series]:
        return catalog.series_for_study(self._conn(), study_uid)

    def series(self, series_uid: str) -> Series | None:
        return catalog.series(self._conn(), series_uid)

    def instances_for_series(self, series_uid: str) -> list[Instance]:
        return catalog.instances_for_series(self._conn(), self.files_dir, series_uid)

    def instances_for_study(self, study_uid: str) -> list[Instance]:
        return catalog.instances_for_study(self._conn(), self.files_dir, study_uid)

    def instance(self, sop_instance_uid: str) -> Instance | None:
        return catalog.instance(self._conn(), self.files_dir, sop_instance_uid)

    def instances_of_class(self, sop_class_prefix: str, study_uid: str | None = None) -> list[Instance]:
        return catalog.instances_of_class(self._conn(), self.files_dir, sop_class_prefix, study_uid)

    def counts(self) -> dict[str, int]:
        return catalog.counts(self._conn())

    # ----------------------------------------------------------------- deleting and recovery
    def delete_study(self, study_uid: str) -> int:
        """Remove a study's rows, then its files; returns the number of instances removed."""
        with self._write_lock:
            self._flush_group()
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

        Runs only while this process holds the store exclusively (finding 1: every CLI call and GUI start
        recovering while the Storage SCP wrote took files mid-replace for power-cut losses and deleted
        acknowledged rows, and its temp-file scan raced partial files). Otherwise nothing is looked at and
        the report says `skipped`: the process that opens the store alone next does it. Processes opening
        the store meanwhile wait in `StudyStore()` until recovery is done. `min_age_s` is kept for callers;
        holding the store alone, there is nobody whose files would need sparing.
        """
        del min_age_s
        report = RecoveryReport()
        with self._write_lock, self._exclusively() as alone:
            if not alone:
                report.skipped = True
                return report
            self._flush_group()
            self._spare_files.release()
            report.indexed_from_journal = self._index_journals()
            for tmp in [*self.tmp_dir.iterdir(), *self.spare_dir.rglob("*.part")]:
                if tmp.is_dir():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    report.removed_temp_files += 1
            conn = self._conn()
            report.replaced_files_restored = self._finish_retiring(conn)
            referenced = {r[0] for r in conn.execute("SELECT file FROM instances")}
            for sub in self.files_dir.iterdir():
                if sub in (self.tmp_dir, self.spare_dir) or not sub.is_dir():
                    continue
                for path in sub.rglob("*"):
                    if not path.is_file():
                        continue
                    if str(path.relative_to(self.files_dir)) not in referenced:
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

    def _finish_retiring(self, conn: sqlite3.Connection) -> int:
        """Replaced copies whose row committed but whose move under replaced/ did not happen (a crash)."""
        moved = 0
        for r in conn.execute("SELECT file, original_file, sha256 FROM replaced"):
            target = self.root / r["file"]
            original = self.files_dir / r["original_file"]
            if not target.exists() and original.is_file():
                still_used = conn.execute(
                    "SELECT 1 FROM instances WHERE file = ? LIMIT 1", (r["original_file"],)
                ).fetchone()
                if still_used is None:
                    os.replace(original, target)
                    moved += 1
        return moved

    def _drop_rows_lost_unsynced(self, conn: sqlite3.Connection, missing: set[str]) -> list[str]:
        """Rows added after the last group sync whose file is not whole: a power cut beat the sync."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'synced_until'").fetchone()
        if row is None:
            return []  # nothing was ever added without its own sync
        lost: list[tuple[str, str]] = []
        recent = "SELECT sop_instance_uid, file, size, sha256 FROM instances WHERE added_at >= ? AND unsynced = 1"
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

    @contextlib.contextmanager
    def _exclusively(self) -> Iterator[bool]:
        """Hold the store's open-lock exclusively for the block if no other process has the store open.

        flock(2) converts a shared lock by dropping it first, so two processes testing at once could each see
        the other's lock gone; `.recover.lock` makes the test one at a time. A process opening the store
        meanwhile blocks on its shared lock until the block ends. Without OS locks (Windows) this is never
        true and recovery is left out.
        """
        fd = self._open_lock_fd
        if fd is None or fcntl is None:
            yield False
            return
        gate = os.open(self.root / ".recover.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except OSError:
                alone = False
            if not alone:
                fcntl.flock(fd, fcntl.LOCK_SH)
                fcntl.flock(gate, fcntl.LOCK_UN)
            try:
                yield alone
            finally:
                if alone:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                    fcntl.flock(gate, fcntl.LOCK_UN)
        finally:
            os.close(gate)

    def _only_process(self) -> bool:
        """True when no other process holds the store's open-lock (always False where locks are unavailable)."""
        with self._write_lock, self._exclusively() as alone:
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


def _same_person_text(value: str) -> str:
    """Patient ID / name as compared for a conflict: case, padding and empty trailing components aside."""
    return value.strip().rstrip("^= ").upper()
