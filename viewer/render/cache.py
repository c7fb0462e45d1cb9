"""A bounded cache of decoded frames with background prefetch (threads, no Qt).

API
---
``FrameCache(loader, *, max_bytes=1 GiB, workers=1)``
    `loader(key) -> np.ndarray` decodes one frame (called on worker threads, and on the caller's thread by
    `get_blocking`). Keys are any hashable (the viewer uses (path, frame_index)).
``get(key) -> np.ndarray | None``           cached frame or None, never blocks.
``get_blocking(key) -> np.ndarray``         cached frame, else decoded now on the calling thread.
``request(key, on_ready)``                  decode in the background if needed; `on_ready(key, frame)` is
                                            called from a worker thread (or at once when cached). Errors go
                                            to `on_error(key, exc)` when given.
``set_visible(keys)``                        frames that are never evicted (what the viewports show).
``prefetch(keys)``                           background decode in this priority order, replacing the previous
                                            prefetch list (frames already requested stay queued).
``bytes_used``, ``max_bytes``, ``stats()``, ``clear()``, ``close()``.

Eviction is least-recently-used among frames that are neither visible nor within the latest prefetch window
(the nearest prefetch keys that fit), then among all frames that are not visible. Frames are stored as the
decoder gives them (int16/uint16 for CT), so a full 1,000-slice 512×512 CT costs its 16-bit size plus a small
per-entry overhead.
Prefetch stops adding frames once the cache is full of frames nearer the focus, so it never thrashes.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

Key = Hashable
ReadyCallback = Callable[[Key, np.ndarray], None]
ErrorCallback = Callable[[Key, Exception], None]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    decoded: int = 0
    evicted: int = 0
    errors: int = 0


class FrameCache:
    def __init__(self, loader: Callable[[Key], np.ndarray], *, max_bytes: int = 1 << 30, workers: int = 1) -> None:
        self._loader = loader
        self.max_bytes = int(max_bytes)
        self._frames: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._visible: set[Key] = set()
        self._bytes = 0
        self._lock = threading.Condition()
        self._urgent: list[tuple[Key, ReadyCallback | None, ErrorCallback | None]] = []
        self._prefetch: list[Key] = []
        self._keep: set[Key] = set()  # the nearest prefetch keys that fit: evicted only after everything else
        self._in_flight: set[Key] = set()
        self._waiters: dict[Key, list[tuple[ReadyCallback | None, ErrorCallback | None]]] = {}
        self._closed = False
        self._stats = CacheStats()
        self._threads = [
            threading.Thread(target=self._work, name=f"frame-cache-{i}", daemon=True) for i in range(max(1, workers))
        ]
        for t in self._threads:
            t.start()

    # ----------------------------------------------------------------- queries
    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, key: Key) -> bool:
        with self._lock:
            return key in self._frames

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(**vars(self._stats))

    def get(self, key: Key) -> np.ndarray | None:
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
                self._stats.hits += 1
            else:
                self._stats.misses += 1
            return frame

    def get_blocking(self, key: Key) -> np.ndarray:
        frame = self.get(key)
        if frame is not None:
            return frame
        frame = self._loader(key)
        with self._lock:
            self._stats.decoded += 1
            self._store(key, frame)
        return frame

    # ----------------------------------------------------------------- scheduling
    def request(self, key: Key, on_ready: ReadyCallback | None = None, on_error: ErrorCallback | None = None) -> None:
        with self._lock:
            frame = self._frames.get(key)
            if frame is None:
                if key in self._in_flight:
                    self._waiters.setdefault(key, []).append((on_ready, on_error))
                else:
                    self._urgent.append((key, on_ready, on_error))
                    self._lock.notify()
                return
            self._frames.move_to_end(key)
        if on_ready is not None:
            on_ready(key, frame)

    def set_visible(self, keys: Iterable[Key]) -> None:
        with self._lock:
            self._visible = set(keys)

    def prefetch(self, keys: Iterable[Key]) -> None:
        with self._lock:
            ordered = list(keys)
            if self._frames:
                average = self._bytes / len(self._frames)
                fit = max(int(self.max_bytes // max(average, 1)) - len(self._visible), 0)
            else:
                fit = len(ordered)
            self._keep = set(ordered[:fit])
            self._prefetch = [k for k in ordered[:fit] if k not in self._frames]
            self._lock.notify_all()

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._prefetch.clear()
            self._bytes = 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._urgent.clear()
            self._prefetch.clear()
            self._lock.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    # ----------------------------------------------------------------- internals
    def _store(self, key: Key, frame: np.ndarray) -> bool:
        """Insert (lock held); False when the frame did not fit without evicting visible frames."""
        if key in self._frames:
            self._frames.move_to_end(key)
            return True
        size = frame.nbytes
        while self._bytes + size > self.max_bytes:
            victim = self._victim()
            if victim is None:
                break
            self._bytes -= self._frames.pop(victim).nbytes
            self._stats.evicted += 1
        if self._bytes + size > self.max_bytes and key not in self._visible:
            return False
        self._frames[key] = frame
        self._bytes += size
        return True

    def _victim(self) -> Key | None:
        """Least recently used frame outside the visible and kept sets, else outside the visible set."""
        victim = next((k for k in self._frames if k not in self._visible and k not in self._keep), None)
        if victim is None:
            victim = next((k for k in self._frames if k not in self._visible), None)
        return victim

    def _next_job(self) -> tuple[Key, ReadyCallback | None, ErrorCallback | None, bool] | None:
        """Wait for work (lock held by the caller's `with`)."""
        while not self._closed:
            while self._urgent:
                key, on_ready, on_error = self._urgent.pop(0)
                if key in self._frames:
                    return key, on_ready, on_error, False
                if key in self._in_flight:
                    self._waiters.setdefault(key, []).append((on_ready, on_error))
                    continue
                return key, on_ready, on_error, True
            while self._prefetch:
                key = self._prefetch.pop(0)
                if key in self._frames or key in self._in_flight:
                    continue
                # a full cache takes prefetched frames only by evicting frames outside the prefetch window;
                # when only wanted frames are left, stop rather than churn
                if self._bytes >= self.max_bytes and not any(
                    k not in self._visible and k not in self._keep for k in self._frames
                ):
                    self._prefetch.clear()
                    break
                return key, None, None, True
            self._lock.wait()
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._next_job()
                if job is None:
                    return
                key, on_ready, on_error, needs_decode = job
                if not needs_decode:
                    frame = self._frames[key]
                else:
                    self._in_flight.add(key)
            if needs_decode:
                try:
                    frame = self._loader(key)
                except Exception as exc:
                    log.warning("decoding %s failed: %s", key, exc)
                    with self._lock:
                        self._in_flight.discard(key)
                        self._stats.errors += 1
                        waiters = self._waiters.pop(key, [])
                    for _, err in [(on_ready, on_error), *waiters]:
                        if err is not None:
                            err(key, exc)
                    continue
                with self._lock:
                    self._in_flight.discard(key)
                    self._stats.decoded += 1
                    self._store(key, frame)
                    waiters = self._waiters.pop(key, [])
            else:
                waiters = []
            for ready, _ in [(on_ready, on_error), *waiters]:
                if ready is not None:
                    try:
                        ready(key, frame)
                    except Exception:
                        log.exception("frame callback failed")


def neighbour_order(center: int, count: int, *, direction: int = 1, limit: int | None = None) -> list[int]:
    """Indices around `center` nearest first, favouring `direction` (the way the user is scrolling) 2:1."""
    out: list[int] = []
    ahead, behind = center + direction, center - direction
    step = 0
    while (0 <= ahead < count) or (0 <= behind < count):
        if 0 <= ahead < count:
            out.append(ahead)
            ahead += direction
        ahead_done = not 0 <= ahead < count
        if (step % 2 == 1 or ahead_done) and 0 <= behind < count:
            out.append(behind)
            behind -= direction
        step += 1
        if limit is not None and len(out) >= limit:
            break
    return out[:limit] if limit is not None else out
