"""Import throughput: our importer into an empty store vs a plain pydicom read loop (and dcmmkdir) in the same run.

    .venv/bin/python bench/import_bench.py [--count 2000] [--keep DIR]

Generates `count` CT instances of 512×512 (CT_small's header, phantom pixels, one UID each) into a temp
folder with plain numeric names, then times over the same files:

* ``pydicom.dcmread`` of every file (whole file, pixels included: what any reader must at least do),
* ``dcmmkdir`` (DCMTK) building a DICOMDIR over them, when installed,
* ``import_paths`` into an empty, durable store (copy + hash + parse + index + commit),

and prints files/s, the import/read-loop ratio (target ≥ 0.8, issue 14) and the resident memory growth during the
import at 25 / 50 / 75 / 100 % (target: flat, not growing with file count).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viewer.core.demo import phantom_slice
from viewer.core.importer import import_paths
from viewer.core.store import StudyStore
from viewer.core.tasks import Progress

TEMPLATES = 16


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def generate(folder: Path, count: int) -> None:
    """`count` files in sub-folders of 500, from a few encoded templates whose placeholder UIDs are swapped."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    placeholder = "2.25." + "9" * 30
    templates = []
    for t in range(TEMPLATES):
        ds.PixelData = phantom_slice(t / TEMPLATES, 512).astype(np.int16).tobytes()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = placeholder
        buffer = DicomBytesIO()
        ds.save_as(buffer)
        templates.append(buffer.getvalue())
    run = uuid.uuid4().int % 10**12  # same length as the placeholder, unique per run
    for i in range(count):
        uid = f"2.25.{run:012d}{i:018d}"
        target = folder / f"S{i // 500:03d}" / f"{i:08d}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(templates[i % TEMPLATES].replace(placeholder.encode(), uid.encode()))


def time_read_loop(files: list[Path]) -> float:
    started = time.perf_counter()
    for f in files:
        pydicom.dcmread(f)
    return time.perf_counter() - started


def time_dcmmkdir(folder: Path) -> float | None:
    tool = shutil.which("dcmmkdir")
    if tool is None:
        return None
    out = folder.parent / "DICOMDIR.bench"
    started = time.perf_counter()
    subprocess.run(
        [tool, "-q", "+r", "+I", "-Nxc", "-Nec", "-Nrc", "+id", str(folder), "+D", str(out)],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    out.unlink(missing_ok=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="number of CT instances to generate (default 2000)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    work = args.keep or Path(tempfile.mkdtemp(prefix="lightbox-import-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "series"
    try:
        started = time.perf_counter()
        generate(source, args.count)
        # The generator's own gigabyte must reach the disk before anything is timed: otherwise its write-back
        # competes with the import's writes and the import's per-batch sync ends up flushing it.
        os.sync()
        files = sorted(p for p in source.rglob("*") if p.is_file())
        size_mib = sum(p.stat().st_size for p in files) / 2**20
        print(f"generated {len(files)} CT files 512x512 ({size_mib:.0f} MiB) in {time.perf_counter() - started:.1f} s")

        read_s = time_read_loop(files)  # also warms the page cache for every contender alike
        dcmmkdir_s = time_dcmmkdir(source)

        store = StudyStore(work / "store")
        gc.collect()
        rss_before = rss_mib()
        checkpoints: dict[int, float] = {}

        def progress(p: Progress) -> None:
            if p.total:
                quarter = min(4, int(4 * p.done / p.total))
                if quarter and quarter not in checkpoints:
                    checkpoints[quarter] = rss_mib()

        started = time.perf_counter()
        report = import_paths(store, [source], progress=progress)
        import_s = time.perf_counter() - started
        checkpoints[4] = rss_mib()
        read_again_s = time_read_loop(files)
        read_s = min(read_s, read_again_s)
        store.close()

        assert report.imported == len(files) and report.ok, report.summary()
        read_rate = len(files) / read_s
        import_rate = len(files) / import_s
        print(f"pydicom.dcmread loop : {read_rate:8.0f} files/s  ({read_s:.2f} s, best of 2)")
        if dcmmkdir_s is not None:
            print(f"dcmmkdir (DCMTK)     : {len(files) / dcmmkdir_s:8.0f} files/s  ({dcmmkdir_s:.2f} s)")
        print(f"lightbox import      : {import_rate:8.0f} files/s  ({import_s:.2f} s, durable store)")
        ratio = import_rate / read_rate
        print(f"import / read loop   : {ratio:8.2f}   (target >= 0.80: {'met' if ratio >= 0.8 else 'NOT met'})")
        growth = {q * 25: checkpoints.get(q, float("nan")) - rss_before for q in range(1, 5)}
        print("RSS growth during import (MiB): " + ", ".join(f"{pct}%: {mib:+.1f}" for pct, mib in growth.items()))
        flat = growth[100] - growth[25] < 32
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"memory flat (25%->100% growth < 32 MiB): {'yes' if flat else 'NO'}; peak RSS {peak:.0f} MiB")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
