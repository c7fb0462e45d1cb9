"""Fixtures shared by every test area."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Main windows made by tests must not listen on the real DICOM port; networking tests start their own SCP.
os.environ.setdefault("LIGHTBOX_SCP_AUTOSTART", "0")


@pytest.fixture
def lightbox_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder, also exported as LIGHTBOX_HOME so nothing touches the user's real one."""
    home = tmp_path / "lightbox-home"
    home.mkdir()
    monkeypatch.setenv("LIGHTBOX_HOME", str(home))
    return home


@pytest.fixture
def store(tmp_path: Path):
    from viewer.core.store import StudyStore

    s = StudyStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture(scope="session")
def pydicom_test_files() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm")).parent
