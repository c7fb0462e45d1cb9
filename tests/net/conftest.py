"""Peers shared by the networking tests: one SCP, one dcmqrscp and one Orthanc per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.peers import Peer, StudyFiles, dcmqrscp, make_study, orthanc
from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore
from viewer.net.scp import StorageServer


@dataclass
class Lightbox:
    server: StorageServer
    store: StudyStore
    local: LocalNode


@dataclass
class ArchiveData:
    ct: StudyFiles
    mr: StudyFiles
    utf8: StudyFiles
    many: StudyFiles


@pytest.fixture(scope="session")
def lightbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lightbox]:
    """Our own Storage SCP on a free loopback port, as the move destination of the archives."""
    local = LocalNode(ae_title="LIGHTBOX", port=0, bind_address="127.0.0.1")
    store = StudyStore(tmp_path_factory.mktemp("lightbox-store"))
    server = StorageServer(store, local)
    server.start()
    try:
        yield Lightbox(server, store, local)
    finally:
        server.stop()
        store.close()


@pytest.fixture(scope="session")
def archive_data(tmp_path_factory: pytest.TempPathFactory) -> ArchiveData:
    root = tmp_path_factory.mktemp("archive-data")
    return ArchiveData(
        ct=make_study(root / "ct", series_counts=(3, 2)),
        mr=make_study(
            root / "mr",
            patient_name="ROE^RICHARD",
            patient_id="PID002",
            study_date="20230301",
            accession="ACC002",
            description="MR HEAD",
            source="MR_small.dcm",
            series_counts=(2, 2),
        ),
        utf8=make_study(
            root / "utf8",
            patient_name="Müller^Jürgen",
            patient_id="PID003",
            study_date="20220505",
            accession="ACC003",
            description="Schädel",
            series_counts=(1,),
            charset="ISO_IR 192",
        ),
        many=make_study(
            root / "many",
            patient_name="MANY^IMAGES",
            patient_id="PID004",
            study_date="20210101",
            accession="ACC004",
            description="LONG SERIES",
            series_counts=(120,),
        ),
    )


@pytest.fixture(scope="session")
def archive(lightbox: Lightbox, archive_data: ArchiveData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    files = archive_data.ct.files + archive_data.mr.files + archive_data.utf8.files + archive_data.many.files
    with dcmqrscp(
        tmp_path_factory.mktemp("dcmqrscp"),
        move_destinations={lightbox.local.ae_title: lightbox.server.port},
        files=files,
    ) as peer:
        yield peer


@pytest.fixture(scope="session")
def pacs(lightbox: Lightbox, archive_data: ArchiveData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    from tests.support.peers import storescu

    with orthanc(
        tmp_path_factory.mktemp("orthanc"),
        modalities={"lightbox": (lightbox.local.ae_title, lightbox.server.port)},
    ) as peer:
        storescu(peer.ae_title, peer.port, archive_data.ct.files + archive_data.mr.files)
        yield peer


def stored_uids(store: StudyStore, study_uid: str) -> set[str]:
    return {i.sop_instance_uid for i in store.instances_for_study(study_uid)}


def file_uids(files: list[Path]) -> set[str]:
    import pydicom

    return {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
