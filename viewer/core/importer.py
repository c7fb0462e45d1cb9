"""Import DICOM from files, folders, CDs (DICOMDIR) and ZIP archives into the study store (no Qt).

The importer first *discovers* everything to look at (so progress has a total), then feeds each item to
the store in batches. Each input is sniffed from its first 132 bytes so that the non-DICOM files every CD
carries (autorun.inf, viewer programs, HTML) are skipped without being copied. Nothing here trusts a file
name: folders are walked for every file, whatever it is called.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pydicom

from viewer.core.dicomdir import TreeIndex, is_dicomdir_name, read_dicomdir
from viewer.core.logs import one_line, safe_name
from viewer.core.settings import LocalNode
from viewer.core.store import (
    AddStatus,
    ChainedStream,
    NotDicomError,
    PreparedObject,
    StoreError,
    StoreFullError,
    StudyStore,
)
from viewer.core.tasks import Cancelled, CancelToken, Progress, ProgressCallback

log = logging.getLogger(__name__)

# Items per store transaction: bounds how long the store's write lock is held, so the Storage SCP and
# other writers interleave with a long import.
BATCH_SIZE = 500
# How many files may be prepared (copied, hashed, placed) ahead of the committing thread. Deep enough that
# the workers keep going while the committing thread waits for a batch's sync, which for 500 large files
# is most of a second on a slow disk; what waits is a small record each, the files are already in place.
PREPARE_AHEAD = 128
PROGRESS_INTERVAL_S = 0.1
# Threads preparing items (copy, hash, parse) ahead of the committing thread.
WORKERS = max(2, min(4, os.cpu_count() or 2))
MAX_ARCHIVE_DEPTH = 3
DEFAULT_MAX_OBJECT_BYTES = LocalNode().max_object_bytes
MAX_ARCHIVE_BYTES = 64 * 1024**3
MAX_RATIO = 1100
_RATIO_FLOOR = 1024 * 1024  # small members may compress absurdly well (a blank header page) and cost nothing
_COPY_CHUNK = 1024 * 1024
_META_PROBE = 138  # preamble, "DICM", and the first file meta element's tag and VR
ZIP_MAGIC = b"PK\x03\x04"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# First groups a bare dataset can start with: file meta (0002) or identifying attributes (0008), either byte order.
_FIRST_GROUPS = {0x0002, 0x0008, 0x0200, 0x0800}


@dataclass(frozen=True)
class FileProblem:
    source: str  # as shown to the user: escaped by `safe_name`, one line
    reason: str


@dataclass(frozen=True)
class ImportLimits:
    """What one import may cost, whatever the input (a hostile archive, a sparse file, a FIFO)."""

    # The largest object taken in, as for the Storage SCP (`LocalNode.max_object_bytes`).
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    # ZIP archives inside ZIP archives: how deep to look (the input archive is depth 1).
    max_archive_depth: int = MAX_ARCHIVE_DEPTH
    # Declared inflated bytes of one archive, everything nested in it included.
    max_archive_bytes: int = MAX_ARCHIVE_BYTES
    # Deflate cannot exceed ~1032:1 (RFC 1951 block limits); beyond that a member is a bomb, not an image.
    max_ratio: int = MAX_RATIO


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    replaced: int = 0
    # Each replaced instance, and where its previous copy is kept (never deleted).
    replaced_items: list[FileProblem] = field(default_factory=list)
    # Files whose SOP Instance UID is stored already with other content: the stored copy was kept.
    kept: list[FileProblem] = field(default_factory=list)
    skipped: list[FileProblem] = field(default_factory=list)  # not DICOM, or DICOM that is not an instance
    failed: list[FileProblem] = field(default_factory=list)  # DICOM we could not store, unreadable files
    missing: list[FileProblem] = field(default_factory=list)  # DICOMDIR records whose file is not there
    # Files a damaged DICOMDIR does not account for (found, and imported, by scanning its folder).
    unlisted: list[FileProblem] = field(default_factory=list)
    damaged_dicomdirs: int = 0
    notes: list[str] = field(default_factory=list)
    study_uids: set[str] = field(default_factory=set)
    total: int = 0
    done: int = 0
    cancelled: bool = False
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing a DICOMDIR promised was missing (cancelling is not a failure)."""
        return not self.failed and not self.missing

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        parts = [
            f"{self.imported} imported",
            f"{self.duplicates} already present",
            f"{self.replaced} replaced",
            f"{len(self.kept)} kept the stored copy",
            f"{len(self.skipped)} skipped",
            f"{len(self.failed)} failed",
        ]
        if self.missing:
            parts.append(f"{len(self.missing)} missing from the DICOMDIR's folder")
        if self.damaged_dicomdirs:
            parts.append(f"{self.damaged_dicomdirs} damaged DICOMDIR (folder scanned instead)")
        text = ", ".join(parts) + f" ({self.done} of {self.total} files in {self.elapsed_s:.1f} s)"
        return ("Cancelled: " if self.cancelled else "") + text

    def details(self) -> str:
        """The full report as text: summary, then every skipped, failed and missing file with its reason.

        One line per problem whatever the names hold: a file called "x\\nFailed:" must not forge a line.
        """
        lines = [self.summary(), *(one_line(n) for n in self.notes)]
        sections = (
            ("Failed", self.failed),
            ("Missing", self.missing),
            ("Not in the damaged DICOMDIR (imported from the folder scan)", self.unlisted),
            ("Replaced", self.replaced_items),
            ("Stored copy kept", self.kept),
            ("Skipped", self.skipped),
        )
        for title, problems in sections:
            if problems:
                lines.append(f"{title}:")
                lines.extend(f"  {one_line(p.source)}: {one_line(p.reason)}" for p in problems)
        return "\n".join(lines)


