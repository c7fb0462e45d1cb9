"""Image Position / Orientation (Patient) are indexed (schema 2) so stacks can be sorted before loading."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from viewer.core.store import StudyStore


def test_position_and_orientation_come_from_the_header_scan_and_round_trip(tmp_path: Path) -> None:
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    store = StudyStore(tmp_path / "store")
    result = store.add_file(path)
    inst = store.instance(result.sop_instance_uid)
    assert inst.image_position == tuple(float(v) for v in ds.ImagePositionPatient)
    assert inst.image_orientation == tuple(float(v) for v in ds.ImageOrientationPatient)
    with sqlite3.connect(store.db_path) as conn:
        row = conn.execute("SELECT image_position, image_orientation, unsynced FROM instances").fetchone()
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert row[0].split("\\") == [repr(float(v)) for v in ds.ImagePositionPatient] and row[2] == 0
    assert version == "2"
    no_geometry = store.add_file(get_testdata_file("rtplan.dcm"))
    assert store.instance(no_geometry.sop_instance_uid).image_position == ()
    store.close()
