"""Finding 6: a disk that fills up during an import stops it with a report (the batch COMMIT raised
sqlite3.OperationalError before), and what the report calls imported is in the store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.reliability.corpus import write_series
from tests.reliability.test_faults import _can_mount_tmpfs, _referenced_files, _stored_files
from viewer.core.importer import import_paths
from viewer.core.store import StudyStore


@pytest.mark.timeout(180)
def test_import_onto_a_disk_that_fills_up_stops_with_a_report(tmp_path: Path) -> None:
    mount_point = tmp_path / "small-disk"
    problem = _can_mount_tmpfs(mount_point)
    if problem:
        pytest.skip(problem)
    try:
        # Tiny files take a 4 KiB page each on tmpfs: 2 MiB holds a few hundred, fewer than one batch.
        sent = write_series(tmp_path / "in", 900)
        store = StudyStore(mount_point / "store")
        report = import_paths(store, [tmp_path / "in"])
        assert any("disk holding the study store is full" in note for note in report.notes), report.summary()
        assert report.failed and all("full" in p.reason for p in report.failed)
        assert not report.ok
        stored = {i.sop_instance_uid for s in store.studies() for i in store.instances_for_study(s.study_uid)}
        assert len(stored) == report.imported < len(sent)
        assert store.integrity_problems() == []
        assert _stored_files(store) == _referenced_files(store)
        assert list(store.tmp_dir.iterdir()) == []
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