@dataclass
class ImportItem:
    """One thing to import: a file on disk, or a member of an (possibly nested) archive."""

    source: str  # what the user sees in the report (escaped, one line)
    open: Callable[[], BinaryIO]
    dicomdir_listed: bool = False


class ImportPlan:
    """Everything discovered under the inputs; holds archives (and spooled nested ones) open until `close`."""

    def __init__(self, limits: ImportLimits | None = None) -> None:
        self.limits = limits or ImportLimits()
        self.items: list[ImportItem] = []
        self.skipped: list[FileProblem] = []
        self.failed: list[FileProblem] = []
        self.missing: list[FileProblem] = []
        self.unlisted: list[FileProblem] = []
        self.damaged_dicomdirs = 0
        self.notes: list[str] = []
        self._archives: list[zipfile.ZipFile] = []
        self._spools: list[BinaryIO] = []

    def close(self) -> None:
        for archive in self._archives:
            archive.close()
        self._archives.clear()
        for spool in self._spools:
            spool.close()  # an unnamed temp file: closing it frees the disk space
        self._spools.clear()


def discover(
    paths: Iterable[Path | str], cancel: CancelToken | None = None, limits: ImportLimits | None = None
) -> ImportPlan:
    """List the files (and archive members) to import under `paths`; reads only DICOMDIRs, archive indexes
    and each file's first bytes. Regular files only: a FIFO, device or socket is never opened."""
    plan = ImportPlan(limits)
    for raw in paths:
        path = Path(raw)
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            # The user named this path: a link here is followed (it is the import's root, not inside one).
            mode = os.stat(path).st_mode
        except OSError as exc:
            reason = "no such file or folder" if isinstance(exc, FileNotFoundError) else _os_reason(exc)
            plan.failed.append(FileProblem(safe_name(path), reason))
            continue
        if stat.S_ISDIR(mode):
            _discover_folder(plan, path, cancel)
        elif not stat.S_ISREG(mode):
            plan.skipped.append(FileProblem(safe_name(path), _not_regular(mode)))
        elif is_dicomdir_name(path.name):
            _discover_folder(plan, path.parent, cancel)
        else:
            _discover_file(plan, path)
    return plan


