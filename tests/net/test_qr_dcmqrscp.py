"""Q/R SCU against DCMTK dcmqrscp: echo, find at every level in both models, move, get, cancel, A801."""

from __future__ import annotations

import threading

import pytest

from tests.net.conftest import ArchiveData, Lightbox, file_uids, stored_uids
from tests.support.net import free_port
from tests.support.peers import Peer
from viewer.core.settings import RemoteNode
from viewer.core.store import StudyStore
from viewer.net import scu
from viewer.net.statuses import FailureKind, NetworkError

pytestmark = pytest.mark.network

MODELS = ["study", "patient"]


def test_echo(archive: Peer, lightbox: Lightbox) -> None:
    assert scu.echo(archive.node(), local=lightbox.local) < 5.0


def test_echo_connection_refused_is_explained(lightbox: Lightbox) -> None:
    nobody = RemoteNode(ae_title="NOBODY", host="127.0.0.1", port=free_port())
    with pytest.raises(NetworkError) as refused:
        scu.echo(nobody, local=lightbox.local)
    assert refused.value.kind is FailureKind.CONNECTION_REFUSED
    assert "Connection refused" in str(refused.value)

    # Rejections (with their reasons) are checked against our own SCP's allow-list in test_scp.py: dcmqrscp
    # answers every other association after a rejection with a bare close, which would make this flaky.


@pytest.mark.parametrize("model", MODELS)
def test_find_studies(archive: Peer, archive_data: ArchiveData, lightbox: Lightbox, model: str) -> None:
    node = archive.node(query_model=model)

    def study_uids(keys: dict) -> set[str]:
        return {m.get("StudyInstanceUID") for m in scu.find(node, "STUDY", keys, local=lightbox.local)}

    every = study_uids({})  # universal matching
    assert every == {s.study_uid for s in (archive_data.ct, archive_data.mr, archive_data.utf8, archive_data.many)}
    assert study_uids({"PatientName": "DOE*"}) == {archive_data.ct.study_uid}
    assert study_uids({"PatientName": "R?E^RICHARD"}) == {archive_data.mr.study_uid}
    assert study_uids({"StudyDate": scu.date_range("20220101", "20231231")}) == {
        archive_data.mr.study_uid,
        archive_data.utf8.study_uid,
    }
    assert study_uids({"StudyDate": scu.date_range("", "20211231")}) == {archive_data.many.study_uid}
    uid_list = [archive_data.ct.study_uid, archive_data.many.study_uid]
    assert study_uids({"StudyInstanceUID": uid_list}) == set(uid_list)
    assert study_uids({"AccessionNumber": "ACC002"}) == {archive_data.mr.study_uid}

    (match,) = scu.find(node, "STUDY", {"PatientID": "PID001"}, local=lightbox.local)
    assert match.get("PatientName") == "DOE^JANE"
    assert match.get("StudyDescription") == "CT CHEST"
    assert match.get("StudyDate") == "20240115"


@pytest.mark.parametrize("model", MODELS)
def test_find_series_and_images(archive: Peer, archive_data: ArchiveData, lightbox: Lightbox, model: str) -> None:
    node = archive.node(query_model=model)
    study = archive_data.ct
    parent = {"StudyInstanceUID": study.study_uid, "PatientID": study.patient_id}
    series = scu.find(node, "SERIES", parent, local=lightbox.local)
    assert {m.get("SeriesInstanceUID") for m in series} == set(study.series)
    assert sorted(m.get("SeriesNumber") for m in series) == ["1", "2"]
    first_series = next(iter(study.series))
    images = scu.find(node, "IMAGE", {**parent, "SeriesInstanceUID": first_series}, local=lightbox.local)
    assert {m.get("SOPInstanceUID") for m in images} == file_uids(study.series[first_series])
    assert sorted(m.get("InstanceNumber") for m in images) == ["1", "2", "3"]


