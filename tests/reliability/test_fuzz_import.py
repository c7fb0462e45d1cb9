"""Mutated DICOM files fed to the store and the importer: no crash, no hang, every input accounted for."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.corpus import mutated
from viewer.core.store import AddResult, StoreError, StudyStore

OUTCOMES: dict[str, int] = {"stored": 0, "refused": 0}
FUZZ = settings(
    max_examples=120,
    deadline=3000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory):
    store = StudyStore(tmp_path_factory.mktemp("fuzz-store"), durable=False)
    yield store
    assert OUTCOMES["stored"] and OUTCOMES["refused"], OUTCOMES
    assert store.integrity_problems() == []
    store.close()


def _check_result(store: StudyStore, result: AddResult) -> None:
    stored = store.instance(result.sop_instance_uid)
    assert stored is not None and Path(stored.path).is_file()
    assert Path(stored.path).is_relative_to(store.files_dir)


@pytest.mark.timeout(120)
@FUZZ
@given(data=mutated())
def test_store_add_file_survives_mutated_files(fuzz_store: StudyStore, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
        fh.write(data)
        fh.flush()
        before = fuzz_store.counts()["instances"]
        try:
            result = fuzz_store.add_file(fh.name)
        except StoreError as refused:
            assert str(refused), "a refusal must say why"
            assert fuzz_store.counts()["instances"] == before
            OUTCOMES["refused"] += 1
        else:
            _check_result(fuzz_store, result)
            OUTCOMES["stored"] += 1
    assert fuzz_store.integrity_problems() == []
    assert list(fuzz_store.tmp_dir.iterdir()) == []


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=25)
@given(batch=st.lists(mutated(), min_size=2, max_size=6))
def test_importer_accounts_for_every_mutated_file(fuzz_store: StudyStore, batch: list[bytes]) -> None:
    importer = pytest.importorskip("viewer.core.importer")
    with tempfile.TemporaryDirectory() as folder:
        for i, data in enumerate(batch):
            Path(folder, f"f{i:03d}.dcm").write_bytes(data)
        report = importer.import_paths(fuzz_store, [folder])
    stored = report.imported + report.duplicates + report.replaced + len(report.kept)
    accounted = stored + len(report.skipped) + len(report.failed)
    assert accounted == len(batch), report.details()
    assert all(problem.reason for problem in report.skipped + report.failed)
    assert fuzz_store.integrity_problems() == []