def _walk(plan: ImportPlan, root: Path, cancel: CancelToken | None) -> list[Path]:
    """The regular files under `root`, depth first in name order, without leaving `root`.

    The file type comes with each `os.scandir` entry (d_type), so this costs no stat per file. A link is
    followed only when its target resolves inside `root`, for files and folders alike: a link to a folder
    inside is not descended (its files are found under their own path), one to anything outside is
    reported and not followed, so an import never reads what the user did not hand it.
    """
    real_root = os.path.realpath(root)
    files: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            plan.failed.append(FileProblem(safe_name(folder), f"cannot read folder: {_os_reason(exc)}"))
            continue
        subfolders: list[Path] = []
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_symlink():
                    _link(plan, path, real_root, files)
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append(path)
                elif entry.is_file(follow_symlinks=False):
                    files.append(path)
                else:
                    plan.skipped.append(
                        FileProblem(safe_name(path), _not_regular(entry.stat(follow_symlinks=False).st_mode))
                    )
            except OSError as exc:
                plan.failed.append(FileProblem(safe_name(path), f"cannot read: {_os_reason(exc)}"))
        stack.extend(reversed(subfolders))
    return files


def _link(plan: ImportPlan, path: Path, real_root: str, files: list[Path]) -> None:
    target = os.path.realpath(path)
    if target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep):
        plan.skipped.append(FileProblem(safe_name(path), "symbolic link to outside the imported folder: not followed"))
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        plan.skipped.append(FileProblem(safe_name(path), "broken symbolic link"))
        return
    if stat.S_ISREG(mode):
        files.append(path)
    elif stat.S_ISDIR(mode):
        plan.skipped.append(
            FileProblem(safe_name(path), "symbolic link to a folder inside the import: its files are read there")
        )
    else:
        plan.skipped.append(FileProblem(safe_name(path), _not_regular(mode)))


def _not_regular(mode: int) -> str:
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a file or folder"
    )
    return f"not a regular file ({kind}): not opened"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _discover_folder(plan: ImportPlan, root: Path, cancel: CancelToken | None) -> None:
    files = _walk(plan, root, cancel)
    dicomdirs = [f for f in files if is_dicomdir_name(f.name)]
    listed: set[Path] = set()
    damaged: list[tuple[Path, set[Path]]] = []  # a damaged DICOMDIR and the files under its folder
    if dicomdirs:
        index = TreeIndex(root, files)
        for dicomdir in dicomdirs:
            if cancel is not None:
                cancel.raise_if_cancelled()
            under = files if dicomdir.parent == root else list(_under(files, dicomdir.parent))
            sub_index = index if dicomdir.parent == root else TreeIndex(dicomdir.parent, under)
            contents = read_dicomdir(dicomdir, sub_index)
            name = safe_name(dicomdir)
            plan.skipped.append(FileProblem(name, "media directory (DICOMDIR): read for its references"))
            if contents.error:
                plan.notes.append(f"{name}: unreadable DICOMDIR ({contents.error}); scanned its folder instead")
                continue
            listed.update(contents.referenced)
            plan.missing.extend(
                FileProblem(safe_name(dicomdir.parent / file_id), "listed in the DICOMDIR but not found")
                for file_id in contents.missing
            )
            plan.notes.append(
                f"{name}: {contents.record_count} records, {len(contents.referenced)} files referenced, "
                f"{len(contents.missing)} missing"
            )
            if contents.damage:
                plan.damaged_dicomdirs += 1
                plan.notes.append(
                    f"{name}: damaged DICOMDIR ({'; '.join(contents.damage)}); "
                    "what it lists is incomplete, so its whole folder was scanned"
                )
                damaged.append((dicomdir, set(under)))
    for dicomdir, under in damaged:
        # What the readable part does not account for: imported anyway, listed so the user can compare.
        plan.unlisted.extend(
            FileProblem(safe_name(f), f"not referenced by {safe_name(dicomdir.name)}")
            for f in files
            if f in under and f not in listed and not is_dicomdir_name(f.name)
        )
    # Referenced files first (the CD as its author meant it), then everything else the DICOMDIR left out.
    ordered = [f for f in files if f in listed] + [f for f in files if f not in listed and not is_dicomdir_name(f.name)]
    for done, path in enumerate(ordered):
        if cancel is not None and done % 256 == 0:
            cancel.raise_if_cancelled()
        _discover_file(plan, path, dicomdir_listed=path in listed)


