"""The same find / move / get round trip against Orthanc as a second archive."""

from __future__ import annotations

import pytest

from tests.net.conftest import ArchiveData, Lightbox, file_uids, stored_uids
from tests.support.peers import Peer
from viewer.core.store import StudyStore
from viewer.net import scu
from viewer.net.statuses import NetworkError

pytestmark = pytest.mark.network


def test_echo_and_find(pacs: Peer, archive_data: ArchiveData, lightbox: Lightbox) -> None:
    node = pacs.node()
    scu.echo(node, local=lightbox.local)
    studies = scu.find(node, "STUDY", {"PatientName": "DOE*"}, local=lightbox.local)
    assert [m.get("StudyInstanceUID") for m in studies] == [archive_data.ct.study_uid]
    assert studies[0].count("NumberOfStudyRelatedInstances") == len(archive_data.ct.files)
    dated = scu.find(node, "STUDY", {"StudyDate": scu.date_range("20230101", "20231231")}, local=lightbox.local)
    assert [m.get("PatientName") for m in dated] == ["ROE^RICHARD"]
    series = scu.find(node, "SERIES", {"StudyInstanceUID": archive_data.ct.study_uid}, local=lightbox.local)
    assert {m.get("SeriesInstanceUID") for m in series} == set(archive_data.ct.series)
    first = next(iter(archive_data.ct.series))
    images = scu.find(
        node, "IMAGE", {"StudyInstanceUID": archive_data.ct.study_uid, "SeriesInstanceUID": first}, local=lightbox.local
    )
    assert {m.get("SOPInstanceUID") for m in images} == file_uids(archive_data.ct.series[first])
    patient_root = scu.find(pacs.node(query_model="patient"), "STUDY", {"PatientID": "PID002"}, local=lightbox.local)
    assert [m.get("PatientName") for m in patient_root] == ["ROE^RICHARD"]


def test_move_to_us(pacs: Peer, archive_data: ArchiveData, lightbox: Lightbox) -> None:
    study = archive_data.mr
    series_uid = next(iter(study.series))
    result = scu.move(
        pacs.node(),
        {"StudyInstanceUID": study.study_uid, "SeriesInstanceUID": series_uid},
        "SERIES",
        lightbox.local.ae_title,
        local=lightbox.local,
        arrivals=lightbox.server.subscribe,
    )
    assert result.ok
    assert file_uids(study.series[series_uid]) <= stored_uids(lightbox.store, study.study_uid)
    with pytest.raises(NetworkError) as unknown:
        scu.move(pacs.node(), {"StudyInstanceUID": study.study_uid}, "STUDY", "STRANGER", local=lightbox.local)
    # Orthanc 1.10 answers an unknown destination with C000 (its log: "Unknown modality for AET"), not A801.
    assert unknown.value.status in (0xA801, 0xC000)
    assert f"register LIGHTBOX at 127.0.0.1:{lightbox.local.port} in the archive" in str(unknown.value)


def test_get_study(pacs: Peer, archive_data: ArchiveData, lightbox: Lightbox, tmp_path) -> None:
    store = StudyStore(tmp_path / "get-store")
    study = archive_data.ct
    result = scu.get(
        pacs.node(retrieve_method="get"), {"StudyInstanceUID": study.study_uid}, "STUDY", store, local=lightbox.local
    )
    assert result.status == 0x0000
    assert stored_uids(store, study.study_uid) == file_uids(study.files)
    assert result.progress.received == len(study.files)
