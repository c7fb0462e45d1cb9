"""Instances added without their own fsync (the Storage SCP's default): group sync, and what a power cut
before that sync leaves once `recover` has run."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.uid import generate_uid

from viewer.core.model import index_entry_from_dataset
from viewer.core.store import InvalidObjectError, StudyStore


def _encoded(**changes: str) -> tuple[bytes, object]:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), index_entry_from_dataset(ds)


def _synced_until(store: StudyStore) -> float | None:
    with sqlite3.connect(store.db_path) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'synced_until'").fetchone()
    return float(row[0]) if row else None


def test_unsynced_adds_are_indexed_within_the_group_commit_and_synced_within_the_group_interval(
    tmp_path: Path,
) -> None:
    store = StudyStore(tmp_path / "store")
    store.GROUP_SYNC_S = 0.2
    data, entry = _encoded()
    before = time.time()
    result = store.add_indexed(data, entry, source="scp:TEST", sync=False)
    assert Path(result.path).read_bytes() == data
    deadline = time.monotonic() + 5
    while store.instance(result.sop_instance_uid) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.instance(result.sop_instance_uid) is not None
    assert time.monotonic() < deadline - 4  # the group commits within GROUP_COMMIT_S (0.05 s), not at the sync
    deadline = time.monotonic() + 5
    while _synced_until(store) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    mark = _synced_until(store)
    assert mark is not None and mark >= before
    store.close()


def test_entry_uids_are_checked_like_any_other_add(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    data, entry = _encoded(SeriesInstanceUID="1.2.3/../../etc")
    with pytest.raises(InvalidObjectError):
        store.add_indexed(data, entry, source="scp:TEST", sync=False)
    assert store.counts()["instances"] == 0
    store.close()


def test_power_cut_before_the_group_sync_loses_only_unsynced_instances_and_recover_drops_their_rows(
    tmp_path: Path,
) -> None:
    store = StudyStore(tmp_path / "store")
    store.GROUP_SYNC_S = 3600.0  # the power cut comes before any timed group sync
    kept_data, kept_entry = _encoded()
    kept = store.add_indexed(kept_data, kept_entry, source="scp:TEST", sync=False)
    store.sync_pending()
    lost_data, lost_entry = _encoded()
    lost = store.add_indexed(lost_data, lost_entry, source="scp:TEST", sync=False)
    also_data, also_entry = _encoded()
    also = store.add_indexed(also_data, also_entry, source="scp:TEST", sync=False)
    store.commit_received()  # their rows are committed (the group commit), not yet synced
    # What a power cut can leave of files renamed into place but never synced: empty or cut short
    # (ext4's delayed allocation), while their rows may have reached the log.
    Path(lost.path).write_bytes(b"")
    Path(also.path).write_bytes(also_data[:1000])
    store.sync_pending = lambda **_: None  # type: ignore[method-assign]  # the process died: no sync, no mark
    store.close()

    reopened = StudyStore(tmp_path / "store")
    report = reopened.recover()
    assert sorted(report.rows_lost_unsynced) == sorted([lost.sop_instance_uid, also.sop_instance_uid])
    assert reopened.instance(kept.sop_instance_uid) is not None
    assert reopened.instance(lost.sop_instance_uid) is None and reopened.instance(also.sop_instance_uid) is None
    assert not Path(lost.path).exists() and not Path(also.path).exists()
    assert reopened.integrity_problems() == []
    reopened.close()


def test_recover_leaves_synced_and_imported_instances_alone(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    data, entry = _encoded()
    received = store.add_indexed(data, entry, source="scp:TEST", sync=False)
    imported = store.add_file(get_testdata_file("MR_small.dcm"), source="file:MR_small.dcm")
    store.close()  # a clean close syncs and records the mark
    reopened = StudyStore(tmp_path / "store")
    report = reopened.recover()
    assert report.rows_lost_unsynced == []
    assert reopened.instance(received.sop_instance_uid) is not None
    assert reopened.instance(imported.sop_instance_uid) is not None
    reopened.close()