def _under(files: list[Path], folder: Path) -> Iterator[Path]:
    for f in files:
        if f.is_relative_to(folder):
            yield f


def _open_regular(path: Path) -> BinaryIO:
    """Open for reading without ever blocking: O_NONBLOCK makes a FIFO swapped in since discovery open at
    once (and read as empty) instead of waiting for a writer; on a regular file it changes nothing."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    return os.fdopen(fd, "rb")


def _discover_file(plan: ImportPlan, path: Path, *, dicomdir_listed: bool = False) -> None:
    source = safe_name(path)
    try:
        with _open_regular(path) as fh:
            head = fh.read(132) or b""
    except OSError as exc:
        plan.failed.append(FileProblem(source, f"cannot read: {_os_reason(exc)}"))
        return
    if head.startswith(ZIP_MAGIC) and not _looks_like_dicom(head):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            plan.failed.append(FileProblem(source, f"damaged ZIP archive: {exc}"))
            return
        plan._archives.append(archive)
        _discover_archive(plan, archive, source, depth=1, budget=[plan.limits.max_archive_bytes])
        return
    limit = plan.limits.max_object_bytes
    plan.items.append(ImportItem(source, functools.partial(_checked_open, _open_regular, path, limit), dicomdir_listed))


def _discover_archive(plan: ImportPlan, archive: zipfile.ZipFile, label: str, depth: int, budget: list[int]) -> None:
    """List an archive's members; `budget` is the declared inflated bytes the whole input archive has left."""
    limits = plan.limits
    for info in archive.infolist():
        if info.is_dir():
            continue
        source = f"{label}!{safe_name(info.filename)}"
        if is_dicomdir_name(Path(info.filename).name):
            # Inside an archive every member is looked at anyway; the DICOMDIR adds nothing to find.
            plan.skipped.append(FileProblem(source, "media directory (DICOMDIR) inside an archive"))
            continue
        # The declared size bounds what is inflated: zipfile stops at it and checks the CRC, so a member that
        # lies is cut short and fails instead of growing. Refuse what would cost too much before any byte.
        refusal = _archive_refusal(info, limits, budget[0])
        if refusal:
            plan.failed.append(FileProblem(source, refusal))
            continue
        budget[0] -= info.file_size
        nested = info.filename.lower().endswith(".zip")
        if nested and depth >= limits.max_archive_depth:
            plan.failed.append(
                FileProblem(source, f"ZIP archive nested more than {limits.max_archive_depth} deep: not opened")
            )
            continue
        if nested:
            inner = _open_nested(plan, archive, info, source)
            if inner is not None:
                _discover_archive(plan, inner, source, depth + 1, budget)
            continue
        opener = functools.partial(archive.open, info)
        item_open = functools.partial(_checked_open, opener, None, limits.max_object_bytes)
        plan.items.append(ImportItem(source, item_open))


