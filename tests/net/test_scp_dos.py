"""Connection-slot denial of service against the Storage SCP (issue 14, finding 5).

Loopback has many addresses on Linux (all of 127.0.0.0/8), so the "other host" is modelled by binding the
attacker's sockets to 127.0.0.2 while DCMTK storescu, which cannot choose its source address, comes from
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from tests.net.raw_requestor import VERIFICATION, RawAssociation, associate_rq
from tests.support.peers import make_study, run_tool
from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore
from viewer.net.scp import ScpEvent, StorageServer

pytestmark = pytest.mark.network

ATTACKER = "127.0.0.2"
CT = "1.2.840.10008.5.1.4.1.1.2"


@contextlib.contextmanager
def scp(tmp_path: Path, **settings: object) -> Iterator[tuple[StorageServer, list[ScpEvent]]]:
    events: list[ScpEvent] = []
    local = LocalNode(port=0, bind_address="127.0.0.1", **settings)  # type: ignore[arg-type]
    store = StudyStore(tmp_path / "store")
    server = StorageServer(store, local, on_event=events.append)
    server.start()
    try:
        yield server, events
    finally:
        server.stop()
        store.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when the SCP has closed (or aborted) the connection: no more bytes to read, or only an A-ABORT."""
    try:
        sock.settimeout(0.05)
        data = sock.recv(64)
    except TimeoutError:
        return False
    except OSError:
        return True
    return data == b"" or data[:1] == b"\x07"


def test_association_request_deadline_counts_from_connect_not_from_each_byte(tmp_path: Path) -> None:
    # ARTIM 2 s. A peer trickling its A-ASSOCIATE-RQ one byte every 0.4 s restarted a per-read timeout forever.
    with scp(tmp_path, acse_timeout_s=2.0) as (server, _):
        request = associate_rq("SLOW", server.ae_title, [(1, VERIFICATION, [ExplicitVRLittleEndian])])
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        started = time.monotonic()
        closed_after = None
        try:
            for byte in request[:-1]:  # never the last byte: the request is never complete
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed_after = time.monotonic() - started
                    break
                if _closed_by_peer(sock):
                    closed_after = time.monotonic() - started
                    break
                time.sleep(0.4)
                if time.monotonic() - started > 12:
                    break
        finally:
            sock.close()
        assert closed_after is not None, "the trickling connection was kept open past its deadline"
        assert closed_after < 8.0
        # The server goes on: a proper association is accepted at once.
        association = RawAssociation.open(server.port, [(1, VERIFICATION, [ExplicitVRLittleEndian])])
        assert association.rejection is None
        assert association.echo(1) == 0x0000
        association.release()


def test_association_doing_only_c_echo_is_aborted_when_idle(tmp_path: Path) -> None:
    with scp(tmp_path, idle_association_s=2.0) as (server, events):
        association = RawAssociation.open(server.port, [(1, VERIFICATION, [ExplicitVRLittleEndian])])
        started = time.monotonic()
        ended_after = None
        try:
            while time.monotonic() - started < 15:
                try:
                    assert association.echo(1) == 0x0000
                except (ConnectionError, OSError):
                    ended_after = time.monotonic() - started
                    break
                time.sleep(0.3)
        finally:
            association.close()
        assert ended_after is not None, "an association sending only C-ECHO was kept for 15 s"
        assert ended_after >= 1.5  # not before its idle limit
        deadline = time.monotonic() + 5
        while not any(e.kind == "aborted" and "C-ECHO" in e.message for e in events) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(e.kind == "aborted" and "C-ECHO" in e.message for e in events)
        assert server.active_associations() == 0


def test_slowloris_and_held_associations_from_one_host_leave_room_for_another(tmp_path: Path) -> None:
    """40 trickling sockets and 10 associations kept alive with C-ECHO, all from 127.0.0.2 with one AE
    title, on default limits (10 associations): storescu from 127.0.0.1 still stores."""
    outgoing = make_study(tmp_path / "outgoing", series_counts=(3,))
    with scp(tmp_path) as (server, events):
        stop = threading.Event()
        held: list[RawAssociation] = []
        trickling: list[socket.socket] = []
        try:
            for _ in range(10):
                association = RawAssociation.open(
                    server.port, [(1, VERIFICATION, [ExplicitVRLittleEndian])], calling_ae="HOG", source=ATTACKER
                )
                if association.rejection is None:
                    held.append(association)
                else:
                    association.close()
            assert 1 <= len(held) < 10  # one host may not take every association
            request = associate_rq("HOG", server.ae_title, [(1, VERIFICATION, [ExplicitVRLittleEndian])])
            for _ in range(40):
                with contextlib.suppress(OSError):
                    sock = socket.create_connection(("127.0.0.1", server.port), timeout=2, source_address=(ATTACKER, 0))
                    sock.sendall(request[:1])
                    trickling.append(sock)
            assert len(trickling) == 40  # all of them connected: the attack is as big as the issue says

            def keep_busy() -> None:
                offset = 1
                while not stop.wait(0.5):
                    for association in held:
                        with contextlib.suppress(OSError, ConnectionError):
                            association.echo(1)
                    for sock in trickling:
                        with contextlib.suppress(OSError):
                            sock.sendall(request[offset : offset + 1])
                    offset = min(offset + 1, len(request) - 1)

            busy = threading.Thread(target=keep_busy, daemon=True)
            busy.start()
            time.sleep(1.0)
            proc = run_tool(
                ["storescu", "-aet", "LEGIT", "-aec", server.ae_title, "127.0.0.1", str(server.port)]
                + [str(f) for f in outgoing.files],
                check=False,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "Association Rejected" not in proc.stdout + proc.stderr
        finally:
            stop.set()
            for association in held:
                association.close()
            for sock in trickling:
                sock.close()
        stored = {e.sop_instance_uid for e in events if e.kind == "stored" and e.calling_ae == "LEGIT"}
        assert len(stored) == len(outgoing.files)
        assert any(e.kind == "rejected" and "from that host" in e.message for e in events)
