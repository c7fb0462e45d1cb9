"""The store survives an import process killed (SIGKILL) in the middle: no row without a file, nothing twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.core.test_import import make_series
from tests.support.store_files import stored_files
from viewer.core.importer import BATCH_SIZE, import_paths
from viewer.core.store import StudyStore

REPO = Path(__file__).resolve().parents[2]


def stored_instances(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as conn:
            return conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0]
    except sqlite3.Error:
        return 0


def files_on_disk(store: StudyStore) -> list[Path]:
    return sorted(stored_files(store))


def test_kill_during_import_then_recover_and_resume(tmp_path: Path) -> None:
    count = BATCH_SIZE * 2
    uids = make_series(tmp_path / "series", count)
    home = tmp_path / "home"
    db = home / "store" / "index.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "viewer", "--home", str(home), "import", "-q", str(tmp_path / "series")],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        # Kill once at least one batch is committed and the process is still writing the next.
        while stored_instances(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the import finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    store = StudyStore(home / "store")
    try:
        committed = store.counts()["instances"]
        assert 0 < committed < count
        assert store.integrity_problems() == []  # every row has its file, SQLite is consistent
        store.recover()
        assert store.integrity_problems() == []
        assert len(files_on_disk(store)) == committed  # orphans of the uncommitted batch are gone
        assert not any(store.tmp_dir.iterdir())

        report = import_paths(store, [tmp_path / "series"])
        assert report.ok
        assert (report.imported, report.duplicates) == (count - committed, committed)
        assert store.counts()["instances"] == count
        assert {r[0] for r in store._conn().execute("SELECT sop_instance_uid FROM instances")} == uids
        assert len(files_on_disk(store)) == count  # each instance's file exactly once
        assert store.integrity_problems() == []
    finally:
        store.close()