def _archive_refusal(info: zipfile.ZipInfo, limits: ImportLimits, budget: int) -> str:
    nested = info.filename.lower().endswith(".zip")
    if not nested and info.file_size > limits.max_object_bytes:
        return (
            f"archive member declares {info.file_size} bytes, more than the largest object accepted "
            f"({limits.max_object_bytes} bytes): not read"
        )
    if info.file_size > budget:
        return (
            f"archive would inflate to more than {limits.max_archive_bytes} bytes in all "
            "(a ZIP bomb, or too large to import at once): member not read"
        )
    if info.file_size > _RATIO_FLOOR and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        return (
            f"archive member inflates {info.file_size // max(info.compress_size, 1)}:1 from "
            f"{info.compress_size} bytes (a ZIP bomb): not read"
        )
    return ""


def _open_nested(
    plan: ImportPlan, archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str
) -> zipfile.ZipFile | None:
    """A ZIP inside a ZIP needs a seekable file: spool the member to an unnamed temp file, never to memory.
    Its size was checked against the budget first, and zipfile inflates no more than the declared size."""
    spool: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115  (closed by the plan)
    try:
        with archive.open(info) as member:
            shutil.copyfileobj(member, spool, _COPY_CHUNK)
        spool.seek(0)
        nested = zipfile.ZipFile(spool)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
        spool.close()
        plan.failed.append(FileProblem(source, f"damaged ZIP archive: {exc}"))
        return None
    plan._spools.append(spool)
    plan._archives.append(nested)
    return nested


class ObjectTooLargeError(StoreError):
    """An input larger than the largest object this workstation takes in."""


class _CheckedStream(io.RawIOBase):
    """An input as the store reads it, checked on the way: a DICM marker must be followed by a file meta
    element, and no more than `limit` bytes are ever read, so a 2 GB sparse file or a 'DICM + zeros' member
    is refused after its first bytes or at the limit, never copied whole first."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self._read = 0
        head = raw.read(_META_PROBE) or b""
        if len(head) >= 132 and head[128:132] == b"DICM" and not _file_meta_follows(head[132:]):
            raw.close()
            # PS3.10 §7.1: the preamble and "DICM" are followed by the File Meta Information, group 0002,
            # always Explicit VR Little Endian.
            raise NotDicomError("DICM marker not followed by File Meta Information (group 0002): not DICOM")
        self._head = head
        # What is left of a regular file: a read asked for more (the store reads "up to 16 MiB" to tell a
        # small object from a large one) then costs a buffer of the size asked for, ten times the read itself.
        self._left: int | None = None
        with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self._left = max(0, os.fstat(raw.fileno()).st_size - raw.tell())

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = self._limit + 1 - self._read if size is None or size < 0 else size
        if self._left is not None:
            want = min(want, len(self._head) + self._left + 1)  # the one byte more sees a file that grew
        data, self._head = self._head[:want], self._head[want:]
        if len(data) < want:
            more = self._raw.read(want - len(data)) or b""
            if self._left is not None:
                self._left = max(0, self._left - len(more))
            data = data + more if data else more
        self._read += len(data)
        if self._read > self._limit:
            raise ObjectTooLargeError(f"larger than the largest object accepted ({self._limit} bytes): not imported")
        return data

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _checked_open(opener: Callable[..., BinaryIO], path: Path | None, limit: int) -> BinaryIO:
    raw = opener(path) if path is not None else opener()
    return _CheckedStream(raw, limit)  # type: ignore[return-value]


def _file_meta_follows(data: bytes) -> bool:
    if len(data) < 6:
        return False
    group = int.from_bytes(data[0:2], "little")
    return group == 0x0002 and data[4:6].isalpha() and data[4:6].isupper()


def _looks_like_dicom(head: bytes) -> bool:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    return group in _FIRST_GROUPS


def sniff(head: bytes) -> str:
    """'' if these first bytes can start a DICOM file, else why not."""
    if _looks_like_dicom(head):
        return ""
    if not head:
        return "empty file"
    if head.startswith(ZIP_MAGIC):
        return "ZIP archive nested too deep"
    return "not DICOM (no DICM marker and no DICOM header at the start)"


def import_paths(
    store: StudyStore,
    paths: Iterable[Path | str],
    *,
    cancel: CancelToken | None = None,
    progress: ProgressCallback | None = None,
    replace_existing: bool = False,
    limits: ImportLimits | None = None,
) -> ImportReport:
    """Import everything under `paths`; returns the report (also when cancelled: what was done stays done).

    A file whose SOP Instance UID is stored already with other content is not imported (the stored copy is
    kept and the report lists it) unless `replace_existing`: then it replaces it, the previous copy kept
    under the store's replaced/ folder."""
    started = time.monotonic()
    report = ImportReport()
    cancel = cancel or CancelToken()
    try:
        plan = discover(paths, cancel, limits)
    except Cancelled:
        report.cancelled = True
        report.elapsed_s = time.monotonic() - started
        return report
    try:
        report.skipped.extend(plan.skipped)
        report.failed.extend(plan.failed)
        report.missing.extend(plan.missing)
        report.unlisted.extend(plan.unlisted)
        report.damaged_dicomdirs = plan.damaged_dicomdirs
        report.notes.extend(plan.notes)
        report.total = len(plan.items)
        _import_items(store, plan.items, report, cancel, progress, started, replace_existing)
    finally:
        plan.close()
        report.elapsed_s = time.monotonic() - started
    if progress is not None:
        progress(Progress(report.done, report.total, started, "finished"))
    log.info("import: %s", report.summary())
    return report


