"""Cooperative cancellation and progress for long jobs, shared by core code and the UI's workers (no Qt here)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """Raised inside a job when its `CancelToken` was cancelled; the job stops cleanly."""


class CancelToken:
    """A flag a job checks between steps; `cancel()` may be called from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Progress:
    """How far a counted job is: `done` of `total` items (total 0 while still unknown)."""

    done: int
    total: int
    started_at: float
    message: str = ""

    @property
    def elapsed_s(self) -> float:
        return max(time.monotonic() - self.started_at, 1e-9)

    @property
    def rate(self) -> float:
        """Items per second so far."""
        return self.done / self.elapsed_s

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[Progress], None]
