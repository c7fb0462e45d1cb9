"""DIMSE statuses, association rejections and network failures, explained in plain words.

Everything the network layer reports to a user goes through here, so the Q/R panel, the settings
dialog's Test button and the logs all say the same thing about the same failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    SUCCESS = "success"
    PENDING = "pending"
    CANCEL = "cancel"
    WARNING = "warning"
    FAILURE = "failure"


def category(status: int) -> Category:
    if status == 0x0000:
        return Category.SUCCESS
    if status in (0xFF00, 0xFF01):
        return Category.PENDING
    if status == 0xFE00:
        return Category.CANCEL
    if status == 0x0001 or (status & 0xF000) == 0xB000 or status == 0x0107 or status == 0x0116:
        return Category.WARNING
    return Category.FAILURE


_EXACT: dict[int, str] = {
    0x0000: "Success.",
    0xFF00: "In progress.",
    0xFF01: "In progress (some optional keys are not supported by the archive).",
    0xFE00: "Cancelled.",
    0x0001: "Completed with a warning.",
    0x0110: "The peer could not process the request (processing failure).",
    0x0111: "The peer already has this instance and refused it (duplicate SOP instance).",
    0x0112: "The instance does not exist on the peer.",
    0x0122: "The peer does not support this kind of object or service (SOP class not supported).",
    0x0124: "The peer refused the request: this workstation is not authorised.",
    0x0210: "The peer reports a duplicate request (duplicate invocation).",
    0x0211: "The peer did not recognise the operation.",
    0xA700: "The peer is out of resources (for example its disk is full).",
    0xA701: "The archive cannot count the matches (out of resources).",
    0xA702: "The archive could not send the images (out of resources for sub-operations).",
    0xA801: "The archive does not know where to send the images (move destination unknown).",
    0xA900: "The data set does not match its SOP class (identifier does not match).",
    0xB000: "Completed with warnings: some elements were coerced, or some sub-operations failed.",
    0xB006: "Stored, but some elements were discarded.",
    0xB007: "Stored, but the data set does not match its SOP class.",
    0xC000: "The peer cannot understand the object or request.",
    0xC001: "The peer cannot process the request.",
}

_RANGES: list[tuple[int, int, str]] = [
    (0xA700, 0xA7FF, "The peer is out of resources."),
    (0xA900, 0xA9FF, "The data set does not match its SOP class."),
    (0xC000, 0xCFFF, "The peer cannot understand the object or request."),
    (0xB000, 0xBFFF, "Completed with a warning."),
]


def explain_status(status: int, *, operation: str = "") -> str:
    """One sentence about a DIMSE status, e.g. for C-FIND A700: "too many matches, narrow your search"."""
    if operation.upper() == "C-FIND" and (status & 0xFF00) == 0xA700:
        return (
            "The archive found too many matches or ran out of resources: narrow your search (add a name, ID or dates)."
        )
    if operation.upper() in ("C-MOVE", "C-GET") and status == 0xA700:
        return "The archive is out of resources for this retrieve: retrieve fewer studies at a time."
    if operation.upper() in ("C-MOVE", "C-GET") and status == 0xB000:
        return "Retrieve finished, but some images failed or came with warnings."
    text = _EXACT.get(status)
    if text is None:
        for low, high, range_text in _RANGES:
            if low <= status <= high:
                text = range_text
                break
        else:
            text = "The peer reported a failure."
    return f"{text} (status 0x{status:04X})"


def move_destination_hint(local_ae: str, local_host: str, local_port: int) -> str:
    return f"Register {local_ae} at {local_host}:{local_port} in the archive as a move destination."


# A-ASSOCIATE-RJ: (result, source, reason) per PS3.8 table 9-21.
_REJECT_REASONS: dict[tuple[int, int], str] = {
    (1, 1): "no reason given",
    (1, 2): "the application context is not supported",
    (1, 3): "our AE title (calling AE) is not recognised by the peer — add it to the peer's list of known AEs",
    (1, 7): "the peer's AE title (called AE) is wrong — check the AE title configured for this node",
    (2, 1): "no reason given",
    (2, 2): "the protocol version is not supported",
    (3, 1): "the peer is busy (temporary congestion)",
    (3, 2): "the peer has reached its maximum number of associations",
}


def explain_rejection(result: int, source: int, reason: int) -> str:
    permanence = "permanently" if result == 1 else "for now (transient)"
    detail = _REJECT_REASONS.get((source, reason), f"reason {reason}")
    return f"The peer rejected the association {permanence}: {detail}."


class FailureKind(StrEnum):
    CONNECTION_REFUSED = "connection refused"
    TIMEOUT = "timeout"
    REJECTED = "rejected"
    ABORTED = "aborted"
    NO_CONTEXT = "no presentation context"
    STATUS = "status"
    CANCELLED = "cancelled"


@dataclass
class NetworkError(Exception):
    """A network operation failed; `message` is meant for the user as it stands."""

    message: str
    kind: FailureKind = FailureKind.STATUS
    status: int | None = None

    def __str__(self) -> str:
        return self.message


def connection_refused(host: str, port: int) -> NetworkError:
    return NetworkError(
        f"Connection refused by {host}:{port}: nothing is listening there. Check the host and port, "
        "and that the peer's DICOM service is running.",
        FailureKind.CONNECTION_REFUSED,
    )


def timed_out(host: str, port: int, what: str = "an answer") -> NetworkError:
    return NetworkError(
        f"No {what} from {host}:{port} in time (timeout). The host may be unreachable, a firewall may be "
        "dropping the connection, or the peer is overloaded.",
        FailureKind.TIMEOUT,
    )


def aborted(host: str, port: int) -> NetworkError:
    return NetworkError(
        f"The peer at {host}:{port} closed the connection without negotiating (aborted). Check the AE titles, "
        "and whether the peer expects TLS (or does not).",
        FailureKind.ABORTED,
    )