def _import_items(
    store: StudyStore,
    items: list[ImportItem],
    report: ImportReport,
    cancel: CancelToken,
    progress: ProgressCallback | None,
    started: float,
    replace_existing: bool = False,
) -> None:
    """Prepare items on a few threads (copy, hash, parse: mostly I/O and hashing, which release the GIL) and
    commit them in order on this one, in batches, so the expensive parts overlap the commits and syncs."""
    last_progress = 0.0
    if progress is not None:
        progress(Progress(0, report.total, started, "starting"))
    in_flight: deque[tuple[ImportItem, Future[_Outcome]]] = deque()
    queue = iter(items)
    # Threads, not processes: with the header scanner the Python part of preparing a file is a fraction of a
    # millisecond, and reading, hashing and writing release the GIL. (Worker processes were tried when headers
    # were parsed with pydicom; their start-up and pickling then cost more than they saved.)
    # What the open batch committed: undone together if its COMMIT fails (a full disk).
    in_batch: list[tuple[ImportItem, AddStatus]] = []
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="import") as pool:
        try:
            while True:
                in_batch.clear()
                with store.batch(release_cache=True):
                    for _ in range(BATCH_SIZE):
                        while len(in_flight) < PREPARE_AHEAD and not cancel.cancelled:
                            item = next(queue, None)
                            if item is None:
                                break
                            in_flight.append((item, pool.submit(_prepare, store, item)))
                        if cancel.cancelled:
                            report.cancelled = True
                            return
                        if not in_flight:
                            return
                        item, future = in_flight.popleft()
                        if not _commit(store, item, future.result(), report, replace_existing, in_batch):
                            report.notes.append("import stopped: the disk holding the study store is full")
                            return
                        report.done += 1
                        now = time.monotonic()
                        if progress is not None and now - last_progress >= PROGRESS_INTERVAL_S:
                            last_progress = now
                            progress(Progress(report.done, report.total, started, item.source))
        except StoreFullError as exc:
            if not exc.rolled_back:
                raise
            _undo_batch(report, in_batch)
            report.notes.append("import stopped: the disk holding the study store is full")
        finally:
            # Whatever was prepared but not committed (cancel, disk full) leaves no temp file behind.
            for _item, future in in_flight:
                outcome = future.result()
                if outcome.prepared is not None:
                    store.discard_prepared(outcome.prepared)


@dataclass
class _Outcome:
    prepared: PreparedObject | None = None
    skipped: str = ""
    failed: str = ""
    store_full: bool = False


