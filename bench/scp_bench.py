"""Storage SCP throughput: instances/s our SCP receives from DCMTK storescu, beside DCMTK storescp.

Both receivers get the same small instances from `storescu` (one association) in the same run, and the
whole exchange is timed (association, every C-STORE and its response, release).

Our SCP is timed as the app runs it: each instance written atomically and listed in the store's journal
before its response, its index row committed with its group (up to 64 rows or 50 ms, and before the release
is answered), the fsyncs grouped (`LocalNode.sync_each_instance` off; at the end of the association and
within a second).
storescp writes its files without syncing at all (DCMTK 3.6.7 has no option to), so this is the like-for-like
figure. `--sync-each` also times the setting that syncs every instance before answering.

`--ceiling` also times two C-STORE handlers that do nothing (no decode, no store): on our acceptor and on
pynetdicom's, to show what the protocol layer alone costs.

    .venv/bin/python bench/scp_bench.py [--count 1000] [--sync-each] [--ceiling]
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


class _DoNothingServer(StorageServer):
    def c_store(self, info: object, command: object, transfer_syntax: str, data_set: bytes) -> tuple[int, str]:
        return 0x0000, ""


def _ceiling_runs(enabled: bool, store: StudyStore) -> Iterator[tuple[str, int]]:
    """Yield (label, port) of do-nothing SCPs, each running while the caller pushes to it."""
    if not enabled:
        return
    with _DoNothingServer(store, LocalNode(port=free_port(), bind_address="127.0.0.1")) as server:
        yield "do-nothing handler, our acceptor", server.port
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


def _receive(root: Path, data: Path, *, sync_each: bool) -> tuple[int, float]:
    store = StudyStore(root)
    local = LocalNode(port=free_port(), bind_address="127.0.0.1", sync_each_instance=sync_each)
    with StorageServer(store, local) as server:
        seconds = push(local.ae_title, server.port, data)
    received = store.counts()["instances"]
    store.close()
    return received, seconds


def _median(runs: list[tuple[int, float]]) -> tuple[int, float]:
    ordered = sorted(runs, key=lambda run: run[1])
    return ordered[len(ordered) // 2]


def main() -> int:
    # Debian's DCMTK leaves Nagle's algorithm on unless asked; with it, every small C-STORE waits ~40 ms for a
    # delayed ACK and both receivers measure the same network stall instead of their own speed.
    os.environ["TCP_NODELAY"] = "1"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--sync-each", action="store_true", help="also time syncing every instance before answering")
    parser.add_argument("--ceiling", action="store_true", help="also time do-nothing handlers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scp-bench-") as tmp_text:
        tmp = Path(tmp_text)
        data = tmp / "data"
        make_small_instances(data, args.count)

        # Alternate the two receivers over a few rounds and keep each one's median: the machines this runs on
        # are noisy, and a single pair of runs can differ by a third either way.
        dcmtk_runs, ours_runs = [], []
        for round_index in range(args.rounds):
            out = tmp / f"storescp-out-{round_index}"
            with storescp(out) as peer:
                seconds = push(peer.ae_title, peer.port, data)
            dcmtk_runs.append((len(list(out.glob("*"))), seconds))
            ours_runs.append(_receive(tmp / f"store-{round_index}", data, sync_each=False))
        dcmtk_received, dcmtk_s = _median(dcmtk_runs)
        ours_received, ours_s = _median(ours_runs)
        sync_each = _receive(tmp / "store-sync-each", data, sync_each=True) if args.sync_each else None
        spare = StudyStore(tmp / "spare")
        ceilings = {
            label: args.count / push("LIGHTBOX", port, data) for label, port in _ceiling_runs(args.ceiling, spare)
        }
        spare.close()

    dcmtk_rate = dcmtk_received / dcmtk_s
    ours_rate = ours_received / ours_s
    print(f"instances sent:            {args.count} per round, {args.rounds} rounds, medians below")
    print(f"DCMTK storescp:            {dcmtk_received} in {dcmtk_s:.2f} s = {dcmtk_rate:.0f} instances/s")
    print(f"Lightbox SCP:              {ours_received} in {ours_s:.2f} s = {ours_rate:.0f} instances/s")
    print(f"ratio Lightbox / storescp: {ours_rate / dcmtk_rate:.0%} (target >= 100%, issue 14)")
    print("  (both write without an fsync per instance; ours syncs each association's instances as a group)")
    if sync_each is not None:
        rate = sync_each[0] / sync_each[1]
        print(f"Lightbox, sync each:       {rate:.0f} instances/s = {rate / dcmtk_rate:.0%} of storescp")
    for label, rate in ceilings.items():
        print(f"ceiling, {label}: {rate:.0f} instances/s = {rate / dcmtk_rate:.0%} of storescp")
    return 0 if ours_received == args.count and dcmtk_received == args.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
