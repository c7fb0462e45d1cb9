"""A background print queue: jobs run one at a time on a worker thread, with status, history and retry.

No Qt: the UI subscribes with a plain callback (called from the worker thread) and marshals to the GUI
thread itself.  The sender is injectable so the queue can drive any output (DICOM printer, PDF).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from viewer.core.settings import PrinterSettings
from viewer.print.job import PrintJob

log = logging.getLogger(__name__)


class JobState(StrEnum):
    QUEUED = "queued"
    PRINTING = "printing"
    DONE = "done"
    DONE_WITH_WARNINGS = "done with warnings"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one queued job, safe to hand to another thread."""

    job_id: int
    title: str
    printer_name: str
    state: JobState
    message: str = ""
    progress: float = 0.0
    films_printed: int = 0
    film_count: int = 0
    attempts: int = 0
    warnings: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    submitted_at: float = 0.0
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.DONE_WITH_WARNINGS, JobState.FAILED, JobState.CANCELLED)


@dataclass
class SendOutcome:
    films_printed: int
    warnings: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


# sender(printer, job, progress(message, fraction), event(message)) → outcome; raises on failure.
Sender = Callable[[PrinterSettings, PrintJob, Callable[[str, float], None], Callable[[str], None]], SendOutcome]
Listener = Callable[[JobStatus], None]


def dicom_sender(
    *, calling_ae: str = "LIGHTBOX", ssl_context_for: Callable[[PrinterSettings], object] | None = None
) -> Sender:
    """A sender printing to a DICOM printer through `viewer.print.scu`."""

    def send(
        printer: PrinterSettings,
        job: PrintJob,
        progress: Callable[[str, float], None],
        event: Callable[[str], None],
    ) -> SendOutcome:
        from viewer.print.scu import print_films

        ssl_context = ssl_context_for(printer) if ssl_context_for is not None and printer.use_tls else None
        result = print_films(
            printer,
            job.preset,
            job.payloads(),
            calling_ae=calling_ae,
            color=job.color,
            ssl_context=ssl_context,  # type: ignore[arg-type]
            on_progress=progress,
            on_event=event,
            film_count=len(job.sheets()),
        )
        return SendOutcome(result.films_printed, list(result.warnings), list(result.events))

    return send


@dataclass
class _Entry:
    status: JobStatus
    printer: PrinterSettings
    job: PrintJob
    cancelled: bool = False


