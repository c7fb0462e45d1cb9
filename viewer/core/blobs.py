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
import mmap
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
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


class SpareFiles:
    """New, empty temp files made ahead of need on a helper thread, for the Storage SCP's small objects.

    Creating a file is the one step of storing a small received instance whose cost the disk, not this
    process, sets: on one machine the same create took from 12 us to 0.7 ms as the filesystem's inode
    tables were or were not in memory, up to half of what an instance cost us. The receiving thread takes
    a file made ahead and only writes and renames it. The helper starts on first use, keeps `DEPTH` files
    ready, and after `IDLE_S` without use removes them and ends (an idle store keeps no spare files), as
    it does on `release` (a server stopping) and `close`.

    The helper makes its files in `DEPTH + 1` subfolders in turn: creating a file holds its folder's lock
    for as long as the create takes, and renaming the file taken out of that same folder would wait for
    it (a rename cost 0.3 ms instead of 15 us when both shared one folder). With one more folder than
    files ready, the file being taken is never in the folder the helper is creating in.
    """

    DEPTH = 8
    IDLE_S = 5.0
    _RETRY_S = 1.0  # after the helper failed (a full disk), how long the receiving thread makes its own

    def __init__(self, folder: str) -> None:
        self._folder = folder
        self._ready: deque[tuple[str, int]] = deque()
        self._cond = threading.Condition()
        self._helper: threading.Thread | None = None
        self._closed = False
        self._last_take = 0.0
        self._failed_at = -self._RETRY_S
        self._made = 0

    def take(self) -> tuple[str, int]:
        """A new empty file (0600) in the folder: its path and a descriptor open for writing, the caller's
        to close. Made here and now when none is ready (a full disk raises `StoreFullError`)."""
        with self._cond:
            now = time.monotonic()
            self._last_take = now
            spare = self._ready.popleft() if self._ready else None
            if self._helper is None and not self._closed and now - self._failed_at >= self._RETRY_S:
                self._helper = threading.Thread(target=self._make_ahead, name="lightbox-spare-files", daemon=True)
                self._helper.start()
            self._cond.notify()
        return spare if spare is not None else self._make()

    def release(self) -> None:
        """Remove the files made ahead now (the helper makes new ones when next asked)."""
        with self._cond:
            spares, self._ready = list(self._ready), deque()
            self._last_take = 0.0  # the helper, if running, ends at its next look
            self._cond.notify()
        _remove(spares)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            helper = self._helper
        self.release()
        if helper is not None:
            helper.join(timeout=5.0)
        self.release()  # one the helper made while it was closing

    def _make(self, subfolder: str = "") -> tuple[str, int]:
        folder = os.path.join(self._folder, subfolder) if subfolder else self._folder
        path = os.path.join(folder, f"{uuid.uuid4().hex}.part")
        with full_disk_is_store_full():
            try:
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            except FileNotFoundError:
                private_dir(Path(folder))
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)

    def _make_ahead(self) -> None:
        while True:
            with self._cond:
                while (
                    not self._closed
                    and len(self._ready) >= self.DEPTH
                    and time.monotonic() - self._last_take < self.IDLE_S
                ):
                    self._cond.wait(self.IDLE_S)
                if self._closed or time.monotonic() - self._last_take >= self.IDLE_S:
                    spares, self._ready = list(self._ready), deque()
                    self._helper = None
                    break
            self._made += 1
            try:
                spare = self._make(str(self._made % (self.DEPTH + 1)))
            except (OSError, StoreFullError):
                with self._cond:
                    self._failed_at = time.monotonic()
                    self._helper = None
                return
            with self._cond:
                if not self._closed:
                    self._ready.append(spare)
                    continue
            _remove([spare])
        _remove(spares)


def _remove(spares: Iterable[tuple[str, int]]) -> None:
    for path, fd in spares:
        close_quietly(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


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


def write_chunks_to(fd: int, chunks: Iterable[bytes | bytearray | memoryview], *, sync: bool) -> None:
    """Write the chunks through `fd`, fsynced when asked, and close it; a full disk becomes `StoreFullError`."""
    with full_disk_is_store_full():
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)


def write_chunks(path: Path | str, chunks: Iterable[bytes | bytearray | memoryview], *, sync: bool) -> None:
    """Write a new file (0600), fsynced when asked; a full disk becomes `StoreFullError`.

    Plain os.write calls: the chunks are already whole buffers, so a buffered writer would only copy them."""
    with full_disk_is_store_full():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    write_chunks_to(fd, chunks, sync=sync)


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


class Journal:
    """Lines that must outlive this process being killed, for the price of a memory copy each.

    A fixed-size private file mapped shared: a line copied into the mapping is in the page cache at once,
    so a killed process leaves it for recovery to read (a power cut is the group sync's business, as for
    the files the lines name). A write(2) per line cost as much as writing the object itself on a busy
    filesystem: each one dirtied the file's inode. `clear` zeroes what was written; readers stop at the
    first NUL and ignore a line cut short (a kill in the middle of copying it, before any answer).
    """

    SIZE = 1 << 18

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._end = 0

    def append(self, line: bytes) -> bool:
        """Add one line (ending in a newline); False when it does not fit until the next `clear`."""
        if self._map is None:
            self._open()
        assert self._map is not None
        end = self._end + len(line)
        if end > self.SIZE:
            return False
        self._map[self._end : end] = line
        self._end = end
        return True

    def clear(self) -> None:
        if self._map is not None and self._end:
            self._map[: self._end] = bytes(self._end)
            self._end = 0

    def close(self) -> None:
        """Unmap and close; the file is removed when nothing in it is left to recover."""
        mapping, self._map = self._map, None
        fd, self._fd = self._fd, None
        if mapping is not None:
            mapping.close()
        if fd is not None:
            os.close(fd)
            if self._end == 0:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)

    def _open(self) -> None:
        private_dir(Path(self.path).parent)
        with full_disk_is_store_full():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
            try:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, self.SIZE)  # blocks now, not one page fault at a time
                else:
                    os.ftruncate(fd, self.SIZE)
                self._map = mmap.mmap(fd, self.SIZE)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd

    @staticmethod
    def read_lines(path: Path | str) -> list[str]:
        data = Path(path).read_bytes().split(b"\0", 1)[0]
        whole, _, _cut_short = data.rpartition(b"\n")
        return whole.decode("utf-8", "replace").splitlines()
