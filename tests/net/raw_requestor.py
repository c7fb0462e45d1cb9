"""A bare-socket DICOM requestor for SCP tests that need what no well-behaved toolkit sends.

pynetdicom and DCMTK refuse to put a non-ASCII UID in a command set, to trickle an association request a
byte at a time, or to pick the source address of a connection; this sends exactly the bytes a test names.
pynetdicom's PDU classes encode the A-ASSOCIATE-RQ and decode the answer, so only the hostile part is ours.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pynetdicom.pdu import A_ASSOCIATE_AC
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"


def associate_rq(calling_ae: str, called_ae: str, contexts: Sequence[tuple[int, str, Sequence[str]]]) -> bytes:
    """The bytes of an A-ASSOCIATE-RQ proposing `contexts` as (context ID, abstract syntax, transfer syntaxes)."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ

    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT
    primitive.calling_ae_title = calling_ae
    primitive.called_ae_title = called_ae
    proposed = []
    for context_id, abstract, syntaxes in contexts:
        context = PresentationContext()
        context.context_id = context_id
        context.abstract_syntax = abstract
        context.transfer_syntax = list(syntaxes)
        proposed.append(context)
    primitive.presentation_context_definition_list = proposed
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = "1.2.826.0.1.3680043.9.7433.1.1"
    primitive.user_information = [max_length, class_uid]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def command_set(elements: Sequence[tuple[int, bytes]]) -> bytes:
    """An implicit VR little endian command set (group 0000) from (element, raw value) pairs, group length first."""
    body = b"".join(struct.pack("<HHI", 0x0000, element, len(value)) + value for element, value in elements)
    return struct.pack("<HHI", 0x0000, 0x0000, 4) + struct.pack("<I", len(body)) + body


def _even(value: bytes) -> bytes:
    return value + b"\x00" if len(value) % 2 else value


def c_store_rq(message_id: int, sop_class: bytes, sop_instance: bytes) -> bytes:
    """A C-STORE-RQ command set with the UIDs' bytes as given (NUL-padded to even length)."""
    sop_class, sop_instance = _even(sop_class), _even(sop_instance)
    return command_set(
        [
            (0x0002, sop_class),
            (0x0100, struct.pack("<H", 0x0001)),
            (0x0110, struct.pack("<H", message_id)),
            (0x0700, struct.pack("<H", 0x0000)),
            (0x0800, struct.pack("<H", 0x0000)),  # a data set follows
            (0x1000, sop_instance),
        ]
    )


def c_echo_rq(message_id: int) -> bytes:
    return command_set(
        [
            (0x0002, VERIFICATION.encode() + b"\x00"),
            (0x0100, struct.pack("<H", 0x0030)),
            (0x0110, struct.pack("<H", message_id)),
            (0x0800, struct.pack("<H", 0x0101)),
        ]
    )


def pdata(context_id: int, fragment: bytes, *, command: bool, last: bool = True) -> bytes:
    control = (0x01 if command else 0x00) | (0x02 if last else 0x00)
    item = struct.pack(">IBB", len(fragment) + 2, context_id, control) + fragment
    return b"\x04\x00" + struct.pack(">I", len(item)) + item


def parse_command(data: bytes) -> dict[int, bytes]:
    elements: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(data):
        _, element, length = struct.unpack_from("<HHI", data, offset)
        elements[element] = data[offset + 8 : offset + 8 + length]
        offset += 8 + length
    return elements


@dataclass
class RawAssociation:
    """One association over a plain socket: `rejection` is (result, source, reason) when refused, else the
    accepted contexts are in `accepted` (context ID -> transfer syntax)."""

    sock: socket.socket
    accepted: dict[int, str] = field(default_factory=dict)
    rejection: tuple[int, int, int] | None = None

    @classmethod
    def open(
        cls,
        port: int,
        contexts: Sequence[tuple[int, str, Sequence[str]]],
        *,
        calling_ae: str = "RAWSCU",
        called_ae: str = "LIGHTBOX",
        source: str = "127.0.0.1",
        timeout: float = 10.0,
    ) -> RawAssociation:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        association = cls(sock)
        sock.sendall(associate_rq(calling_ae, called_ae, contexts))
        pdu_type, body = association.read_pdu()
        if pdu_type == 0x03:
            association.rejection = (body[1], body[2], body[3])
        elif pdu_type == 0x02:
            accept = A_ASSOCIATE_AC()
            accept.decode(b"\x02\x00" + struct.pack(">I", len(body)) + body)
            association.accepted = {
                int(cx.context_id): str(cx.transfer_syntax[0])
                for cx in accept.to_primitive().presentation_context_definition_results_list
                if cx.result == 0x00
            }
        else:
            raise AssertionError(f"unexpected answer to the association request: PDU type {pdu_type:#04x}")
        return association

    def read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the SCP closed the connection")
            data += chunk
        return data

    def read_pdu(self) -> tuple[int, bytes]:
        header = self.read_exact(6)
        return header[0], self.read_exact(struct.unpack(">I", header[2:6])[0])

    def read_response(self) -> dict[int, bytes]:
        """The next command set the SCP sends (reassembled from its P-DATA fragments)."""
        parts = []
        while True:
            pdu_type, body = self.read_pdu()
            if pdu_type != 0x04:
                raise ConnectionError(f"the SCP sent PDU type {pdu_type:#04x} instead of a response")
            offset = 0
            while offset < len(body):
                length = struct.unpack_from(">I", body, offset)[0]
                control = body[offset + 5]
                parts.append(body[offset + 6 : offset + 4 + length])
                offset += 4 + length
                if control & 0x03 == 0x03:
                    return parse_command(b"".join(parts))

    def echo(self, context_id: int, message_id: int = 1) -> int:
        self.sock.sendall(pdata(context_id, c_echo_rq(message_id), command=True))
        return struct.unpack("<H", self.read_response()[0x0900])[0]

    def release(self) -> None:
        self.sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
        self.read_pdu()
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
