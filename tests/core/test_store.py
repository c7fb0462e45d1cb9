from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from tests.support.store_files import stored_files
from viewer.core.store import (
    AddStatus,
    InvalidObjectError,
    NotDicomError,
    StoreError,
    StoreEvent,
    StudyQuery,
    StudyStore,
)

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")


def test_add_index_and_read_back(store: StudyStore) -> None:
    result = store.add_file(CT)
    assert result.status is AddStatus.ADDED
    (study,) = store.studies()
    assert study.patient_name == "CompressedSamples^CT1"
    assert study.modalities == ("CT",)
    (series,) = store.series_for_study(study.study_uid)
    (instance,) = store.instances_for_series(series.series_uid)
    assert instance.rows == 128 and instance.frames == 1
    assert Path(instance.path).read_bytes() == Path(CT).read_bytes()


def test_files_are_named_from_content_not_uid(store: StudyStore) -> None:
    result = store.add_file(CT)
    assert result.sop_instance_uid not in str(result.path)
    assert "CompressedSamples" not in str(result.path)
    assert result.path.is_relative_to(store.files_dir)


def test_same_bytes_is_duplicate_different_bytes_keep_the_stored_copy_unless_replacing(
    store: StudyStore, tmp_path: Path
) -> None:
    assert store.add_file(CT).status is AddStatus.ADDED
    assert store.add_file(CT).status is AddStatus.DUPLICATE
    ds = pydicom.dcmread(CT)
    ds.StudyDescription = "corrected"
    changed = tmp_path / "changed.dcm"
    ds.save_as(changed)
    old = store.instances_for_study(ds.StudyInstanceUID)[0]
    # Finding 2: by default the stored copy stays (as Orthanc keeps it); nothing of the new one is left.
    assert store.add_file(changed).status is AddStatus.KEPT
    assert store.instance(old.sop_instance_uid).sha256 == old.sha256
    assert store.study(ds.StudyInstanceUID).study_description != "corrected"
    assert _stored_files(store) == {Path(old.path)}
    # A correction replaces it, and the replaced copy stays recoverable under replaced/ with its row.
    assert store.add_file(changed, replace=True).status is AddStatus.REPLACED
    assert store.counts()["instances"] == 1
    assert store.study(ds.StudyInstanceUID).study_description == "corrected"
    assert not Path(old.path).exists()
    kept = store.root / "replaced" / old.sha256
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == old.sha256
    with sqlite3.connect(store.db_path) as conn:
        rows = conn.execute("SELECT sop_instance_uid, file, sha256 FROM replaced").fetchall()
    assert rows == [(old.sop_instance_uid, f"replaced/{old.sha256}", old.sha256)]
    assert store.integrity_problems() == []


def _stored_files(store: StudyStore) -> set[Path]:
    return stored_files(store)


@pytest.mark.parametrize("bad_uid", ["1.2/../../etc/passwd", "1.2.\x003", "1." * 40])
def test_hostile_uid_is_refused(store: StudyStore, tmp_path: Path, bad_uid: str) -> None:
    ds = pydicom.dcmread(CT)
    ds.SOPInstanceUID = bad_uid
    path = tmp_path / "bad.dcm"
    ds.save_as(path)
    with pytest.raises(InvalidObjectError):
        store.add_file(path)
    assert store.counts()["instances"] == 0
    assert not any(store.tmp_dir.iterdir())


def test_random_bytes_and_truncated_files(store: StudyStore, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(NotDicomError):
        store.add_file(junk)
    truncated = tmp_path / "trunc.dcm"
    truncated.write_bytes(Path(CT).read_bytes()[:300])
    with pytest.raises((InvalidObjectError, NotDicomError)):
        store.add_file(truncated)
    assert store.counts()["instances"] == 0


def test_file_without_preamble_is_stored_as_part10(store: StudyStore, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    ds = pydicom.dcmread(CT)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)  # a bare implicit-VR dataset: no preamble, no file meta
    raw.write_bytes(buffer.getvalue())
    result = store.add_file(raw)
    assert result.path.read_bytes()[128:132] == b"DICM"
    assert pydicom.dcmread(result.path).SOPInstanceUID == ds.SOPInstanceUID


def test_delete_study_removes_rows_and_files(store: StudyStore) -> None:
    result = store.add_file(CT)
    store.add_file(MR)
    assert store.delete_study(result.study_uid) == 1
    assert not result.path.exists()
    assert store.counts() == {"studies": 1, "series": 1, "instances": 1}
    assert store.integrity_problems() == []


def test_query_by_name_wildcard_date_and_modality(store: StudyStore) -> None:
    store.add_file(CT)
    store.add_file(MR)
    assert [s.patient_id for s in store.studies(StudyQuery(patient_name="*MR1"))] == ["4MR1"]
    assert [s.patient_id for s in store.studies(StudyQuery(modality="ct"))] == ["1CT1"]
    assert [s.patient_id for s in store.studies(StudyQuery(date_from="20040601"))] == ["4MR1"]
    assert [s.patient_id for s in store.studies(StudyQuery(text="ct1"))] == ["1CT1"]


def test_recover_removes_orphans_and_temp(store: StudyStore) -> None:
    store.add_file(CT)
    orphan = store.files_dir / "ab" / "cd" / ("ab" * 32)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    (store.tmp_dir / "dead.part").write_bytes(b"y")
    report = store.recover()
    assert report.removed_orphan_files == 1 and report.removed_temp_files == 1
    assert store.integrity_problems() == []
    assert store.counts()["instances"] == 1


def test_batch_and_events_and_threads(store: StudyStore) -> None:
    events: list[StoreEvent] = []
    store.subscribe(events.append)
    with store.batch():
        store.add_file(CT)
        store.add_file(MR)
    assert [e.kind for e in events] == ["added", "added"]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                store.add_file(CT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.counts()["instances"] == 2


def test_prepared_file_removed_before_commit_is_refused_not_indexed(store: StudyStore) -> None:
    with open(CT, "rb") as fh:
        prepared = store.prepare_stream(fh, will_commit_in_batch=False)
    assert prepared.path.is_file()  # already at its content-addressed name
    prepared.path.unlink()  # e.g. a study holding the same bytes was deleted meanwhile
    with pytest.raises(StoreError):
        store.commit_prepared(prepared, source="import:test")
    assert store.counts()["instances"] == 0
    assert store.integrity_problems() == []


def test_discarded_prepared_file_is_removed_unless_it_was_already_stored(store: StudyStore) -> None:
    stored = store.add_file(CT)
    with open(CT, "rb") as fh:
        same = store.prepare_stream(fh)
    assert same.existed and same.path == stored.path
    store.discard_prepared(same)
    assert stored.path.is_file()  # still the stored instance's file
    ds = pydicom.dcmread(CT)
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    other = store.prepare_stream(buffer)
    assert not other.existed
    store.discard_prepared(other)
    assert not other.path.exists()
    assert store.integrity_problems() == []