class PrintQueue:
    """Jobs print in submission order on one worker thread (printers take one session at a time)."""

    def __init__(self, sender: Sender, *, auto_retries: int = 0, retry_delay_s: float = 5.0) -> None:
        self._sender = sender
        self._auto_retries = auto_retries
        self._retry_delay_s = retry_delay_s
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue[int | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._listeners: list[Listener] = []
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._worker = threading.Thread(target=self._run, name="print-queue", daemon=True)
        self._stopped = False
        self._worker.start()

    # ------------------------------------------------------------------ public API
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def submit(self, printer: PrinterSettings, job: PrintJob) -> int:
        job_id = next(self._ids)
        status = JobStatus(
            job_id=job_id,
            title=job.title or f"Print job {job_id}",
            printer_name=printer.name or printer.ae_title,
            state=JobState.QUEUED,
            message="Waiting",
            film_count=len(job.sheets()),
            submitted_at=time.time(),
        )
        with self._lock:
            self._entries[job_id] = _Entry(status, printer, job)
            self._active += 1
        self._notify(status)
        self._pending.put(job_id)
        return job_id

    def retry(self, job_id: int) -> None:
        """Send a failed or cancelled job again (all its films)."""
        with self._lock:
            entry = self._entries[job_id]
            if entry.status.state not in (JobState.FAILED, JobState.CANCELLED):
                raise ValueError(f"job {job_id} is {entry.status.state.value}; only failed jobs can be retried")
            entry.cancelled = False
            entry.status = replace(entry.status, state=JobState.QUEUED, message="Waiting (retry)", progress=0.0)
            status = entry.status
            self._active += 1
        self._notify(status)
        self._pending.put(job_id)

    def cancel(self, job_id: int) -> None:
        """Cancel a job that has not started; a job already printing finishes its session."""
        with self._lock:
            entry = self._entries[job_id]
            if entry.status.state is not JobState.QUEUED:
                return
            entry.cancelled = True
            entry.status = replace(entry.status, state=JobState.CANCELLED, message="Cancelled", finished_at=time.time())
            status = entry.status
            self._active -= 1
            self._idle.notify_all()
        self._notify(status)

    def status(self, job_id: int) -> JobStatus:
        with self._lock:
            return self._entries[job_id].status

    def jobs(self) -> list[JobStatus]:
        with self._lock:
            return [e.status for e in self._entries.values()]

    def wait(self, job_id: int | None = None, timeout: float = 60.0) -> bool:
        """Block until the job (or every job) is finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                done = self._entries[job_id].status.finished if job_id is not None else self._active == 0
                if done:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)

    def close(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._pending.put(None)
            self._worker.join(timeout=30)

    # ------------------------------------------------------------------ worker
    def _update(self, job_id: int, **changes: object) -> JobStatus:
        with self._lock:
            entry = self._entries[job_id]
            entry.status = replace(entry.status, **changes)  # type: ignore[arg-type]
            status = entry.status
            if status.finished:
                self._active -= 1
                self._idle.notify_all()
        self._notify(status)
        return status

    def _notify(self, status: JobStatus) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(status)
            except Exception:
                log.exception("print queue listener failed")

    def _run(self) -> None:
        while True:
            job_id = self._pending.get()
            if job_id is None:
                return
            with self._lock:
                entry = self._entries[job_id]
                if entry.cancelled:
                    continue
            self._print(job_id, entry)

    def _print(self, job_id: int, entry: _Entry) -> None:
        events: list[str] = []
        attempts = entry.status.attempts
        last_error = ""
        for attempt in range(self._auto_retries + 1):
            attempts += 1
            self._update(job_id, state=JobState.PRINTING, message="Starting", attempts=attempts, progress=0.0)

            def progress(message: str, fraction: float) -> None:
                self._update(job_id, message=message, progress=max(0.0, min(1.0, fraction)))

            def event(message: str) -> None:
                events.append(message)
                self._update(job_id, events=tuple(events))

            try:
                outcome = self._sender(entry.printer, entry.job, progress, event)
            except Exception as exc:
                last_error = str(exc) or exc.__class__.__name__
                log.warning("print job %d attempt %d failed: %s", job_id, attempt + 1, last_error)
                printed = int(getattr(exc, "films_printed", 0) or 0)
                # A refusal by the printer (a DIMSE status) will not change by itself; only retry
                # connection-level trouble automatically.
                if getattr(exc, "status", None) is not None or attempt == self._auto_retries:
                    self._update(
                        job_id,
                        state=JobState.FAILED,
                        message=last_error,
                        films_printed=printed,
                        finished_at=time.time(),
                    )
                    return
                self._update(job_id, message=f"{last_error} — retrying in {self._retry_delay_s:g} s")
                time.sleep(self._retry_delay_s)
                continue
            warnings = tuple(outcome.warnings)
            state = JobState.DONE_WITH_WARNINGS if warnings else JobState.DONE
            message = f"Printed {outcome.films_printed} film(s)" + (f"; {warnings[0]}" if warnings else "")
            self._update(
                job_id,
                state=state,
                message=message,
                progress=1.0,
                films_printed=outcome.films_printed,
                warnings=warnings,
                events=tuple(events or outcome.events),
                finished_at=time.time(),
            )
            _audit_printed(entry.printer, entry.job)
            return


def _audit_printed(printer: Any, job: Any) -> None:
    """One "printed" audit message per study whose images went onto film."""
    import pydicom

    from viewer.core import audit

    studies: dict[str, str] = {}
    for item in getattr(job, "items", []):
        try:
            ds = pydicom.dcmread(item.path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "PatientID"])
        except Exception:  # the film is printed; a file gone since must not turn that into an error
            continue
        studies.setdefault(str(ds.get("StudyInstanceUID", "")), str(ds.get("PatientID", "")))
    for study_uid, patient_id in studies.items():
        if study_uid:
            audit.record_printed(
                study_uid,
                patient_id,
                printer_ae=getattr(printer, "ae_title", ""),
                printer_host=getattr(printer, "host", ""),
            )
