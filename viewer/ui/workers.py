"""Background work for the UI: run a plain function on Qt's thread pool and get its outcome back as signals.

Usage (from the GUI thread)::

    worker = run_in_background(
        import_paths, store, paths,
        on_result=show_report, on_error=show_error, on_progress=update_bar, on_finished=done,
    )
    cancel_button.clicked.connect(worker.cancel)

The function runs on a pool thread. If it has a parameter named ``cancel`` it receives the worker's
`CancelToken`; if it has one named ``progress`` it receives a callable whose argument is delivered to
``on_progress`` in the GUI thread. Callbacks always run in the GUI thread (the signals object lives there,
so cross-thread emits are queued). A job that raises `Cancelled` ends with ``on_cancelled`` instead of
``on_error``. ``on_finished`` runs last in every case.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from viewer.core.tasks import Cancelled, CancelToken

log = logging.getLogger(__name__)

# Workers stay referenced until they finish, so a caller may drop the handle.
_live_workers: set[Worker] = set()


class Worker(QObject):
    """Handle on one background job; emits its outcome in the thread that created it (the GUI thread)."""

    result = Signal(object)
    error = Signal(object)  # the exception; its formatted traceback is in `traceback_text`
    progress = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, fn: Callable[..., Any], *args: Any, parent: QObject | None = None, **kwargs: Any) -> None:
        super().__init__(parent)
        self.fn = fn
        self.args = args
        self.kwargs = dict(kwargs)
        self.token = CancelToken()
        self.traceback_text = ""
        self.done = False
        params = _parameter_names(fn)
        if "cancel" in params and "cancel" not in self.kwargs:
            self.kwargs["cancel"] = self.token
        if "progress" in params and "progress" not in self.kwargs:
            self.kwargs["progress"] = self.progress.emit

    def cancel(self) -> None:
        """Ask the job to stop at its next check; safe to call from any thread, any number of times."""
        self.token.cancel()

    @property
    def is_cancelled(self) -> bool:
        return self.token.cancelled

    def start(self, pool: QThreadPool | None = None) -> Worker:
        _live_workers.add(self)
        self.finished.connect(self._release)
        (pool or QThreadPool.globalInstance()).start(_Runnable(self))
        return self

    def run_here(self) -> None:
        """Run synchronously in the calling thread (tests, CLI); signals still fire."""
        _Runnable(self).run()

    def _release(self) -> None:
        self.done = True
        _live_workers.discard(self)


class _Runnable(QRunnable):
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker
        self.setAutoDelete(True)

    def run(self) -> None:
        w = self.worker
        try:
            value = w.fn(*w.args, **w.kwargs)
        except Cancelled:
            w.cancelled.emit()
        except BaseException as exc:  # the job's failure is reported, never lost in a pool thread
            w.traceback_text = traceback.format_exc()
            log.debug("background job %s failed:\n%s", getattr(w.fn, "__name__", w.fn), w.traceback_text)
            w.error.emit(exc)
        else:
            if w.token.cancelled:
                w.cancelled.emit()
            w.result.emit(value)
        finally:
            w.finished.emit()


def _parameter_names(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def run_in_background(
    fn: Callable[..., Any],
    *args: Any,
    on_result: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    on_cancelled: Callable[[], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    pool: QThreadPool | None = None,
    **kwargs: Any,
) -> Worker:
    """Start `fn(*args, **kwargs)` on a pool thread; callbacks run in the GUI thread. Returns the worker."""
    worker = Worker(fn, *args, **kwargs)
    if on_result is not None:
        worker.result.connect(on_result)
    if on_error is not None:
        worker.error.connect(on_error)
    else:
        worker.error.connect(lambda exc: log.error("background job failed: %s\n%s", exc, worker.traceback_text))
    if on_progress is not None:
        worker.progress.connect(on_progress)
    if on_cancelled is not None:
        worker.cancelled.connect(on_cancelled)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    return worker.start(pool)


def wait_for_workers(timeout_ms: int = 30000) -> bool:
    """Block until the global pool is idle (application shutdown, tests)."""
    return QThreadPool.globalInstance().waitForDone(timeout_ms)


class StoreEvents(QObject):
    """Re-emits the store's change events (sent from whichever thread wrote) as a Qt signal in the GUI thread.

    Bursts (a bulk import commits hundreds of instances at once) are also delivered coalesced through
    `changed_debounced`, so views refresh a few times a second at most.
    """

    event = Signal(object)  # one viewer.core.store.StoreEvent
    changed_debounced = Signal()

    def __init__(self, store: Any, parent: QObject | None = None, debounce_ms: int = 250) -> None:
        from PySide6.QtCore import QTimer

        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.changed_debounced)
        self.event.connect(lambda _e: self._timer.start() if not self._timer.isActive() else None)
        self._unsubscribe = store.subscribe(self.event.emit)

    def close(self) -> None:
        self._unsubscribe()
