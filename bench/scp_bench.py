"""Storage SCP throughput: instances/s our SCP receives from DCMTK storescu, beside DCMTK storescp.

Both receivers get the same small instances from `storescu` (one association) in the same run.
Our SCP stores durably (file fsync + directory fsync + SQLite commit before each C-STORE response);
storescp just writes files without syncing them, so the comparison is conservative for us.

    .venv/bin/python bench/scp_bench.py [--count 1000] [--no-durable]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
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


def main() -> int:
    # Debian's DCMTK leaves Nagle's algorithm on unless asked; with it, every small C-STORE waits ~40 ms for a
    # delayed ACK and both receivers measure the same network stall instead of their own speed.
    os.environ["TCP_NODELAY"] = "1"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--no-durable", action="store_true", help="store without fsync (for comparison only)")
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

    dcmtk_rate = dcmtk_received / dcmtk_s
    ours_rate = ours_received / ours_s
    print(f"instances sent:            {args.count}")
    print(f"DCMTK storescp:            {dcmtk_received} in {dcmtk_s:.2f} s = {dcmtk_rate:.0f} instances/s")
    durable = "durable" if not args.no_durable else "NOT durable"
    print(f"Lightbox SCP ({durable}): {ours_received} in {ours_s:.2f} s = {ours_rate:.0f} instances/s")
    print(f"ratio Lightbox / storescp: {ours_rate / dcmtk_rate:.0%} (target >= 50%)")
    return 0 if ours_received == args.count and dcmtk_received == args.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
