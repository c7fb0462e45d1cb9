"""Storage SCP throughput: instances/s our SCP receives from DCMTK storescu, beside DCMTK storescp.

Both receivers get the same small instances from `storescu` (one association) in the same run.
Our SCP stores durably (file fsync + directory fsync + SQLite commit before each C-STORE response);
storescp just writes files without syncing them (DCMTK 3.6.7's storescp has no fsync option at all), so the
comparison is conservative for us.

`--ceiling` also measures pynetdicom with a C-STORE handler that does nothing (no decode, no store), with
its stock polling acceptor and with our event-driven one: the most any pynetdicom SCP can reach here.

    .venv/bin/python bench/scp_bench.py [--count 1000] [--no-durable] [--ceiling]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.net import free_port
from tests.support.peers import make_small_instances, storescp
from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore
from viewer.net.scp import StorageServer


def push(ae_title: str, port: int, folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["storescu", "-aec", ae_title, "+sd", "-R", "127.0.0.1", str(port), str(folder)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _ceiling_runs(enabled: bool) -> Iterator[tuple[str, int]]:
    """Yield (label, port) of do-nothing pynetdicom SCPs, each running while the caller pushes to it."""
    if not enabled:
        return
    from pynetdicom import AE, evt

    from viewer.net.contexts import SCP_TRANSFER_SYNTAXES, storage_sop_classes

    def no_delay(event: object) -> None:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]

    for label in ("pynetdicom acceptor",):
        ae = AE("LIGHTBOX")
        for uid in storage_sop_classes():
            ae.add_supported_context(uid, SCP_TRANSFER_SYNTAXES)
        handlers = [(evt.EVT_C_STORE, lambda event: 0x0000), (evt.EVT_CONN_OPEN, no_delay)]
        address = ("127.0.0.1", free_port())
        server = ae.start_server(address, block=False, evt_handlers=handlers)
        try:
            yield f"do-nothing handler, {label}", address[1]
        finally:
            server.shutdown()


def main() -> int:
    # Debian's DCMTK leaves Nagle's algorithm on unless asked; with it, every small C-STORE waits ~40 ms for a
    # delayed ACK and both receivers measure the same network stall instead of their own speed.
    os.environ["TCP_NODELAY"] = "1"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--no-durable", action="store_true", help="store without fsync (for comparison only)")
    parser.add_argument("--ceiling", action="store_true", help="also time do-nothing pynetdicom handlers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scp-bench-") as tmp_text:
        tmp = Path(tmp_text)
        data = tmp / "data"
        make_small_instances(data, args.count)

        with storescp(tmp / "storescp-out") as peer:
            dcmtk_s = push(peer.ae_title, peer.port, data)
        dcmtk_received = len(list((tmp / "storescp-out").glob("*")))

        store = StudyStore(tmp / "store", durable=not args.no_durable)
        local = LocalNode(port=free_port(), bind_address="127.0.0.1")
        with StorageServer(store, local) as server:
            ours_s = push(local.ae_title, server.port, data)
        ours_received = store.counts()["instances"]
        store.close()
        ceilings = {label: args.count / push("LIGHTBOX", port, data) for label, port in _ceiling_runs(args.ceiling)}

    dcmtk_rate = dcmtk_received / dcmtk_s
    ours_rate = ours_received / ours_s
    print(f"instances sent:            {args.count}")
    print(f"DCMTK storescp:            {dcmtk_received} in {dcmtk_s:.2f} s = {dcmtk_rate:.0f} instances/s")
    durable = "durable" if not args.no_durable else "NOT durable"
    print(f"Lightbox SCP ({durable}): {ours_received} in {ours_s:.2f} s = {ours_rate:.0f} instances/s")
    print(f"ratio Lightbox / storescp: {ours_rate / dcmtk_rate:.0%} (target >= 50%)")
    print("note: storescp does not fsync (DCMTK 3.6.7 has no option for it); ours acknowledges only durable data")
    for label, rate in ceilings.items():
        print(f"ceiling, {label}: {rate:.0f} instances/s = {rate / dcmtk_rate:.0%} of storescp")
    return 0 if ours_received == args.count and dcmtk_received == args.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
