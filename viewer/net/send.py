"""Storage SCU: send instances (files or store instances) to a configured node over one association.

Negotiation (PS3.4 Annex B, PS3.5 10): for each SOP class among the instances we propose one presentation
context with Explicit and Implicit VR Little Endian, and one more per other transfer syntax the instances are
stored in (a context of its own, so the peer can accept the stored syntax and the uncompressed fallback
independently, as storescu does). An instance goes as stored when the peer accepted its syntax, so its pixel
data reaches the peer byte for byte. When the peer accepted only the uncompressed context for a compressed
instance, it is decompressed (pydicom, with pylibjpeg or GDCM) and sent in Explicit VR Little Endian (or
converted to Implicit VR by the encoder if that is all the peer took).

Every instance gets its own outcome (the C-STORE status and the peer's comment, or why it was not sent), and a
peer that cannot be reached gives a report saying so rather than an exception. Cancelling takes effect between
instances; an instance in flight completes.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.association import Association

from viewer.core.model import Instance
from viewer.core.settings import LocalNode, RemoteNode
from viewer.net.association import MAX_PRESENTATION_CONTEXTS, associate, release
from viewer.net.contexts import UNCOMPRESSED
from viewer.net.statuses import Category, NetworkError, category, explain_status

log = logging.getLogger(__name__)

# What every storage SCP must take (PS3.5 10.1: Implicit VR Little Endian is the default transfer syntax).
FALLBACK_SYNTAXES: tuple[str, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_UNCOMPRESSED = frozenset(UNCOMPRESSED)

SendItem = Path | str | Instance

NO_ANSWER = "No answer from the peer (DIMSE timeout or the association was aborted)."


class Outcome(StrEnum):
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"
    CANCELLED = "cancelled"  # not sent: the send was cancelled before its turn


@dataclass(frozen=True)
class InstanceResult:
    """What became of one instance. `status` is the peer's C-STORE status, None when none was sent."""

    path: str
    sop_instance_uid: str
    sop_class_uid: str
    outcome: Outcome
    status: int | None = None
    comment: str = ""
    stored_syntax: str = ""
    sent_syntax: str = ""

    @property
    def transcoded(self) -> bool:
        return bool(self.sent_syntax) and self.sent_syntax != self.stored_syntax


@dataclass(frozen=True)
class SendProgress:
    done: int
    total: int
    last: InstanceResult


@dataclass
class SendReport:
    node: str
    results: list[InstanceResult] = field(default_factory=list)
    # Why the association could not be opened (or was lost), in words for the user; "" when it went through.
    error: str = ""
    cancelled: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def succeeded(self) -> int:
        return self.count(Outcome.SUCCESS)

    @property
    def warnings(self) -> int:
        return self.count(Outcome.WARNING)

    @property
    def failed(self) -> int:
        return self.count(Outcome.FAILURE)

    @property
    def ok(self) -> bool:
        """Everything was stored (warnings included) and nothing was left unsent."""
        return not self.error and all(r.outcome in (Outcome.SUCCESS, Outcome.WARNING) for r in self.results)

    def summary(self) -> str:
        parts = [f"{self.succeeded + self.warnings} of {len(self.results)} sent to {self.node}"]
        if self.warnings:
            parts.append(f"{self.warnings} with warnings")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cancelled:
            parts.append(f"cancelled, {self.count(Outcome.CANCELLED)} not sent")
        text = ", ".join(parts) + "."
        return f"{text} {self.error}" if self.error else text


@dataclass
class _Pending:
    path: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax: str = ""
    problem: str = ""  # why it cannot be sent at all (unreadable file)

    def result(self, outcome: Outcome, **kwargs: object) -> InstanceResult:
        return InstanceResult(
            path=self.path,
            sop_instance_uid=self.sop_instance_uid,
            sop_class_uid=self.sop_class_uid,
            outcome=outcome,
            stored_syntax=self.transfer_syntax,
            **kwargs,  # type: ignore[arg-type]
        )


def _pending(item: SendItem) -> _Pending:
    if isinstance(item, Instance):
        return _Pending(item.path, item.sop_class_uid, item.sop_instance_uid, item.transfer_syntax)
    path = str(item)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return _Pending(
            path,
            str(ds.get("SOPClassUID", "")),
            str(ds.get("SOPInstanceUID", "")),
            str(ds.file_meta.get("TransferSyntaxUID", "")),
        )
    except (OSError, InvalidDicomError, AttributeError, ValueError) as exc:
        return _Pending(path, problem=f"Cannot read the file: {exc}")


def storage_contexts(items: Sequence[_Pending]) -> list[tuple[str, Sequence[str]]]:
    """Per SOP class: the uncompressed context first, then one per other stored syntax while room remains."""
    classes = list(dict.fromkeys(p.sop_class_uid for p in items if not p.problem and p.sop_class_uid))
    contexts: list[tuple[str, Sequence[str]]] = [(uid, FALLBACK_SYNTAXES) for uid in classes]
    stored = dict.fromkeys(
        (p.sop_class_uid, p.transfer_syntax)
        for p in items
        if not p.problem and p.transfer_syntax and p.transfer_syntax not in FALLBACK_SYNTAXES
    )
    for sop_class, syntax in stored:
        if len(contexts) >= MAX_PRESENTATION_CONTEXTS:
            break  # the rest are transcoded to the uncompressed context
        contexts.append((sop_class, [syntax]))
    return contexts


class _AssociationLost(Exception):
    pass


