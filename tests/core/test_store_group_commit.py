"""Grouped index commits for received objects: what a queued row means for duplicates, conflicts and
readers, and that an instance answered Success survives its process being killed before the group commits
(the journal)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.uid import generate_uid

from viewer.core.ingest import PatientConflict
from viewer.core.model import index_entry_from_dataset
from viewer.core.store import AddStatus, StoreEvent, StudyStore

REPO = Path(__file__).resolve().parents[2]


def _encoded(study_uid: str = "", **changes: str) -> tuple[bytes, object]:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    if study_uid:
        ds.StudyInstanceUID = study_uid
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), index_entry_from_dataset(ds)


def _slow_group(store: StudyStore) -> None:
    store.GROUP_COMMIT_S = 3600.0  # nothing commits on its own during the test
    store.GROUP_SYNC_S = 3600.0


def test_queued_rows_commit_together_with_their_events_in_order(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    _slow_group(store)
    events: list[StoreEvent] = []
    store.subscribe(events.append)
    added = [store.add_indexed(*_encoded(), source="scp:TEST", sync=False) for _ in range(5)]
    assert all(result.status is AddStatus.ADDED for result in added)
    assert store.counts()["instances"] == 0 and events == []  # queued, listed in the journal
    assert len(list(store.journal_dir.glob("*.journal"))) == 1
    store.commit_received()
    assert store.counts()["instances"] == 5
    assert [e.sop_instance_uid for e in events] == [r.sop_instance_uid for r in added]
    assert {e.kind for e in events} == {"added"}
    store.close()
    assert list(store.journal_dir.iterdir()) == []  # a clean close leaves no journal


def test_a_full_group_commits_without_waiting(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    _slow_group(store)
    store.GROUP_COMMIT_MAX = 4
    for _ in range(6):
        store.add_indexed(*_encoded(), source="scp:TEST", sync=False)
    assert store.counts()["instances"] == 4  # the fifth add committed the first four
    store.close()
    assert StudyStore(tmp_path / "store").counts()["instances"] == 6


def test_same_uid_again_in_one_group_is_a_duplicate_or_keeps_the_first_copy(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    _slow_group(store)
    data, entry = _encoded()
    first = store.add_indexed(data, entry, source="scp:A", sync=False)
    assert store.add_indexed(data, entry, source="scp:A", sync=False).status is AddStatus.DUPLICATE
    ds = pydicom.dcmread(DicomBytesIO(data))
    ds.PixelData = bytes(len(ds.PixelData))  # another copy under the same SOP Instance UID
    other = DicomBytesIO()
    ds.save_as(other, enforce_file_format=True)
    kept = store.add_indexed(other.getvalue(), index_entry_from_dataset(ds), source="scp:B", sync=False)
    assert kept.status is AddStatus.KEPT
    stored = store.instance(first.sop_instance_uid)
    assert stored is not None and Path(stored.path).read_bytes() == data
    store.close()


def test_another_patient_in_a_queued_study_is_refused(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    _slow_group(store)
    study = generate_uid()
    store.add_indexed(*_encoded(study, PatientID="ID-1", PatientName="ONE^PATIENT"), source="scp:A", sync=False)
    with pytest.raises(PatientConflict):
        store.add_indexed(*_encoded(study, PatientID="ID-2", PatientName="TWO^PATIENT"), source="scp:A", sync=False)
    store.close()
    reopened = StudyStore(tmp_path / "store")
    assert reopened.counts()["instances"] == 1
    assert [s.patient_id for s in reopened.studies()] == ["ID-1"]
    reopened.close()


_KILLED_WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from tests.core.test_store_group_commit import _encoded
    from viewer.core.store import StudyStore
    store = StudyStore(sys.argv[1])
    store.GROUP_COMMIT_S = store.GROUP_SYNC_S = 3600.0
    added = [store.add_indexed(*_encoded(), source="scp:KILLED", sync=False) for _ in range(int(sys.argv[3]))]
    print(json.dumps([[r.sop_instance_uid, str(r.path)] for r in added]), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # answered Success, killed before the group commits
    """
)


def _killed_after_adding(root: Path, count: int) -> list[tuple[str, Path]]:
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(root), str(REPO), str(count)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    return [(uid, Path(path)) for uid, path in json.loads(run.stdout)]


def test_instances_answered_before_a_kill_are_indexed_by_recovery_from_the_journal(tmp_path: Path) -> None:
    added = _killed_after_adding(tmp_path / "store", 12)
    store = StudyStore(tmp_path / "store")
    assert store.counts()["instances"] == 0  # their rows never committed
    report = store.recover()
    assert report.indexed_from_journal == 12
    assert report.removed_orphan_files == 0
    for uid, path in added:
        instance = store.instance(uid)
        assert instance is not None and Path(instance.path) == path
    with sqlite3.connect(store.db_path) as conn:
        assert {r[0] for r in conn.execute("SELECT source FROM instances")} == {"scp:KILLED"}
    assert store.integrity_problems() == []
    assert list(store.journal_dir.glob("*.journal")) == []
    store.close()


def test_a_journalled_file_cut_short_is_not_indexed_and_is_removed(tmp_path: Path) -> None:
    added = _killed_after_adding(tmp_path / "store", 3)
    cut_uid, cut_path = added[0]
    data = cut_path.read_bytes()
    os.chmod(cut_path, 0o600)
    cut_path.write_bytes(data[: len(data) // 2])  # what a power cut before the sync can leave
    store = StudyStore(tmp_path / "store")
    report = store.recover()
    assert report.indexed_from_journal == 2
    assert store.instance(cut_uid) is None and not cut_path.exists()
    assert all(store.instance(uid) is not None for uid, _ in added[1:])
    assert store.integrity_problems() == []
    store.close()


def test_a_journal_line_cannot_point_outside_the_store(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    store.close()
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    (store.journal_dir / "1-forged.journal").write_text(f"../../outside.dcm\tscp:X\n{outside}\tscp:X\n")
    reopened = StudyStore(tmp_path / "store")
    report = reopened.recover()
    assert report.indexed_from_journal == 0 and reopened.counts()["instances"] == 0
    assert outside.exists()
    reopened.close()