def test_find_sends_and_decodes_specific_character_set(
    archive: Peer, archive_data: ArchiveData, lightbox: Lightbox
) -> None:
    identifier = scu.build_identifier("STUDY", {"PatientName": "Müller*"})
    assert identifier.SpecificCharacterSet == "ISO_IR 192"
    matches = scu.find(archive.node(), "STUDY", {"PatientName": "Müller*"}, local=lightbox.local)
    assert [m.get("StudyInstanceUID") for m in matches] == [archive_data.utf8.study_uid]
    assert matches[0].get("PatientName") == "Müller^Jürgen"
    assert matches[0].get("StudyDescription") == "Schädel"


@pytest.mark.parametrize("model", MODELS)
def test_move_study_lands_in_store(archive: Peer, archive_data: ArchiveData, lightbox: Lightbox, model: str) -> None:
    study = archive_data.ct if model == "study" else archive_data.mr
    updates: list[tuple[int, int | None, int]] = []
    result = scu.move(
        archive.node(query_model=model),
        {"StudyInstanceUID": study.study_uid, "PatientID": study.patient_id},
        "STUDY",
        lightbox.local.ae_title,
        local=lightbox.local,
        progress_cb=lambda p: updates.append((p.completed, p.remaining, p.received)),
        arrivals=lightbox.server.subscribe,
    )
    assert result.status == 0x0000 and result.ok and not result.cancelled
    assert result.progress.completed == len(study.files)
    assert result.progress.received == len(study.files)
    assert stored_uids(lightbox.store, study.study_uid) == file_uids(study.files)
    remaining = [r for _, r, _ in updates if r is not None]
    assert remaining and remaining[-1] == 0 and max(remaining) == len(study.files) - 1


def test_move_to_unknown_destination_is_explained(archive: Peer, archive_data: ArchiveData, lightbox: Lightbox) -> None:
    with pytest.raises(NetworkError) as failure:
        scu.move(
            archive.node(), {"StudyInstanceUID": archive_data.ct.study_uid}, "STUDY", "STRANGER", local=lightbox.local
        )
    assert failure.value.status == 0xA801
    assert f"register {lightbox.local.ae_title} at 127.0.0.1:{lightbox.local.port} in the archive" in str(failure.value)


@pytest.mark.parametrize("model", MODELS)
def test_get_series_into_store(
    archive: Peer, archive_data: ArchiveData, lightbox: Lightbox, tmp_path, model: str
) -> None:
    store = StudyStore(tmp_path / "get-store")
    study = archive_data.mr
    series_uid = list(study.series)[1]
    received: list[int] = []
    result = scu.get(
        archive.node(query_model=model, retrieve_method="get"),
        {"StudyInstanceUID": study.study_uid, "SeriesInstanceUID": series_uid, "PatientID": study.patient_id},
        "SERIES",
        store,
        local=lightbox.local,
        progress_cb=lambda p: received.append(p.received),
    )
    assert result.status == 0x0000
    assert {i.sop_instance_uid for i in store.instances_for_series(series_uid)} == file_uids(study.series[series_uid])
    assert store.counts()["instances"] == len(study.series[series_uid])
    assert received[-1] == len(study.series[series_uid])
    assert all(i.path.startswith(str(store.files_dir)) for i in store.instances_for_series(series_uid))


def test_cancel_mid_move(archive: Peer, archive_data: ArchiveData, lightbox: Lightbox) -> None:
    study = archive_data.many
    cancel = threading.Event()

    def on_progress(p: scu.RetrieveProgress) -> None:
        if p.completed >= 3:
            cancel.set()

    result = scu.move(
        archive.node(),
        {"StudyInstanceUID": study.study_uid},
        "STUDY",
        lightbox.local.ae_title,
        local=lightbox.local,
        progress_cb=on_progress,
        cancel_token=cancel,
    )
    assert result.cancelled
    assert result.status == 0xFE00
    assert "cancelled" in result.message.lower()
    stored = len(stored_uids(lightbox.store, study.study_uid))
    assert 3 <= stored < len(study.files)