def _is_cancelled(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()


def send_instances(
    node: RemoteNode,
    items: Iterable[SendItem],
    *,
    on_progress: Callable[[SendProgress], None] | None = None,
    cancel: threading.Event | None = None,
    local: LocalNode | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> SendReport:
    """C-STORE every item to `node` on one association; never raises for network trouble (see the report).

    `ssl_context` is the client TLS context when the node is reached over TLS
    (`viewer.net.association.client_ssl_context`), None for plain TCP.
    """
    local = local or LocalNode()
    pending = [_pending(item) for item in items]
    report = SendReport(node=node.name or node.ae_title)
    total = len(pending)

    def record(result: InstanceResult) -> None:
        report.results.append(result)
        if on_progress is not None:
            on_progress(SendProgress(len(report.results), total, result))

    if not pending:
        return report
    if _is_cancelled(cancel):
        report.cancelled = True
        for item in pending:
            record(item.result(Outcome.CANCELLED, comment="Cancelled before sending."))
        return report
    contexts = storage_contexts(pending)
    assoc: Association | None = None
    if contexts:
        try:
            assoc = associate(node, local, contexts=contexts, ssl_context=ssl_context)
        except NetworkError as exc:
            report.error = exc.message
    if assoc is None:
        for item in pending:
            record(item.result(Outcome.FAILURE, comment=item.problem or report.error or "Nothing to send."))
        return report
    try:
        for index, item in enumerate(pending):
            if _is_cancelled(cancel):
                report.cancelled = True
                for rest in pending[index:]:
                    record(rest.result(Outcome.CANCELLED, comment="Cancelled before sending."))
                break
            if item.problem:
                record(item.result(Outcome.FAILURE, comment=item.problem))
                continue
            lost = f"The association with {node.ae_title} was lost while sending."
            if not assoc.is_established:
                report.error = report.error or lost
                record(item.result(Outcome.FAILURE, comment=report.error))
                continue
            try:
                result = _send_one(assoc, item, message_id=index % 0xFFFF + 1)  # Message ID is a US
            except _AssociationLost:  # it went between our check and the request
                report.error = report.error or lost
                record(item.result(Outcome.FAILURE, comment=report.error))
                continue
            record(result)
            if result.outcome is Outcome.FAILURE and result.status is None and result.comment == NO_ANSWER:
                # After a DIMSE timeout or an abort the association's state is unknown: end it
                # rather than send more into it; the rest are reported as not sent.
                report.error = report.error or lost
                assoc.abort()
    finally:
        release(assoc)
    log.info(
        "sent %d of %d instances to %s (%d warnings, %d failed%s)",
        report.succeeded + report.warnings,
        total,
        report.node,
        report.warnings,
        report.failed,
        ", cancelled" if report.cancelled else "",
    )
    return report


def _send_one(assoc: Association, item: _Pending, *, message_id: int) -> InstanceResult:
    accepted = [
        str(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts if cx.abstract_syntax == item.sop_class_uid
    ]
    if not accepted:
        return item.result(
            Outcome.FAILURE,
            comment=f"The peer does not accept this kind of object (SOP class {item.sop_class_uid}).",
        )
    uncompressed = [ts for ts in FALLBACK_SYNTAXES if ts in accepted] + [
        ts for ts in accepted if ts in _UNCOMPRESSED and ts not in FALLBACK_SYNTAXES
    ]
    try:
        ds = pydicom.dcmread(item.path)
    except (OSError, InvalidDicomError, ValueError) as exc:
        return item.result(Outcome.FAILURE, comment=f"Cannot read the file: {exc}")
    stored = str(ds.file_meta.get("TransferSyntaxUID", item.transfer_syntax))
    if stored in accepted:
        sent_syntax = stored
    elif not uncompressed:
        return item.result(
            Outcome.FAILURE, comment=f"The peer accepts neither transfer syntax {stored} nor an uncompressed one."
        )
    elif stored in _UNCOMPRESSED:
        sent_syntax = uncompressed[0]  # the encoder converts between uncompressed syntaxes
    else:
        try:
            # The peer cannot take the compressed form: Explicit VR Little Endian. The pixel values are those
            # the stored form decodes to, so it is the same instance and keeps its SOP Instance UID (pydicom
            # would make a new one by default, and the archive would then hold a stranger).
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # decoders raise anything; the reason goes in the report
            return item.result(Outcome.FAILURE, comment=f"Could not decompress it for the peer: {exc}")
        sent_syntax = uncompressed[0]
    try:
        rsp = assoc.send_c_store(ds, msg_id=message_id)
    except RuntimeError as exc:  # pynetdicom: the association is no longer established
        raise _AssociationLost from exc
    except (ValueError, AttributeError) as exc:
        return item.result(Outcome.FAILURE, comment=f"Could not encode it for sending: {exc}", sent_syntax=sent_syntax)
    return _from_response(item, rsp, sent_syntax)


def _from_response(item: _Pending, rsp: Dataset | None, sent_syntax: str) -> InstanceResult:
    if rsp is None or "Status" not in rsp:
        return item.result(
            Outcome.FAILURE,
            comment=NO_ANSWER,
            sent_syntax=sent_syntax,
        )
    status = int(rsp.Status)
    peer_comment = str(rsp.get("ErrorComment", "") or "").strip()
    kind = category(status)
    if kind is Category.SUCCESS:
        return item.result(Outcome.SUCCESS, status=status, comment=peer_comment, sent_syntax=sent_syntax)
    text = explain_status(status, operation="C-STORE")
    if peer_comment:
        text = f"{text} The peer says: {peer_comment}"
    outcome = Outcome.WARNING if kind is Category.WARNING else Outcome.FAILURE
    return item.result(outcome, status=status, comment=text, sent_syntax=sent_syntax)
