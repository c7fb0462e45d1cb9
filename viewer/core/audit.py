"""The audit trail: who received, imported, viewed, printed, exported, sent or deleted which study.

Each event is one JSON line in `<data folder>/audit/audit.jsonl`, shaped after the DICOM audit message
(PS3.15 A.5, RFC 3881): EventIdentification (EventID code, EventActionCode, EventDateTime,
EventOutcomeIndicator), ActiveParticipant (UserID, AE title, network access point), AuditSourceIdentification
and ParticipantObjectIdentification (the study UID and the patient ID). Optionally the same JSON goes to a
syslog collector (UDP, RFC 5426 style transport; the body is this JSON, not the PS3.15 XML schema).

The audit trail is the one place patient identifiers are written outside the store; it never goes through
the ordinary `logging` tree, whose messages must carry no patient data.

Instances arrive one by one; the store listener groups them per study, source and event and writes one
message per group once the group has been quiet for `quiet_s` (or on `flush`/`close`), as PS3.15 expects one
"DICOM Instances Transferred" message per study per transfer rather than one per instance.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import json
import logging
import logging.handlers
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECEIVED = "received"
IMPORTED = "imported"
VIEWED = "viewed"
PRINTED = "printed"
EXPORTED = "exported"
SENT = "sent"
DELETED = "deleted"

# EventOutcomeIndicator (RFC 3881 / PS3.15 A.5.1)
SUCCESS = 0
MINOR_FAILURE = 4
SERIOUS_FAILURE = 8
MAJOR_FAILURE = 12


@dataclass(frozen=True)
class _EventKind:
    code: str
    meaning: str
    action: str  # EventActionCode: C create, R read, U update, D delete, E execute
    other_role: tuple[str, str] | None  # role code of the non-local participant, if any
    local_role: tuple[str, str] | None


_SOURCE = ("110153", "Source Role ID")
_DESTINATION = ("110152", "Destination Role ID")
_SOURCE_MEDIA = ("110155", "Source Media")
_DESTINATION_MEDIA = ("110154", "Destination Media")

EVENT_KINDS: dict[str, _EventKind] = {
    RECEIVED: _EventKind("110104", "DICOM Instances Transferred", "C", _SOURCE, _DESTINATION),
    SENT: _EventKind("110104", "DICOM Instances Transferred", "R", _DESTINATION, _SOURCE),
    IMPORTED: _EventKind("110107", "Import", "C", _SOURCE_MEDIA, _DESTINATION),
    VIEWED: _EventKind("110103", "DICOM Instances Accessed", "R", None, None),
    PRINTED: _EventKind("110106", "Export", "R", _DESTINATION_MEDIA, _SOURCE),
    EXPORTED: _EventKind("110106", "Export", "R", _DESTINATION_MEDIA, _SOURCE),
    DELETED: _EventKind("110103", "DICOM Instances Accessed", "D", None, None),
}

# Store sources (the `source=` given to StudyStore.add_*) that mean "came over the network from AE x".
NETWORK_SOURCE_PREFIXES = ("scp:", "get:", "move:")


def _code(code: str, meaning: str, scheme: str = "DCM") -> dict[str, str]:
    return {"csd-code": code, "codeSystemName": scheme, "originalText": meaning}


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some service environments
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


@dataclass
class AuditLog:
    """Append-only JSON-lines audit trail (one per data folder), thread-safe."""

    folder: Path
    local_ae: str = "LIGHTBOX"
    syslog_address: tuple[str, int] | None = None
    quiet_s: float = 2.0
    user: str = field(default_factory=_os_user)
    host: str = field(default_factory=socket.gethostname)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _pending: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    _patients: dict[str, str] = field(default_factory=dict, repr=False)
    _timer: threading.Timer | None = field(default=None, repr=False)
    _syslog: logging.Logger | None = field(default=None, repr=False)
    _peer_hosts: dict[str, str] = field(default_factory=dict, repr=False)
    _closed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.folder, 0o700)
        if self.syslog_address is not None:
            handler = logging.handlers.SysLogHandler(
                address=self.syslog_address, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV
            )
            handler.setFormatter(logging.Formatter("lightbox-audit: %(message)s"))
            # A logger of its own that does not propagate: audit messages hold patient IDs.
            syslog = logging.getLogger(f"lightbox.audit.syslog.{id(self)}")
            syslog.propagate = False
            syslog.setLevel(logging.INFO)
            syslog.addHandler(handler)
            self._syslog = syslog

    @property
    def path(self) -> Path:
        return self.folder / "audit.jsonl"

    # ------------------------------------------------------------------ writing one message
    def record(
        self,
        event: str,
        *,
        study_uid: str,
        patient_id: str = "",
        outcome: int = SUCCESS,
        remote_ae: str = "",
        remote_host: str = "",
        destination: str = "",
        source: str = "",
        instances: int = 0,
        user: str = "",
        description: str = "",
    ) -> dict[str, Any]:
        """Write one audit message now and return it. `event` is one of the module's event names."""
        kind = EVENT_KINDS[event]
        if patient_id:
            self._patients[study_uid] = patient_id
        else:
            patient_id = self._patients.get(study_uid, "")
        participants: list[dict[str, Any]] = []
        local_user: dict[str, Any] = {
            "UserID": user or self.user,
            "AlternativeUserID": f"AETITLES={self.local_ae};PID={os.getpid()}",
            "UserIsRequestor": event not in (RECEIVED,),
            "NetworkAccessPointID": self.host,
            "NetworkAccessPointTypeCode": "1",
        }
        if kind.local_role:
            local_user["RoleIDCode"] = _code(*kind.local_role)
        participants.append(local_user)
        if kind.other_role:
            other: dict[str, Any] = {
                "UserID": remote_ae or destination or source or "unknown",
                "UserIsRequestor": event == RECEIVED,
                "RoleIDCode": _code(*kind.other_role),
            }
            if remote_ae:
                other["AlternativeUserID"] = f"AETITLES={remote_ae}"
            host = remote_host or self._peer_hosts.get(remote_ae, "")
            if host:
                other["NetworkAccessPointID"] = host
                other["NetworkAccessPointTypeCode"] = "2" if _is_ip(host) else "1"
            if destination or source:
                other["MediaIdentifier"] = destination or source
            participants.append(other)
        objects: list[dict[str, Any]] = [
            {
                "ParticipantObjectTypeCode": 2,
                "ParticipantObjectTypeCodeRole": 3,
                "ParticipantObjectIDTypeCode": _code("110180", "Study Instance UID"),
                "ParticipantObjectID": study_uid,
                "ParticipantObjectDescription": {"NumberOfInstances": instances} if instances else {},
            }
        ]
        if patient_id:
            objects.append(
                {
                    "ParticipantObjectTypeCode": 1,
                    "ParticipantObjectTypeCodeRole": 1,
                    "ParticipantObjectIDTypeCode": _code("2", "Patient Number", "RFC-3881"),
                    "ParticipantObjectID": patient_id,
                }
            )
        identification: dict[str, Any] = {
            "EventID": _code(kind.code, kind.meaning),
            "EventActionCode": kind.action,
            "EventDateTime": _now(),
            "EventOutcomeIndicator": outcome,
        }
        if description:
            identification["EventOutcomeDescription"] = description
        message = {
            "Event": event,
            "EventIdentification": identification,
            "ActiveParticipant": participants,
            "AuditSourceIdentification": {"AuditSourceID": f"{self.local_ae}@{self.host}", "AuditSourceTypeCode": "4"},
            "ParticipantObjectIdentification": objects,
        }
        self._write(message)
        return message

    def _write(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        if self._syslog is not None:
            try:
                self._syslog.info(line.rstrip("\n"))
            except Exception:  # a dead collector must not stop the workstation; the file has the record
                log.warning("audit syslog sink failed")

    # ------------------------------------------------------------------ grouping store events
    def note(
        self,
        event: str,
        *,
        study_uid: str,
        patient_id: str = "",
        remote_ae: str = "",
        source: str = "",
        outcome: int = SUCCESS,
    ) -> None:
        """Count one instance towards a grouped message, written when the group goes quiet."""
        key = (event, study_uid, remote_ae or source)
        with self._lock:
            group = self._pending.setdefault(
                key,
                {"patient_id": patient_id, "remote_ae": remote_ae, "source": source, "count": 0, "failed": 0},
            )
            group["count"] += 1
            if outcome != SUCCESS:
                group["failed"] += 1
            group["patient_id"] = group["patient_id"] or patient_id
            group["last"] = time.monotonic()
            self._schedule()

    def _schedule(self) -> None:
        if self._timer is None and not self._closed:
            self._timer = threading.Timer(self.quiet_s, self._flush_quiet)
            self._timer.daemon = True
            self._timer.start()

    def _flush_quiet(self) -> None:
        with self._lock:
            self._timer = None
            self._flush(only_quiet=True)
            if self._pending:
                self._schedule()

    def flush(self) -> None:
        """Write every pending grouped message now."""
        with self._lock:
            self._flush(only_quiet=False)

    def _flush(self, *, only_quiet: bool) -> None:
        now = time.monotonic()
        for key in list(self._pending):
            group = self._pending[key]
            if only_quiet and now - group["last"] < self.quiet_s:
                continue
            del self._pending[key]
            event, study_uid, _ = key
            outcome = (
                SUCCESS
                if not group["failed"]
                else (MINOR_FAILURE if group["count"] > group["failed"] else SERIOUS_FAILURE)
            )
            self.record(
                event,
                study_uid=study_uid,
                patient_id=group["patient_id"],
                remote_ae=group["remote_ae"],
                source=group["source"],
                instances=group["count"],
                outcome=outcome,
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._flush(only_quiet=False)
        if self._syslog is not None:
            for handler in list(self._syslog.handlers):
                handler.close()
                self._syslog.removeHandler(handler)

    def remember_peer(self, ae_title: str, host: str) -> None:
        """The network address a calling AE came from (the SCP tells us; store events do not carry it)."""
        with self._lock:
            self._peer_hosts[ae_title] = host

    # ------------------------------------------------------------------ wiring
    def attach(self, store: Any) -> Callable[[], None]:
        """Audit what the store reports: instances received or imported, studies deleted."""

        def on_store_event(event: Any) -> None:
            if event.kind == "deleted":
                self.record(DELETED, study_uid=event.study_uid)
                return
            source = getattr(event, "source", "") or ""
            patient_id = self._patients.get(event.study_uid)
            if patient_id is None:
                study = store.study(event.study_uid)
                patient_id = study.patient_id if study is not None else ""
                self._patients[event.study_uid] = patient_id
            if event.kind == "replaced":
                # A stored copy replaced by a correction is recorded on its own, not folded into a group.
                network = source.startswith(NETWORK_SOURCE_PREFIXES)
                self.record(
                    RECEIVED if network else IMPORTED,
                    study_uid=event.study_uid,
                    patient_id=patient_id,
                    remote_ae=source.split(":", 1)[1] if network else "",
                    source="" if network else source,
                    instances=1,
                    description=f"instance {event.sop_instance_uid} replaced; previous copy kept under replaced/",
                )
                return
            if source.startswith(NETWORK_SOURCE_PREFIXES):
                remote_ae = source.split(":", 1)[1]
                self.note(RECEIVED, study_uid=event.study_uid, patient_id=patient_id, remote_ae=remote_ae)
            else:
                self.note(IMPORTED, study_uid=event.study_uid, patient_id=patient_id, source=source)

        return store.subscribe(on_store_event)

    def attach_server(self, server: Any) -> Callable[[], None]:
        """Learn peer addresses from the Storage SCP's events (`StorageServer.subscribe`)."""

        def on_scp_event(event: Any) -> None:
            if getattr(event, "calling_ae", "") and getattr(event, "address", ""):
                self.remember_peer(event.calling_ae, str(event.address).rsplit(":", 1)[0])

        return server.subscribe(on_scp_event)


# ---------------------------------------------------------------------- the application's audit trail
_default: AuditLog | None = None
_default_lock = threading.Lock()


def install(home: Path | str, store: Any = None, *, local_ae: str = "LIGHTBOX", **options: Any) -> AuditLog:
    """Open the data folder's audit trail, make it the default for `record`, and subscribe it to `store`."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = AuditLog(Path(home) / "audit", local_ae=local_ae, **options)
        if store is not None:
            _default.attach(store)
        return _default


def default_log() -> AuditLog | _NullAudit:
    return _default if _default is not None else _NULL


def uninstall() -> None:
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = None


class _NullAudit:
    """Stands in before `install`; says once that events are not being recorded."""

    _warned = False

    def record(self, event: str, **kwargs: Any) -> dict[str, Any]:
        if not _NullAudit._warned:
            log.warning("audit trail not installed; %s events are not recorded", event)
            _NullAudit._warned = True
        return {}


_NULL = _NullAudit()


def record(event: str, **kwargs: Any) -> dict[str, Any]:
    """Record an event in the installed audit trail (see `AuditLog.record` for the arguments)."""
    return default_log().record(event, **kwargs)


def record_viewed(study_uid: str, patient_id: str = "", **kwargs: Any) -> dict[str, Any]:
    """Call when a study is opened in a viewer."""
    return record(VIEWED, study_uid=study_uid, patient_id=patient_id, **kwargs)


def record_printed(
    study_uid: str, patient_id: str = "", *, printer_ae: str = "", printer_host: str = "", **kwargs: Any
) -> dict[str, Any]:
    """Call when a print job with images of the study was sent to a printer."""
    return record(
        PRINTED, study_uid=study_uid, patient_id=patient_id, remote_ae=printer_ae, remote_host=printer_host, **kwargs
    )


def record_exported(study_uid: str, patient_id: str = "", *, destination: str = "", **kwargs: Any) -> dict[str, Any]:
    """Call when a study was written out (folder, CD, file); `export_studies` does this itself."""
    return record(EXPORTED, study_uid=study_uid, patient_id=patient_id, destination=destination, **kwargs)


def record_sent(
    study_uid: str, patient_id: str = "", *, remote_ae: str = "", remote_host: str = "", **kwargs: Any
) -> dict[str, Any]:
    """Call when instances of the study were sent to another node (C-STORE SCU)."""
    return record(
        SENT, study_uid=study_uid, patient_id=patient_id, remote_ae=remote_ae, remote_host=remote_host, **kwargs
    )


def record_deleted(study_uid: str, patient_id: str = "", **kwargs: Any) -> dict[str, Any]:
    """Deletions through `StudyStore.delete_study` are recorded by the store listener already."""
    return record(DELETED, study_uid=study_uid, patient_id=patient_id, **kwargs)


def read(path: Path | str) -> list[dict[str, Any]]:
    """All messages of an audit file (for tests and an audit viewer)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
