"""The store's files: private folders and files, new files written whole, syncs, locks and the temp files
a received object is written into. No index and no DICOM here (`viewer.core.store` is the facade over both).

API: `private_dir`, `private_file`, `open_new`, `write_chunks`, `write_chunks_to`, `fsync_dir`,
`sync_filesystem_of`, `release_page_cache`, `hold_shared_lock`, `full_disk_is_store_full` / `is_disk_full`,
`IncomingFile` (a large object written as it arrives), `SpareFiles` (temp files made ahead of need),
`ChainedStream`, `StoreFullError`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

from viewer.core.errors import StoreError

DIR_MODE = 0o700
FILE_MODE = 0o600


class StoreFullError(StoreError):
    """The disk holding the store is full; nothing was changed (`rolled_back`: a batch's uncommitted adds
    were undone with it)."""

    rolled_back: bool = False


def private_dir(path: Path) -> None:
    """Make (or keep) a folder readable by the user alone, whatever the umask (finding 11)."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, DIR_MODE)


def private_file(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    except OSError:
        return
    if path.stat().st_mode & 0o077:
        os.chmod(path, FILE_MODE)


def open_new(path: Path) -> BinaryIO:
    """A new file for writing, 0600 whatever the umask (os.open's mode, not open()'s 0666 & ~umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    return os.fdopen(fd, "wb")


def close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class IncomingFile:
    """A file being written into the store's temp folder, hashed as it is written (a large object is not
    read back for that); `StudyStore.add_incoming` stores it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        with full_disk_is_store_full():
            self._file: BinaryIO | None = open_new(path)

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None, "already closed"
        with full_disk_is_store_full():
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
def full_disk_is_store_full() -> Iterator[None]:
    """A write that fails for want of space becomes `StoreFullError`, the message the user sees."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc):
            raise StoreFullError("the disk holding the study store is full") from exc
        raise


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == 13 or "disk is full" in str(exc)  # SQLITE_FULL
    return False


def hold_shared_lock(path: Path) -> int | None:
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        return None
    return fd


def fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_chunks(path: Path | str, chunks: Iterable[bytes | bytearray | memoryview], *, sync: bool) -> None:
    """Write a new file (0600), fsynced when asked; a full disk becomes `StoreFullError`.

    Plain os.write calls: the chunks are already whole buffers, so a buffered writer would only copy them."""
    with full_disk_is_store_full():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)


def release_page_cache(paths: Iterable[Path]) -> None:
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


def sync_filesystem_of(path: Path) -> None:
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
