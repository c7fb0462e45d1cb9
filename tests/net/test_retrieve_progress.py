"""Retrieve progress against a real Orthanc (issue 14, finding 14): when the retrieve ends, the archive's
final response decides the counts, so a finished retrieve reads "n of n", not "n of n + 1"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.net.conftest import ArchiveData, Lightbox, file_uids, stored_uids
from tests.support.peers import Peer
from viewer.core.store import StudyStore
from viewer.net import scu

pytestmark = pytest.mark.network


def _assert_finished(progress: scu.RetrieveProgress, count: int) -> None:
    assert progress.remaining == 0
    assert (progress.completed, progress.failed, progress.warning) == (count, 0, 0)
    assert progress.total == count
    assert progress.fraction() == 1.0


def test_move_progress_ends_with_the_final_responses_counts(
    pacs: Peer, archive_data: ArchiveData, lightbox: Lightbox
) -> None:
    study = archive_data.ct
    seen: list[tuple[int | None, int]] = []
    result = scu.move(
        pacs.node(),
        {"StudyInstanceUID": study.study_uid},
        "STUDY",
        lightbox.local.ae_title,
        local=lightbox.local,
        arrivals=lightbox.server.subscribe,
        progress_cb=lambda p: seen.append((p.remaining, p.completed)),
    )
    assert result.ok
    assert any(remaining for remaining, _ in seen)  # Orthanc did send pending responses with counts
    _assert_finished(result.progress, len(study.files))
    assert file_uids(study.files) <= stored_uids(lightbox.store, study.study_uid)


def test_get_progress_ends_with_the_final_responses_counts(
    pacs: Peer, archive_data: ArchiveData, lightbox: Lightbox, tmp_path: Path
) -> None:
    store = StudyStore(tmp_path / "get-store")
    study = archive_data.mr
    result = scu.get(
        pacs.node(retrieve_method="get"), {"StudyInstanceUID": study.study_uid}, "STUDY", store, local=lightbox.local
    )
    assert result.status == 0x0000
    _assert_finished(result.progress, len(study.files))
    assert stored_uids(store, study.study_uid) == file_uids(study.files)
    store.close()