def _prepare(store: StudyStore, item: ImportItem) -> _Outcome:
    try:
        with item.open() as fh:
            head = fh.read(132)
            reason = sniff(head)
            if reason:
                return _Outcome(skipped=reason)
            return _Outcome(prepared=store.prepare_stream(ChainedStream(head, fh), will_commit_in_batch=True))
    except NotDicomError as exc:
        return _Outcome(skipped=str(exc))
    except StoreFullError as exc:
        return _Outcome(failed=str(exc), store_full=True)
    except StoreError as exc:
        if _is_media_directory(item):
            return _Outcome(skipped="media directory (DICOMDIR), not an image or document")
        return _Outcome(failed=str(exc))
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as exc:
        return _Outcome(failed=f"cannot read: {type(exc).__name__}: {exc}")
    except Exception as exc:  # one odd file must not end an import of thousands
        log.exception("unexpected error importing %s", item.source)
        return _Outcome(failed=f"unexpected error: {type(exc).__name__}: {exc}")


def _commit(
    store: StudyStore,
    item: ImportItem,
    outcome: _Outcome,
    report: ImportReport,
    replace: bool = False,
    in_batch: list[tuple[ImportItem, AddStatus]] | None = None,
) -> bool:
    """Record one item's outcome; False when the import must stop (the disk is full)."""
    if outcome.skipped:
        report.skipped.append(FileProblem(item.source, outcome.skipped))
        return True
    if outcome.failed or outcome.prepared is None:
        report.failed.append(FileProblem(item.source, outcome.failed or "not prepared"))
        return not outcome.store_full
    try:
        result = store.commit_prepared(outcome.prepared, source=f"import:{item.source}"[:1000], replace=replace)
    except StoreFullError as exc:
        report.failed.append(FileProblem(item.source, str(exc)))
        if exc.rolled_back:
            raise  # the batch's earlier items went with it: `_import_items` reports them
        return False
    except (StoreError, OSError) as exc:
        # Refusals at commit: a cut-short copy of a stored instance, another patient in a stored study.
        report.failed.append(FileProblem(item.source, str(exc)))
        return True
    report.study_uids.add(result.study_uid)
    if in_batch is not None:
        in_batch.append((item, result.status))
    if result.status is AddStatus.ADDED:
        report.imported += 1
    elif result.status is AddStatus.DUPLICATE:
        report.duplicates += 1
    elif result.status is AddStatus.KEPT:
        report.kept.append(
            FileProblem(item.source, "SOP Instance UID stored already with other content; the stored copy was kept")
        )
    else:
        report.replaced += 1
        report.replaced_items.append(
            FileProblem(item.source, "replaced the stored copy; the previous copy is kept under the store's replaced/")
        )
    return True


def _undo_batch(report: ImportReport, in_batch: list[tuple[ImportItem, AddStatus]]) -> None:
    """A batch whose COMMIT failed (disk full): what it added or replaced is not in the store after all."""
    for item, status in in_batch:
        if status is AddStatus.ADDED:
            report.imported -= 1
        elif status is AddStatus.REPLACED:
            report.replaced -= 1
            report.replaced_items = [p for p in report.replaced_items if p.source != item.source]
        else:
            continue
        report.failed.append(FileProblem(item.source, "not stored: the disk holding the study store is full"))
    in_batch.clear()


def _is_media_directory(item: ImportItem) -> bool:
    """A DICOMDIR under another name (e.g. DICOMDIR-backup) is DICOM but holds no instance to import."""
    # Anything odd in the header (a broken VR, a bad value) only means "not a DICOMDIR": the caller
    # already has the reason this file failed, and that is what the report must show.
    try:
        with item.open() as fh:
            ds = pydicom.dcmread(fh, force=True, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        meta_class = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", ""))
        return MEDIA_STORAGE_DIRECTORY in (meta_class, str(ds.get("SOPClassUID", "")))
    except Exception:
        return False
