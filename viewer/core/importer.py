"""Import DICOM from files, folders, CDs (DICOMDIR) and ZIP archives into the study store (no Qt).

The importer first *discovers* everything to look at (so progress has a total), then feeds each item to
the store in batches. Each input is sniffed from its first 132 bytes so that the non-DICOM files every CD
carries (autorun.inf, viewer programs, HTML) are skipped without being copied. Nothing here trusts a file
name: folders are walked for every file, whatever it is called.
"""

from __future__ import annotations

import functools
import io
import logging
import os
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
PROGRESS_INTERVAL_S = 0.1
# Threads preparing items (copy, hash, parse) ahead of the committing thread.
WORKERS = max(2, min(4, os.cpu_count() or 2))
MAX_ARCHIVE_DEPTH = 3
ZIP_MAGIC = b"PK\x03\x04"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# First groups a bare dataset can start with: file meta (0002) or identifying attributes (0008), either byte order.
_FIRST_GROUPS = {0x0002, 0x0008, 0x0200, 0x0800}


@dataclass(frozen=True)
class FileProblem:
    source: str
    reason: str


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
        text = ", ".join(parts) + f" ({self.done} of {self.total} files in {self.elapsed_s:.1f} s)"
        return ("Cancelled: " if self.cancelled else "") + text

    def details(self) -> str:
        """The full report as text: summary, then every skipped, failed and missing file with its reason."""
        lines = [self.summary(), *self.notes]
        for title, problems in (
            ("Failed", self.failed),
            ("Missing", self.missing),
            ("Replaced", self.replaced_items),
            ("Stored copy kept", self.kept),
            ("Skipped", self.skipped),
        ):
            if problems:
                lines.append(f"{title}:")
                lines.extend(f"  {p.source}: {p.reason}" for p in problems)
        return "\n".join(lines)


@dataclass
class ImportItem:
    """One thing to import: a file on disk, or a member of an (possibly nested) archive."""

    source: str  # what the user sees in the report
    open: Callable[[], BinaryIO]
    dicomdir_listed: bool = False


class ImportPlan:
    """Everything discovered under the inputs; holds archives open until `close`."""

    def __init__(self) -> None:
        self.items: list[ImportItem] = []
        self.skipped: list[FileProblem] = []
        self.failed: list[FileProblem] = []
        self.missing: list[FileProblem] = []
        self.notes: list[str] = []
        self._archives: list[zipfile.ZipFile] = []

    def close(self) -> None:
        for archive in self._archives:
            archive.close()
        self._archives.clear()


def discover(paths: Iterable[Path | str], cancel: CancelToken | None = None) -> ImportPlan:
    """List the files (and archive members) to import under `paths`; reads only DICOMDIRs and archive indexes."""
    plan = ImportPlan()
    for raw in paths:
        path = Path(raw)
        if cancel is not None:
            cancel.raise_if_cancelled()
        if not path.exists():
            plan.failed.append(FileProblem(str(path), "no such file or folder"))
        elif path.is_dir():
            _discover_folder(plan, path, cancel)
        elif is_dicomdir_name(path.name):
            _discover_folder(plan, path.parent, cancel)
        else:
            _discover_file(plan, path)
    return plan


def _discover_folder(plan: ImportPlan, root: Path, cancel: CancelToken | None) -> None:
    files: list[Path] = []
    for folder, dirs, names in os.walk(
        root, onerror=lambda e: plan.failed.append(FileProblem(str(e.filename), str(e)))
    ):
        if cancel is not None:
            cancel.raise_if_cancelled()
        dirs.sort()
        files.extend(Path(folder) / name for name in sorted(names))
    dicomdirs = [f for f in files if is_dicomdir_name(f.name)]
    listed: set[Path] = set()
    if dicomdirs:
        index = TreeIndex(root, files)
        for dicomdir in dicomdirs:
            sub_index = index if dicomdir.parent == root else TreeIndex(dicomdir.parent, _under(files, dicomdir.parent))
            contents = read_dicomdir(dicomdir, sub_index)
            plan.skipped.append(FileProblem(str(dicomdir), "media directory (DICOMDIR): read for its references"))
            if contents.error:
                plan.notes.append(f"{dicomdir}: unreadable DICOMDIR ({contents.error}); scanned its folder instead")
                continue
            listed.update(contents.referenced)
            plan.missing.extend(
                FileProblem(f"{dicomdir.parent / file_id}", "listed in the DICOMDIR but not found")
                for file_id in contents.missing
            )
            plan.notes.append(
                f"{dicomdir}: {contents.record_count} records, {len(contents.referenced)} files referenced, "
                f"{len(contents.missing)} missing"
            )
    # Referenced files first (the CD as its author meant it), then everything else the DICOMDIR left out.
    ordered = [f for f in files if f in listed] + [f for f in files if f not in listed and not is_dicomdir_name(f.name)]
    for path in ordered:
        _discover_file(plan, path, dicomdir_listed=path in listed)


def _under(files: list[Path], folder: Path) -> Iterator[Path]:
    for f in files:
        if f.is_relative_to(folder):
            yield f


def _discover_file(plan: ImportPlan, path: Path, *, dicomdir_listed: bool = False) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        plan.failed.append(FileProblem(str(path), f"cannot read: {exc.strerror or exc}"))
        return
    if head.startswith(ZIP_MAGIC) and not _looks_like_dicom(head):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            plan.failed.append(FileProblem(str(path), f"damaged ZIP archive: {exc}"))
            return
        plan._archives.append(archive)
        _discover_archive(plan, archive, str(path), depth=1)
        return
    plan.items.append(ImportItem(str(path), functools.partial(open, path, "rb"), dicomdir_listed))


def _discover_archive(plan: ImportPlan, archive: zipfile.ZipFile, label: str, depth: int) -> None:
    for info in archive.infolist():
        if info.is_dir():
            continue
        source = f"{label}!{info.filename}"
        if is_dicomdir_name(Path(info.filename).name):
            # Inside an archive every member is looked at anyway; the DICOMDIR adds nothing to find.
            plan.skipped.append(FileProblem(source, "media directory (DICOMDIR) inside an archive"))
            continue
        if info.filename.lower().endswith(".zip") and depth < MAX_ARCHIVE_DEPTH:
            try:
                with archive.open(info) as member:
                    nested = zipfile.ZipFile(io.BytesIO(member.read()))
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                plan.failed.append(FileProblem(source, f"damaged ZIP archive: {exc}"))
                continue
            plan._archives.append(nested)
            _discover_archive(plan, nested, source, depth + 1)
            continue
        plan.items.append(ImportItem(source, lambda a=archive, i=info: a.open(i)))  # type: ignore[misc]


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
) -> ImportReport:
    """Import everything under `paths`; returns the report (also when cancelled: what was done stays done).

    A file whose SOP Instance UID is stored already with other content is not imported (the stored copy is
    kept and the report lists it) unless `replace_existing`: then it replaces it, the previous copy kept
    under the store's replaced/ folder."""
    started = time.monotonic()
    report = ImportReport()
    cancel = cancel or CancelToken()
    try:
        plan = discover(paths, cancel)
    except Cancelled:
        report.cancelled = True
        report.elapsed_s = time.monotonic() - started
        return report
    try:
        report.skipped.extend(plan.skipped)
        report.failed.extend(plan.failed)
        report.missing.extend(plan.missing)
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
                        while len(in_flight) < WORKERS * 2 and not cancel.cancelled:
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
