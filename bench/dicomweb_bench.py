"""DICOMweb retrieve throughput and time to first image, beside C-MOVE from the same Orthanc in the same run.

One Orthanc (with its DICOMweb plugin, basic auth) holds a 500-slice CT made from pydicom's CT_small.dcm with
fresh UIDs. Each round retrieves the whole study twice into fresh stores, alternating the order:
- WADO-RS (`viewer.net.dicomweb.retrieve`: one multipart/related stream, transfer-syntax=*),
- C-MOVE (`viewer.net.scu.move`) to our own Storage SCP (`viewer.net.scp.StorageServer`),
both ending when every instance is in the store, synced as the app syncs received instances.

Time to first image: viewing without importing (`OrderedFetcher`), from a cold start (instance metadata
search included) until the middle slice is in the temporary area and its pixels are decoded.
Orthanc is started with TCP_NODELAY=1 (see `main`) so C-MOVE is not held back by delayed ACKs.
Peak memory: the process's resident set sampled every 5 ms during each phase, above what it held before.

    .venv/bin/python bench/dicomweb_bench.py [--count 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pydicom

from tests.support.net import free_port
from tests.support.orthanc_dicomweb import DicomWebPeer, orthanc_dicomweb
from tests.support.peers import make_study, storescu
from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore
from viewer.net import dicomweb, scu
from viewer.net.scp import StorageServer

PAGE = 4096


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class PeakRss:
    """Highest resident set size while the block runs, above the size at its start."""

    def __init__(self) -> None:
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> PeakRss:
        self.base = self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def above_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def timed(run: Callable[[], int]) -> tuple[float, int, float]:
    with PeakRss() as memory:
        started = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - started
    return elapsed, count, memory.above_mib


def wado(peer: DicomWebPeer, study_uid: str, root: Path, count: int) -> Callable[[], int]:
    def run() -> int:
        store = StudyStore(root)
        try:
            result = dicomweb.retrieve(peer.web_node(), "STUDY", {"StudyInstanceUID": study_uid}, store, total=count)
            assert result.received == count, result
            return len(store.instances_for_study(study_uid))
        finally:
            store.close()

    return run


def cmove(peer: DicomWebPeer, study_uid: str, root: Path, local: LocalNode, count: int) -> Callable[[], int]:
    def run() -> int:
        store = StudyStore(root)
        server = StorageServer(store, local)
        server.start()
        try:
            result = scu.move(
                peer.node(),
                {"StudyInstanceUID": study_uid},
                "STUDY",
                local.ae_title,
                local=local,
                arrivals=server.subscribe,
            )
            assert result.ok, result
            store.sync_pending()
            stored = len(store.instances_for_study(study_uid))
            assert stored == count, stored
            return stored
        finally:
            server.stop()
            store.close()

    return run


def first_image(peer: DicomWebPeer, study_uid: str, series_uid: str, scratch: Path) -> tuple[float, float, float]:
    """Seconds to the middle slice decoded, seconds to the whole series, peak MiB above the start.

    The series row (its instance count) is what the user clicked in the search results, so it is known
    before the clock starts; the instance metadata and every fetch are timed."""
    (row,) = dicomweb.search(
        peer.web_node(), "SERIES", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}
    )
    middle_number = (row.count("NumberOfSeriesRelatedInstances") or 1) // 2
    with PeakRss() as memory:
        started = time.perf_counter()
        fetcher = dicomweb.OrderedFetcher(peer.web_node(), study_uid, series_uid, scratch=scratch)
        fetcher.start(first_number=middle_number)
        path = fetcher.wait_first(timeout=60)
        assert path is not None
        pixels = pydicom.dcmread(path).pixel_array
        to_first = time.perf_counter() - started
        assert pixels.size > 0
        assert fetcher.wait_all(timeout=300)
        to_all = time.perf_counter() - started
        assert fetcher.fetched == row.count("NumberOfSeriesRelatedInstances")
        fetcher.discard()
    return to_first, to_all, memory.above_mib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Orthanc sends C-MOVE sub-operations through DCMTK, which leaves Nagle's algorithm on unless this is set;
    # without it every C-STORE waits out a delayed ACK (~40 ms) and C-MOVE would look 6x slower than it is.
    os.environ.setdefault("TCP_NODELAY", "1")
    with tempfile.TemporaryDirectory(prefix="dicomweb-bench-") as tmp:
        root = Path(tmp)
        study = make_study(root / "data", series_counts=(args.count,), patient_name="BENCH^CT", patient_id="BENCH")
        series_uid = next(iter(study.series))
        local = LocalNode(ae_title="LIGHTBOX", port=free_port(), bind_address="127.0.0.1")
        with orthanc_dicomweb(root / "orthanc", modalities={"lightbox": (local.ae_title, local.port)}) as peer:
            storescu(peer.ae_title, peer.port, study.files)
            assert peer.instance_count() == args.count
            runs: dict[str, list[tuple[float, int, float]]] = {"wado": [], "cmove": []}
            for round_index in range(args.rounds):
                order = ("wado", "cmove") if round_index % 2 == 0 else ("cmove", "wado")
                for kind in order:
                    target = root / f"{kind}-{round_index}"
                    run = (
                        wado(peer, study.study_uid, target, args.count)
                        if kind == "wado"
                        else cmove(peer, study.study_uid, target, local, args.count)
                    )
                    runs[kind].append(timed(run))
            first = [first_image(peer, study.study_uid, series_uid, root) for _ in range(args.rounds)]

    def summary(kind: str) -> tuple[float, float]:
        rate = statistics.median(count / elapsed for elapsed, count, _ in runs[kind])
        peak = max(mib for _, _, mib in runs[kind])
        return rate, peak

    wado_rate, wado_peak = summary("wado")
    move_rate, move_peak = summary("cmove")
    print(f"{args.count}-slice CT from Orthanc, median of {args.rounds} rounds")
    print(f"  WADO-RS retrieve (ours)        {wado_rate:8.1f} instances/s   peak +{wado_peak:6.1f} MiB")
    print(f"  C-MOVE to our SCP (peer path)  {move_rate:8.1f} instances/s   peak +{move_peak:6.1f} MiB")
    print(f"  ratio WADO-RS / C-MOVE         {wado_rate / move_rate:8.2f}x (goal >= 1.0x)")
    to_first = statistics.median(f for f, _, _ in first)
    to_all = statistics.median(a for _, a, _ in first)
    print(
        f"  view without import: first image (middle slice, decoded) {to_first * 1000:6.0f} ms (goal < 1000 ms),"
        f" whole series {to_all:5.2f} s, peak +{max(m for _, _, m in first):6.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
